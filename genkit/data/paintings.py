"""Procedural "paintings": colourful, deterministic style images that ship with genkit.

No painting ships in any installed package, and the textures that do (brick, gravel) are grey, so no colour could
transfer from them. These generators draw style images with the features style transfer is about: a strong
palette, oriented brush strokes, tiles with grout. They are generated from a seed (the same image every time,
on every machine) and are meant for demos, tests and notebooks, not as art.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Palettes (RGB), chosen to be far apart from each other and from photo colours.
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "starry": ((16, 38, 99), (34, 82, 160), (78, 140, 200), (240, 205, 60), (250, 240, 170), (22, 60, 50)),
    "sunset": ((250, 90, 40), (245, 170, 50), (200, 40, 80), (120, 30, 90), (255, 220, 120), (40, 20, 60)),
    "meadow": ((60, 140, 60), (150, 200, 80), (240, 220, 90), (200, 60, 60), (250, 250, 240), (40, 80, 140)),
    "stained": ((190, 30, 45), (30, 90, 170), (240, 180, 30), (40, 140, 80), (120, 50, 140), (235, 235, 220)),
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 0x9E3779B9]))


def _jitter(color: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    c = np.asarray(color) + rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def brush_strokes(size: int = 256, seed: int = 0, palette: str = "starry") -> Image.Image:
    """Short thick strokes that follow a swirling flow field, over a blurred colour wash.

    The stroke direction at (x, y) is the angle of a smooth random field; colour bands vary slowly across the
    canvas so the image has both a global look (palette, layout) and local patterns (stroke texture).
    """
    rng = _rng(seed)
    colors = PALETTES[palette]
    # slowly varying fields on a coarse grid: flow angle and colour index
    k = 4
    phase = rng.uniform(0, 2 * np.pi, size=(3, k))
    freq = rng.uniform(0.5, 2.0, size=(3, k))

    def field(i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sum(np.sin(freq[i, j] * (x * np.cos(j) + y * np.sin(j)) * 2 * np.pi + phase[i, j]) for j in range(k)) / k

    scale = size / 256.0
    wash = Image.new("RGB", (size, size), colors[0])
    draw = ImageDraw.Draw(wash)
    for _ in range(12):  # large blobs of the palette, blurred into a wash
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(0.15, 0.35) * size
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colors[rng.integers(len(colors))])
    img = wash.filter(ImageFilter.GaussianBlur(radius=size / 12))
    draw = ImageDraw.Draw(img)
    n_strokes = int(2200 * scale * scale)
    xs, ys = rng.uniform(0, 1, n_strokes), rng.uniform(0, 1, n_strokes)
    angles = field(0, xs, ys) * np.pi * 1.5
    bands = (field(1, xs, ys) + 1) / 2 * (len(colors) - 1e-6)
    lengths = rng.uniform(6, 16, n_strokes) * scale
    widths = np.maximum(1, np.round(rng.uniform(2.0, 4.5, n_strokes) * scale)).astype(int)
    for x, y, a, b, length, w in zip(xs * size, ys * size, angles, bands, lengths, widths):
        color = _jitter(colors[int(b)], rng, 28)
        dx, dy = np.cos(a) * length / 2, np.sin(a) * length / 2
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=color, width=int(w))
    return img


def mosaic(size: int = 256, seed: int = 0, palette: str = "stained", tiles: int | None = None) -> Image.Image:
    """Voronoi tiles in a bright palette with dark grout lines and a little shading per tile."""
    rng = _rng(seed + 1)
    colors = np.asarray(PALETTES[palette], dtype=np.float64)
    n = tiles or max(24, int(140 * (size / 256.0) ** 2))
    points = rng.uniform(0, size, size=(n, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    pix = np.stack([xx.ravel(), yy.ravel()], 1)
    # nearest seed per pixel (chunked: n x size^2 distances)
    labels = np.empty(len(pix), dtype=np.int64)
    for start in range(0, len(pix), 65536):
        d = ((pix[start:start + 65536, None, :] - points[None]) ** 2).sum(-1)
        labels[start:start + 65536] = d.argmin(1)
    labels = labels.reshape(size, size)
    tile_color = colors[rng.integers(len(colors), size=n)] + rng.integers(-25, 26, size=(n, 3))
    shade = 1.0 - 0.25 * ((xx - points[labels, 0]) + (yy - points[labels, 1])) / max(size / np.sqrt(n), 1.0)
    out = tile_color[labels] * np.clip(shade, 0.7, 1.2)[..., None]
    grout = np.zeros((size, size), dtype=bool)
    grout[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    grout[1:, :] |= labels[1:, :] != labels[:-1, :]
    width = max(1, size // 128)
    if width > 1:
        from scipy.ndimage import binary_dilation

        grout = binary_dilation(grout, iterations=width - 1)
    out[grout] = (30, 26, 24)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


PAINTINGS = {"brush_strokes": brush_strokes, "mosaic": mosaic}


def painting(name: str, size: int = 256, seed: int = 0) -> Image.Image:
    """A procedural painting by name (``brush_strokes``, ``mosaic``)."""
    if name not in PAINTINGS:
        raise KeyError(f"unknown procedural painting {name!r}; known: {', '.join(PAINTINGS)}")
    return PAINTINGS[name](size=size, seed=seed)
