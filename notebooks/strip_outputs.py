"""Strip outputs, execution counts, run timings and widget state from notebooks, so commits stay small.

    python notebooks/strip_outputs.py                 # every notebook in notebooks/
    python notebooks/strip_outputs.py a.ipynb b.ipynb

The test suite checks that the committed notebooks are stripped (tests/test_notebooks.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    language = nb.metadata.get("language_info")
    if language:  # the kernel fills in its version, mimetype...; keep only the name
        nb.metadata["language_info"] = {"name": language.get("name", "python")}
    return nb


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(Path(__file__).resolve().parent.glob("*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        after = nbformat.writes(strip(nb))
        if after != before:
            path.write_text(after if after.endswith("\n") else after + "\n", encoding="utf-8")
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
