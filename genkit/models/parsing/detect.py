"""Optional face detection and alignment before parsing (``genkit parse --detect``).

Detection uses facenet-pytorch's MTCNN (its wheel carries the detector weights, so it works offline). It is an
optional dependency; install it without its outdated torch pin::

    pip install facenet-pytorch --no-deps

Alignment follows the FFHQ / CelebA-HQ recipe (eyes level, the crop scaled from the eye distance and the
eye-to-mouth distance), so parsed photos look like the training data of the Helen / CelebAMask-HQ parsers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from genkit.core.errors import DataError, GenkitError

INSTALL_HINT = "pip install facenet-pytorch --no-deps"


class DetectorUnavailableError(GenkitError):
    """The optional face detector is not installed."""


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` (x0, y0, x1, y1), ``landmarks`` (5, 2) as left eye, right eye, nose,
    left mouth corner, right mouth corner (image left/right), and the detector's ``score``."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float = 1.0

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


class MTCNNDetector:
    """facenet-pytorch's MTCNN returning :class:`Face` objects (largest first)."""

    def __init__(self, device: str = "cpu", min_score: float = 0.9):
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            raise DetectorUnavailableError(
                "--detect needs the optional face detector facenet-pytorch (MTCNN), which is not installed. "
                f"Install it with `{INSTALL_HINT}` (--no-deps: its metadata pins an old torch), or run without "
                "--detect to centre-crop and resize instead."
            ) from None
        self.min_score = min_score
        self.mtcnn = MTCNN(keep_all=True, device=device)

    def __call__(self, img: Image.Image) -> list[Face]:
        boxes, probs, points = self.mtcnn.detect(img, landmarks=True)
        if boxes is None:
            return []
        faces = [Face(tuple(float(v) for v in b), np.asarray(p, dtype=np.float64), float(s))
                 for b, s, p in zip(boxes, probs, points) if s is not None and s >= self.min_score]
        return sorted(faces, key=lambda f: f.area, reverse=True)


def alignment_quad(landmarks: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The oriented square (4 corners: top-left, bottom-left, bottom-right, top-right) to crop for a face.

    FFHQ recipe: ``x`` points along the eye line, its length from the eye distance and the eye-to-mouth
    distance; the centre sits slightly below the eyes. ``scale`` > 1 includes more around the face.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise ValueError(f"expected 5 finite (x, y) landmarks, got shape {lm.shape}")
    eyes = lm[:2][np.argsort(lm[:2, 0])]  # image-left eye first
    mouth = lm[3:5].mean(0)
    eye_avg = eyes.mean(0)
    eye_to_eye = eyes[1] - eyes[0]
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    norm = np.hypot(*x)
    if norm < 1e-6:
        raise ValueError("degenerate landmarks (eyes and mouth coincide)")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) * scale
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def crop_quad(img: Image.Image, quad: np.ndarray, size: int) -> Image.Image:
    """Warp the quadrilateral ``quad`` of ``img`` to a ``size`` x ``size`` image; outside the photo is mirrored."""
    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    pad = int(np.ceil(max(0.0, -quad[:, 0].min(), -quad[:, 1].min(), quad[:, 0].max() - w,
                          quad[:, 1].max() - h))) + 1
    if pad > 1:
        arr = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
        quad = quad + pad
    src = Image.fromarray(arr)
    side = int(np.ceil(np.hypot(*(quad[3] - quad[0]))))
    # warp at the quad's own resolution first, then resize (better anti-aliasing when shrinking)
    out = src.transform((max(side, size), max(side, size)), Image.QUAD, (quad + 0.5).flatten().tolist(),
                        Image.BILINEAR)
    return out if out.size == (size, size) else out.resize((size, size), Image.LANCZOS)


def align_face(img: Image.Image, face: Face, size: int, scale: float = 1.0) -> tuple[Image.Image, list[list[float]]]:
    """Aligned ``size`` x ``size`` crop of ``face``; returns the crop and its quad (for metadata)."""
    quad = alignment_quad(face.landmarks, scale)
    return crop_quad(img, quad, size), quad.round(2).tolist()


def detect_and_align(img: Image.Image, detector, size: int, path=None, scale: float = 1.0):
    """Align the largest detected face; :class:`DataError` naming ``path`` when there is none."""
    faces = detector(img)
    if not faces:
        raise DataError(path, "no face detected (try a larger or frontal photo, or run without --detect)")
    face = faces[0]
    crop, quad = align_face(img, face, size, scale)
    return crop, {"detected_faces": len(faces), "score": round(face.score, 4), "quad": quad}
