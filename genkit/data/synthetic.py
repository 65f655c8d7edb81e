"""Procedural face-like images with exact 11-class (Helen) label maps.

These are *synthetic*: flat-shaded ellipses for the face, hair, brows, eyes, nose and lips over a
textured background, with random shapes, colours and poses drawn from a seeded generator. They let every
experiment, test and the demo run with no download. They say nothing about quality on real photos.

Left/right follow the image: ``left_eye`` is the eye on the left half of the picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from genkit.data.schemas import HELEN11

BG, SKIN, LBROW, RBROW, LEYE, REYE, NOSE, ULIP, MOUTH, LLIP, HAIR = range(11)


def _ellipse(xx, yy, cx, cy, ax, ay, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = xx - cx, yy - cy
    u = (dx * c + dy * s) / ax
    v = (-dx * s + dy * c) / ay
    return u * u + v * v <= 1.0


def _background(rng: np.random.Generator, size: int, xx, yy) -> np.ndarray:
    base = rng.uniform(0.1, 0.9, size=3)
    other = rng.uniform(0.1, 0.9, size=3)
    kind = rng.integers(3)
    if kind == 0:  # stripes
        freq = rng.uniform(2, 8) * 2 * np.pi
        theta = rng.uniform(0, np.pi)
        t = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)))
    elif kind == 1:  # smooth blobs
        t = gaussian_filter(rng.standard_normal((size, size)), sigma=size / 12)
        t = (t - t.min()) / (np.ptp(t) + 1e-8)
    else:  # checker
        n = rng.integers(3, 9)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float64)
    return base[None, None] * (1 - t[..., None]) + other[None, None] * t[..., None]


def synthetic_face(size: int = 128, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """One face: ``(image uint8 (H, W, 3), labels int64 (H, W))`` with Helen-11 labels."""
    image, labels, _ = synthetic_face_with_background(size, seed)
    return image, labels


# the appearance of each portrait component: the label colours (and the hair's texture) it is drawn with
COMPONENT_APPEARANCE = {"left_eye": (LEYE,), "right_eye": (REYE,), "eyes": (LEYE, REYE), "mouth": (ULIP, MOUTH, LLIP),
                        "skin": (SKIN, LBROW, RBROW, NOSE), "hair": (HAIR, "hair_texture")}


def synthetic_face_with_background(size: int = 128, seed: int | np.random.Generator = 0
                                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One face and its true background: ``(image, labels, background)``.

    ``background`` is the same picture without the face and hair (same texture, noise and blur), so a model that
    fills background uncovered by an edit (hair removed, face made smaller) has ground truth. Away from the face
    (beyond the 2 px blur) the two images are identical.
    """
    image, labels, background, _ = render_synthetic_face(size, seed)
    return image, labels, background


def synthetic_appearance(size: int = 128, seed: int | np.random.Generator = 0) -> dict:
    """The appearance a face is drawn with: ``{label: RGB in [0, 1], "hair_texture": (frequency, phase)}``."""
    return render_synthetic_face(size, seed)[3]


def transferred_appearance(donor_seed, components, size: int = 128) -> dict:
    """Overrides that draw a face with the donor's ``components`` (names of :data:`COMPONENT_APPEARANCE`): with
    :func:`render_synthetic_face` of the target, the expected result of a perfect transfer."""
    donor = synthetic_appearance(size, donor_seed)
    keys = [k for c in components for k in COMPONENT_APPEARANCE[c]]
    return {k: donor[k] for k in keys}


def render_synthetic_face(size: int = 128, seed: int | np.random.Generator = 0, appearance: dict | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """``(image, labels, background, appearance)``; ``appearance`` overrides some of the face's own colours (keys
    as :func:`synthetic_appearance` returns), keeping its shapes, pose, background and noise: the same face with,
    for instance, another face's mouth."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    xx, yy = (xs + 0.5) / size, (ys + 0.5) / size
    colors, drawn = _face_colours(rng, appearance)
    labels, (cx, cy, fw, fh) = _face_layout(rng, xx, yy)
    image = _background(rng, size, xx, yy)
    background = image.copy()
    fg = labels != BG
    image[fg] = colors[labels[fg]]
    # soft shading across the face and hair, plus per-pixel texture noise
    shade = 1.0 - 0.25 * np.clip(((xx - cx) ** 2 + (yy - cy) ** 2) / (fw * fh * 2), 0, 1)
    image[fg] *= shade[fg][:, None]
    freq, phase = rng.uniform(40, 90), rng.uniform(0, 6)
    drawn["hair_texture"] = (freq, phase)
    freq, phase = (appearance or {}).get("hair_texture", (freq, phase))
    hair_tex = 0.08 * np.sin(freq * (xx + 0.3 * yy) + phase)
    image[labels == HAIR] += hair_tex[labels == HAIR][:, None]
    noise = rng.normal(0, 0.02, size=image.shape)
    return _finish(image + noise), labels, _finish(background + noise), drawn


def _face_colours(rng: np.random.Generator, appearance: dict | None) -> tuple[np.ndarray, dict]:
    """(one colour per label, the face's own colours before ``appearance`` overrides them)."""
    colors = np.zeros((11, 3))
    skin = rng.uniform([0.45, 0.3, 0.2], [0.95, 0.8, 0.7])
    colors[SKIN] = skin
    colors[LBROW] = colors[RBROW] = rng.uniform(0.05, 0.45, size=3)
    colors[LEYE] = colors[REYE] = rng.uniform(0.0, 0.6, size=3)
    colors[NOSE] = np.clip(skin * rng.uniform(0.8, 0.95), 0, 1)
    lip = rng.uniform([0.5, 0.05, 0.1], [0.95, 0.4, 0.5])
    colors[ULIP] = lip
    colors[LLIP] = np.clip(lip * rng.uniform(0.85, 1.1), 0, 1)
    colors[MOUTH] = rng.uniform(0.05, 0.3, size=3)
    colors[HAIR] = rng.uniform(0.02, 0.7, size=3) * rng.uniform(0.3, 1.0)
    drawn = {int(k): colors[k].copy() for k in range(1, 11)}
    for k, v in (appearance or {}).items():
        if k != "hair_texture":
            colors[int(k)] = v
    return colors, drawn


def _face_layout(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The label map of one face (hair, oval, fringe, brows, eyes, nose, lips, mouth) and (cx, cy, width, height)."""
    labels = np.zeros(xx.shape, dtype=np.int64)
    cx = 0.5 + rng.uniform(-0.06, 0.06)
    cy = 0.52 + rng.uniform(-0.05, 0.05)
    fw = rng.uniform(0.24, 0.32)
    fh = fw * rng.uniform(1.2, 1.45)
    tilt = rng.uniform(-0.15, 0.15)
    c, s = np.cos(tilt), np.sin(tilt)

    def at(dx, dy):  # face-relative offset -> image coordinates, following the head tilt
        return cx + dx * fw * c - dy * fh * s, cy + dx * fw * s + dy * fh * c

    hair_h = rng.uniform(0.9, 1.35)
    hx, hy = at(0, -0.25)
    labels[_ellipse(xx, yy, hx, hy, fw * rng.uniform(1.1, 1.35), fh * hair_h, tilt)] = HAIR
    labels[_ellipse(xx, yy, cx, cy, fw, fh, tilt)] = SKIN
    if rng.random() < 0.5:  # a fringe over the forehead for some faces
        fx, fy = at(rng.uniform(-0.2, 0.2), -0.95)
        labels[_ellipse(xx, yy, fx, fy, fw * rng.uniform(0.7, 1.0), fh * rng.uniform(0.2, 0.35), tilt)] = HAIR

    eye_dx = rng.uniform(0.36, 0.48)
    eye_dy = rng.uniform(-0.22, -0.1)
    eye_w = fw * rng.uniform(0.18, 0.26)
    eye_h = eye_w * rng.uniform(0.35, 0.65)
    brow_gap = rng.uniform(0.13, 0.22)
    for side, eye_label, brow_label in ((-1, LEYE, LBROW), (1, REYE, RBROW)):
        ex, ey = at(side * eye_dx, eye_dy)
        bx, by = at(side * eye_dx, eye_dy - brow_gap)
        labels[_ellipse(xx, yy, bx, by, eye_w * 1.2, eye_h * 0.4, tilt + side * rng.uniform(0, 0.2))] = brow_label
        labels[_ellipse(xx, yy, ex, ey, eye_w, eye_h, tilt)] = eye_label

    nx, ny = at(0, rng.uniform(0.08, 0.18))
    labels[_ellipse(xx, yy, nx, ny, fw * rng.uniform(0.1, 0.16), fh * rng.uniform(0.12, 0.2), tilt)] = NOSE

    mouth_w = fw * rng.uniform(0.35, 0.5)
    mx, my = at(0, rng.uniform(0.48, 0.58))
    lip_h = fh * rng.uniform(0.05, 0.08)
    open_h = fh * rng.uniform(0.0, 0.06)
    rng.uniform(0.48, 0.58)  # drawn and unused: keeps every seed's face as genkit 0.2 drew it
    labels[_ellipse(xx, yy, mx, my - open_h / 2 * c, mouth_w, lip_h, tilt) & (labels == SKIN)] = ULIP
    lx, ly = mx - s * (open_h / 2 + lip_h * 0.8), my + c * (open_h / 2 + lip_h * 0.8)
    labels[_ellipse(xx, yy, lx, ly, mouth_w * 0.9, lip_h * 1.1, tilt) & (labels == SKIN)] = LLIP
    if open_h > fh * 0.015:
        labels[_ellipse(xx, yy, mx + s * lip_h * 0.4, my + c * lip_h * 0.4, mouth_w * 0.7, open_h, tilt)] = MOUTH
    return labels, (cx, cy, fw, fh)


def _finish(image: np.ndarray) -> np.ndarray:
    """Slight blur (no perfectly sharp synthetic edges), then uint8."""
    image = gaussian_filter(image, sigma=(0.6, 0.6, 0))
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def synthetic_faces(n: int, size: int = 128, seed: int = 0):
    """Yield ``n`` faces; face ``i`` depends only on ``(seed, i)``."""
    for i in range(n):
        yield synthetic_face(size, np.random.default_rng([seed, i]))


def write_synthetic_folder(out: str | Path, n: int, size: int = 128, seed: int = 0, progress: bool = True) -> Path:
    """Write ``n`` faces in the generic folder layout: ``images/NAME.png``, ``masks/NAME.png``, ``schema.json``."""
    from PIL import Image
    from tqdm import tqdm

    from genkit.data.schemas import save_schema
    from genkit.core.files import atomic_write_json
    from genkit.core.saving import save_image, save_label_map

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for i, (image, labels) in enumerate(tqdm(synthetic_faces(n, size, seed), total=n, disable=not progress,
                                             desc="synthetic faces", unit="img")):
        name = f"synth_{i:05d}"
        save_image(Image.fromarray(image), out / "images" / f"{name}.png")
        save_label_map(labels, out / "masks" / f"{name}.png")
    save_schema(HELEN11, out / "schema.json")
    atomic_write_json(out / "SYNTHETIC.json", {"synthetic": True, "n": n, "size": size, "seed": seed,
                                               "note": "procedural faces for smoke runs, tests and demos only"})
    return out
