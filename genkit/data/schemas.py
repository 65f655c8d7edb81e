"""Label schemas as data: class names, left/right pairs, preview colours and mappings between schemas.

The portrait model works on the 11-class Helen schema (paper A). CelebAMask-HQ's 19 classes map onto
it through a declared table (``CELEBAMASK_TO_HELEN``), never through ad-hoc code in the models; so do the labels
of the pretrained BiSeNet parser (``BISENET19``, the same classes in another order). :func:`find_mapping` looks
a declared mapping up.
A generic folder declares its schema in a small YAML/JSON file (see :func:`load_schema`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genkit.core.errors import DataError


@dataclass(frozen=True)
class LabelSchema:
    name: str
    classes: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    colors: tuple[tuple[int, int, int], ...] = field(default=())

    def __post_init__(self):
        n = len(self.classes)
        if n < 2 or n > 256:
            raise ValueError(f"schema {self.name!r}: needs 2..256 classes, got {n}")
        if len(set(self.classes)) != n:
            raise ValueError(f"schema {self.name!r}: class names must be unique")
        for a, b in self.flip_pairs:
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise ValueError(f"schema {self.name!r}: bad flip pair ({a}, {b})")
        if not self.colors:
            object.__setattr__(self, "colors", default_palette(n))
        elif len(self.colors) != n:
            raise ValueError(f"schema {self.name!r}: {len(self.colors)} colours for {n} classes")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, class_name: str) -> int:
        try:
            return self.classes.index(class_name)
        except ValueError:
            raise KeyError(f"schema {self.name!r} has no class {class_name!r}; classes: {list(self.classes)}") from None

    def flip_permutation(self) -> np.ndarray:
        """Lookup table ``lut`` such that ``lut[label]`` is the label after a horizontal flip."""
        lut = np.arange(self.num_classes, dtype=np.int64)
        for a, b in self.flip_pairs:
            lut[a], lut[b] = b, a
        return lut

    def colorize(self, labels: np.ndarray | torch.Tensor) -> np.ndarray:
        """(H, W) labels -> (H, W, 3) uint8 colour preview."""
        if isinstance(labels, torch.Tensor):
            labels = labels.detach().cpu().numpy()
        palette = np.asarray(self.colors, dtype=np.uint8)
        return palette[np.clip(np.asarray(labels, dtype=np.int64), 0, self.num_classes - 1)]

    def colorize_batch(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, H, W) labels -> (B, 3, H, W) float colours in [0, 1] on the labels' device (image grids)."""
        palette = torch.tensor(self.colors, dtype=torch.float32, device=labels.device) / 255.0
        return palette[labels.long().clamp(0, self.num_classes - 1)].permute(0, 3, 1, 2)

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes),
                "flip_pairs": [list(p) for p in self.flip_pairs], "colors": [list(c) for c in self.colors]}


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """Distinct colours (the PASCAL VOC bit-interleaving scheme)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return tuple(out)


HELEN11 = LabelSchema(
    name="helen11",
    classes=("background", "skin", "left_brow", "right_brow", "left_eye", "right_eye", "nose",
             "upper_lip", "inner_mouth", "lower_lip", "hair"),
    flip_pairs=((2, 3), (4, 5)),
    colors=((0, 0, 0), (255, 204, 170), (102, 51, 0), (153, 76, 0), (0, 102, 255), (0, 204, 255),
            (255, 153, 51), (204, 0, 51), (102, 0, 51), (255, 51, 102), (102, 51, 153)),
)

CELEBAMASK19 = LabelSchema(
    name="celebamask19",
    classes=("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
             "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"),
    flip_pairs=((4, 5), (6, 7), (8, 9)),
)

# CelebAMask-HQ part-file names in the dataset's documented merge order: later parts overwrite earlier ones.
CELEBAMASK_PART_ORDER = CELEBAMASK19.classes[1:]


@dataclass(frozen=True)
class SchemaMapping:
    """A declared many-to-one map from one schema's labels onto another's."""

    source: LabelSchema
    target: LabelSchema
    table: dict[str, str]

    def __post_init__(self):
        missing = set(self.source.classes) - set(self.table)
        if missing:
            raise ValueError(f"mapping {self.source.name}->{self.target.name} misses {sorted(missing)}")
        for t in self.table.values():
            self.target.index(t)

    def lut(self) -> np.ndarray:
        return np.array([self.target.index(self.table[c]) for c in self.source.classes], dtype=np.int64)

    def apply(self, labels: np.ndarray) -> np.ndarray:
        return self.lut()[labels]


CELEBAMASK_TO_HELEN = SchemaMapping(
    CELEBAMASK19, HELEN11,
    {
        "background": "background", "skin": "skin", "nose": "nose",
        "eye_g": "skin",  # glasses frames lie on the skin; the eyes (merged later) overwrite the lens area
        "l_eye": "left_eye", "r_eye": "right_eye", "l_brow": "left_brow", "r_brow": "right_brow",
        "l_ear": "background", "r_ear": "background",  # Helen's face skin has no ears
        "mouth": "inner_mouth", "u_lip": "upper_lip", "l_lip": "lower_lip", "hair": "hair",
        "hat": "background", "ear_r": "background", "neck_l": "background", "neck": "background",
        "cloth": "background",
    },
)

# The class order of the community BiSeNet face parser (zllrunning/face-parsing.PyTorch, ``79999_iter.pth``):
# CelebAMask-HQ's classes, numbered as that repository's training labels (not the dataset's listing order).
BISENET19 = LabelSchema(
    name="bisenet19",
    classes=("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
             "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"),
    flip_pairs=((2, 3), (4, 5), (7, 8)),
)

# same class names as CelebAMask-HQ, so the same table onto Helen-11
BISENET_TO_HELEN = SchemaMapping(BISENET19, HELEN11, dict(CELEBAMASK_TO_HELEN.table))
# a pure renumbering onto CelebAMask-HQ's own order
BISENET_TO_CELEBAMASK = SchemaMapping(BISENET19, CELEBAMASK19, {c: c for c in BISENET19.classes})

# every declared mapping: data folders in one schema and parsers of one schema reach another only through these
DECLARED_MAPPINGS: tuple[SchemaMapping, ...] = (CELEBAMASK_TO_HELEN, BISENET_TO_HELEN, BISENET_TO_CELEBAMASK)


def find_mapping(source: LabelSchema, target: LabelSchema) -> SchemaMapping | None:
    """The declared mapping from ``source`` to ``target`` (matched by class names and order), or ``None``."""
    for m in DECLARED_MAPPINGS:
        if m.source.classes == source.classes and m.target.classes == target.classes:
            return m
    return None


BUILTIN_SCHEMAS = {s.name: s for s in (HELEN11, CELEBAMASK19, BISENET19)}


def get_schema(name_or_path: str | Path | LabelSchema) -> LabelSchema:
    """A built-in schema by name (``helen11``, ``celebamask19``, ``bisenet19``) or one read from a schema file."""
    if isinstance(name_or_path, LabelSchema):
        return name_or_path
    if str(name_or_path) in BUILTIN_SCHEMAS:
        return BUILTIN_SCHEMAS[str(name_or_path)]
    return load_schema(name_or_path)


def load_schema(path: str | Path) -> LabelSchema:
    """Read a schema file (YAML or JSON) with keys ``name``, ``classes`` and optional ``flip_pairs``, ``colors``.

    ``classes`` is a list of names (label value = position) or a mapping ``{value: name}`` with values 0..N-1.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"schema file does not exist (built-in schemas: {', '.join(BUILTIN_SCHEMAS)})")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is a user error here
        raise DataError(path, f"schema file cannot be parsed: {exc}") from None
    if not isinstance(raw, dict) or "classes" not in raw:
        raise DataError(path, "schema file must be a mapping with a 'classes' list (and optional 'name', "
                              "'flip_pairs', 'colors')")
    classes = raw["classes"]
    if isinstance(classes, dict):
        try:
            keys = sorted(int(k) for k in classes)
        except (TypeError, ValueError):
            raise DataError(path, "'classes' mapping keys must be integer label values") from None
        if keys != list(range(len(keys))):
            raise DataError(path, f"'classes' label values must be 0..{len(keys) - 1} without gaps, got {keys}")
        classes = [classes.get(k, classes.get(str(k))) for k in keys]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataError(path, "'classes' must be a list of class names")
    try:
        return LabelSchema(
            name=str(raw.get("name", path.stem)),
            classes=tuple(classes),
            flip_pairs=tuple(tuple(int(v) for v in p) for p in raw.get("flip_pairs", []) or []),
            colors=tuple(tuple(int(v) for v in c) for c in raw.get("colors", []) or []),
        )
    except (ValueError, TypeError) as exc:
        raise DataError(path, f"invalid schema: {exc}") from None


def save_schema(schema: LabelSchema, path: str | Path) -> Path:
    from genkit.core.files import atomic_write_json

    return atomic_write_json(path, schema.to_dict())
