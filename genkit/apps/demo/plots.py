"""The demo's figures (matplotlib): image grids with their labels drawn in, and the style-patch usage plot.

Labels are part of the PNG (not only of the HTML), so an image logged to W&B or copied elsewhere still says what
each column is.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from genkit.core.files import atomic_write_bytes


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) float array for imshow."""
    return img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def _save(fig, path: Path, dpi: int) -> Path:
    plt = _figure()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def labelled_grid(rows: Sequence[Sequence[torch.Tensor | None]], col_labels: Sequence[str], path: str | Path,
                  row_labels: Sequence[str] | None = None, title: str | None = None, tile_inches: float = 1.6,
                  dpi: int = 100) -> Path:
    """A grid of (3, H, W) images in [0, 1] with each column's label drawn above it (and each row's on its left);
    ``None`` leaves a cell empty. Small images are shown with nearest-neighbour upsampling (no blur added)."""
    plt = _figure()
    n_rows, n_cols = len(rows), len(col_labels)
    if any(len(r) != n_cols for r in rows):
        raise ValueError(f"every row needs {n_cols} images (one per column label)")
    left = 0.35 if row_labels else 0.05
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False,
                             figsize=(n_cols * tile_inches + left, n_rows * tile_inches + 0.55 + (0.3 if title else 0)))
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if img is not None:
                ax.imshow(_to_hwc(img), interpolation="nearest")
            if i == 0:
                ax.set_title(col_labels[j], fontsize=9, wrap=True)
            if row_labels and j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3)
    return _save(fig, Path(path), dpi)


def _sorted_usage(ax, usage: dict[str, torch.Tensor | None], colours: dict[str, str], title: str, xlabel: str):
    for name, counts in usage.items():
        if counts is None:
            ax.plot([], [], color=colours.get(name), label=f"{name}: no patch assignment (statistics only)")
            continue
        c = np.sort(counts.flatten().cpu().numpy())[::-1]
        used = int((c > 0).sum())
        ax.plot(np.arange(1, len(c) + 1), c, color=colours.get(name), lw=2,
                label=f"{name}: {used}/{len(c)} used, max {int(c.max())}x")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("times used", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def usage_plot(usage: dict[str, torch.Tensor | None], distances: dict[str, tuple[float, float]], path: str | Path,
               level: str = "relu4_1", note: str = "", output_usage: dict[str, torch.Tensor] | None = None) -> Path:
    """Left: each method's style-patch use counts at ``level``, sorted from most to least used (a flat line at 1 is
    even use; a tall head and a long zero tail is wash-out); a method without an assignment (``None``) is listed as
    such. Middle (with ``output_usage``): the same for the output images' nearest style patches. Right: each
    method's content distance and Gram style distance (lower is closer)."""
    plt = _figure()
    n = 3 if output_usage else 2
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.8), gridspec_kw={"width_ratios": [1.3] * (n - 1) + [1]})
    colours = {"reshuffle": "tab:blue", "style-swap": "tab:orange", "Gram (Gatys)": "tab:green"}
    _sorted_usage(axes[0], usage, colours, "the method's target: style-patch usage\n(flat = even, tall head + zero "
                  "tail = wash-out)", f"style patches at {level}, most used first")
    if output_usage:
        _sorted_usage(axes[1], output_usage, colours, "the output image: nearest style patch\nof each position",
                      f"style patches at {level}, most used first")
    bx = axes[-1]
    names = list(distances)
    x = np.arange(len(names))
    cd = [distances[n][0] for n in names]
    sd = [distances[n][1] for n in names]
    bx.bar(x - 0.2, cd, 0.4, label="content distance (relu4_1)", color="tab:gray")
    bx.bar(x + 0.2, sd, 0.4, label="Gram style distance (relu1-5)", color="tab:purple")
    bx.set_xticks(x, names, fontsize=8)
    bx.set_title("distances to content and style\n(lower = closer)", fontsize=9)
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3, axis="y")
    if note:
        fig.text(0.5, 0.01, note, ha="center", fontsize=8, color="#a05000")
    fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 1))
    return _save(fig, Path(path), 100)
