"""A small, self-contained HTML report: sections of captioned images and tables of numbers.

Images are referenced by relative paths (the report folder can be moved or zipped as a whole). Every image
listed must exist when the report is written; a missing one is an error, not a broken picture.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from genkit.core.files import atomic_write_text


@dataclass
class Section:
    title: str
    text: str = ""
    images: list[tuple[str, Path]] = field(default_factory=list)  # (caption, path)
    table: list[dict] = field(default_factory=list)


@dataclass
class Report:
    title: str
    notes: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, text: str = "") -> Section:
        s = Section(title, text)
        self.sections.append(s)
        return s

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        root = path.parent
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
                 "figure{display:block;margin:.8em 0}img{max-width:100%;"
                 "image-rendering:pixelated;border:1px solid #ccc}figcaption{font-size:.85em;color:#444}"
                 "table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left;"
                 "vertical-align:top}"
                 ".warn{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em}</style></head><body>",
                 f"<h1>{html.escape(self.title)}</h1>",
                 f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>"]
        for note in self.notes:
            parts.append(f"<p class='warn'>{html.escape(note)}</p>")
        for s in self.sections:
            parts.append(f"<h2>{html.escape(s.title)}</h2>")
            if s.text:
                parts.append(f"<p>{html.escape(s.text)}</p>")
            for caption, img in s.images:
                img = Path(img)
                if not img.is_file():
                    raise FileNotFoundError(f"report image {img} does not exist")
                rel = os.path.relpath(img.resolve(), root.resolve())
                parts.append(f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            if s.table:
                cols: list[str] = []
                for row in s.table:
                    cols += [c for c in row if c not in cols]
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
                for row in s.table:
                    parts.append("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c, '')))}</td>" for c in cols) + "</tr>")
                parts.append("</table>")
        parts.append("</body></html>\n")
        return atomic_write_text(path, "\n".join(parts))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
