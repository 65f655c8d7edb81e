"""The notebooks under notebooks/ run end to end at quick settings and show what they promise.

Each notebook is executed with nbclient in a fresh kernel of *this* venv's Python (checked from inside the
kernel), in a temporary working directory, with ``GENKIT_NB_QUICK=1`` (tiny sizes and steps), offline W&B and an
empty weights cache (random pretrained weights, as every notebook says). The committed notebooks carry no outputs.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600

# what each notebook must show: text printed by its cells, and at least this many displayed images
EXPECTED = {
    "style_transfer": {
        "text": ["quick=True", "trained 4 steps", "distinct used", "Wash-out in one number",
                 "content distance", "random weights: True"],
        "html_tables": 4, "images": 6,
        "files": ["astronaut__gravel__reshuffle.png", "astronaut__gravel__style-swap.png",
                  "chelsea__gravel__reshuffle.png", "astronaut__gravel__reshuffle__optimize.png"],
    },
    "portrait_editing": {
        "text": ["quick=True", "components: ('left_eye', 'right_eye', 'mouth', 'skin', 'hair')",
                 "reconstruction L1 per face", "sources of the hair transfer", "prior sample 0",
                 "widget callbacks: transfer ran 3x (donor face 2, components ['mouth', 'hair'])",
                 "mask edit ran 3x"],
        "html_tables": 0, "images": 7, "widgets": True,
        "files": ["face0_reconstruct.png", "face0_mouth_from_face1.png", "widget_transfer.png",
                  "widget_mask_edit.png"],
    },
    "metrics": {
        "text": ["quick=True", "cache: hit/hit", '"weights": "RANDOM"', "round trip: all routes agree",
                 "real vs shifted", "diversity: different faces", "pipeline check only"],
        "html_tables": 5, "images": 2,
        "files": ["real_stats.npz", "other_stats.npz", "results.json"],
    },
}

KERNEL_CHECK = "import os, sys\nprint('KERNEL-PREFIX=' + sys.prefix)\nprint('KERNEL-CWD=' + os.getcwd())"


def _venv_kernelspec(root: Path) -> Path:
    """A ``python3`` kernelspec that runs this interpreter; JUPYTER_PATH puts it ahead of any user kernelspec."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (genkit venv)", "language": "python"}))
    return root


def _load_stripper():
    """notebooks/strip_outputs.py as a namespace (exec'd from source: no __pycache__ in the repository)."""
    path = NOTEBOOK_DIR / "strip_outputs.py"
    namespace = {"__name__": "strip_outputs", "__file__": str(path)}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return types.SimpleNamespace(**namespace)


def _assert_stripped(nb, name: str) -> None:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{name} cell {i} has outputs: run `python notebooks/strip_outputs.py` before committing")
    assert "widgets" not in nb.metadata, f"{name} stores widget state: run `python notebooks/strip_outputs.py`"


def _stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _outputs(nb, mime: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})]


def _snapshot(paths: list[Path]) -> dict[str, int]:
    out = {}
    for root in paths:
        if root.exists():
            for p in root.rglob("*"):
                if ".ipynb_checkpoints" not in p.parts:
                    out[str(p)] = p.stat().st_mtime_ns
    return out


def _poll_shell_in_slices(channel, slice_s: float = 2.0) -> None:
    """Make ``channel.get_msg(timeout=T)`` poll in slices of ``slice_s`` seconds up to ``T``.

    After a cell with widget traffic, jupyter_client's asyncio ``get_msg`` sometimes sleeps through an
    ``execute_reply`` that has arrived and sees it only when its timeout ends (jupyter/nbclient#312): the suite then
    sat 600 s (the cell timeout) on an idle kernel before the portrait notebook went on. A fresh poll every few
    seconds sees the waiting reply.
    """
    from queue import Empty

    whole = channel.get_msg

    async def get_msg(timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = slice_s if deadline is None else max(0.0, min(slice_s, deadline - time.monotonic()))
            try:
                return await whole(timeout=step)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


def test_the_notebooks_cover_both_models_and_the_metrics():
    assert {p.stem for p in NOTEBOOKS} >= set(EXPECTED), [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name", "python3") == "python3"
    _assert_stripped(nb, path.name)


@pytest.mark.slow
@pytest.mark.timeout(3 * CELL_TIMEOUT_S)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    out_root = work / "outputs" / "notebooks"
    monkeypatch.setenv("JUPYTER_PATH", str(_venv_kernelspec(tmp_path / "jupyter")))
    monkeypatch.setenv("GENKIT_NB_QUICK", "1")
    monkeypatch.setenv("GENKIT_NB_OUT", str(out_root))
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))  # the FID statistics cache
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("GENKIT_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend displays the figures

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(KERNEL_CHECK))
    guarded = [REPO / "notebooks", REPO / "outputs" / "notebooks"]
    before = _snapshot(guarded)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(work)}})
    client.on_notebook_start = lambda notebook: _poll_shell_in_slices(client.kc.shell_channel)
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    elapsed = time.perf_counter() - t0
    print(f"\n{path.name}: executed in {elapsed:.1f} s (quick mode)")

    # the kernel ran this venv's interpreter, in the temporary working directory
    check = _stream_text(nb.cells[0])
    assert f"KERNEL-PREFIX={sys.prefix}\n" in check, f"kernel is not this venv's Python: {check!r} vs {sys.prefix}"
    assert f"KERNEL-CWD={os.path.realpath(work)}\n" in check, check

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), "some cells did not run"

    expected = EXPECTED.get(path.stem, {"text": [], "images": 1, "html_tables": 0, "files": []})
    text = "\n".join(_stream_text(c) for c in code_cells)
    for snippet in expected["text"]:
        assert snippet in text, f"{path.name}: {snippet!r} not in the printed output"
    n_images = len(_outputs(nb, "image/png"))
    assert n_images >= expected["images"], f"{path.name}: {n_images} images displayed"
    tables = [o for o in _outputs(nb, "text/html") if "<table>" in "".join(o["data"]["text/html"])]
    assert len(tables) >= expected["html_tables"], f"{path.name}: {len(tables)} tables displayed"
    if expected.get("widgets"):
        assert _outputs(nb, "application/vnd.jupyter.widget-view+json"), "no widgets displayed"

    # outputs went to the temporary folder, never into the repository
    written = out_root / path.stem
    for name in expected["files"]:
        assert (written / name).is_file(), f"{path.name} did not write {name} under {written}"
    assert _snapshot(guarded) == before, "the notebook wrote into the repository tree"

    # the strip helper turns the executed notebook back into a committable one
    stripped = _load_stripper().strip(nb)
    nbformat.validate(stripped)
    _assert_stripped(stripped, path.name)
    assert not any("execution" in c.metadata for c in stripped.cells)
