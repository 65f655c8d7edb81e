"""Portrait editing for the app, on the public :class:`~genkit.models.portrait.editor.PortraitEditor` API.

Photos of any shape: the model edits the largest centred square at the photo's own resolution, and the result is
that square pasted back into the photo (every pixel outside it is the photo's own). The label map always has the
photo's size; a parser sees only the square, so the map is background outside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from genkit.core.errors import ConfigError, DataError
from genkit.core.tensors import pil_to_tensor, tensor_to_pil
from genkit.data.schemas import HELEN11
from genkit.data.transforms import resize_labels

log = logging.getLogger(__name__)


def square_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the largest centred square of an image of ``size`` (w, h)."""
    w, h = size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return left, top, left + s, top + s


def _crop_labels(labels: np.ndarray, box) -> np.ndarray:
    return np.ascontiguousarray(labels[box[1]:box[3], box[0]:box[2]])


@dataclass
class EditOutcome:
    """One edit at the photo's size: the image, the label map it was drawn for, where the face was pasted
    (``region``, bool (H, W)), the codes used, notes, and the parser's agreement with the edited mask."""

    image: Image.Image
    labels: np.ndarray
    region: np.ndarray
    codes: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)
    agreement: float | None = None


class PortraitService:
    """The editor and the parser the app was started with (either may be absent), and what they say about
    themselves (:meth:`banners`)."""

    def __init__(self, editor=None, parser=None, parser_name: str | None = None, parser_notes=()):
        self.editor, self.parser, self.parser_name = editor, parser, parser_name
        self.parser_notes = list(parser_notes)

    @classmethod
    def load(cls, checkpoint: str | None = None, parser: str | None = None, device: str = "cpu"
             ) -> PortraitService:
        editor = None
        if checkpoint:
            from genkit.models.portrait.editor import PortraitEditor

            editor = PortraitEditor.from_checkpoint(checkpoint, device=device)
        net, notes = None, []
        if parser:
            from genkit.models.parsing import load_parser_with_info

            net, info = load_parser_with_info(parser, expected_schema=editor.schema if editor else None)
            net = net.to(device).eval()
            if info.schema.name != net.schema.name:
                notes.append(f"the parser labels {info.schema.name}; its masks are mapped onto {net.schema.name} "
                             "through the declared table")
            notes += _parser_training_notes(parser)
        return cls(editor, net, parser, notes)

    @property
    def schema(self):
        if self.editor is not None:
            return self.editor.schema
        return self.parser.schema if self.parser is not None else HELEN11

    def banners(self) -> list[str]:
        """Honest lines about the loaded models, as the CLI's notes say them."""
        from genkit.core import weights

        out = []
        if self.editor is None:
            out.append("no portrait model: start with `genkit ui --checkpoint PORTRAIT.ckpt` to edit (parsing and "
                       "painting work without one)")
        else:
            training = self.editor.training
            if training.get("random_weights") or weights.used_random_weights():
                out.append("RANDOM pretrained weights were used by this model's training: results are smoke tests")
            if training.get("synthetic_data"):
                out.append("this portrait model was trained on SYNTHETIC faces (demo quality only)")
            out.append(f"generator weights: {self.editor.weights} ({self.editor.weights_reason})")
        if self.parser is None:
            out.append("no face parser: upload a label map with each photo, or start with `--parser NAME|CKPT`")
        return out + self.parser_notes

    # -------------------------------------------------------------------------------------- parsing
    def parse(self, photo: Image.Image) -> np.ndarray:
        """(H, W) labels of the photo's size: the parser's map of its centred square, background outside."""
        if self.parser is None:
            raise ConfigError("no face parser is loaded: upload a label map, or start the app with --parser")
        from genkit.models.parsing.inference import predict_labels

        box = square_box(photo.size)
        side = box[2] - box[0]
        size = int(getattr(self.parser, "image_size", 0) or 256)
        multiple = int(getattr(self.parser, "multiple", 1))
        size = max(multiple, size // multiple * multiple)
        crop = photo.crop(box).resize((size, size), Image.BICUBIC)
        device = next(self.parser.parameters()).device
        labels = np.zeros((photo.height, photo.width), dtype=np.int64)
        labels[box[1]:box[3], box[0]:box[2]] = resize_labels(predict_labels(self.parser, crop, device), side)
        return labels

    def agreement(self, image: Image.Image, labels: np.ndarray) -> float | None:
        """Share of face pixels (non-background in either map) where the parser's reading of ``image``
        agrees with ``labels``; ``None`` without a parser."""
        if self.parser is None:
            return None
        parsed = self.parse(image)
        face = (parsed > 0) | (labels > 0)
        return float((parsed[face] == labels[face]).mean()) if face.any() else 1.0

    # -------------------------------------------------------------------------------------- editing
    def _need_editor(self):
        if self.editor is None:
            raise ConfigError("no portrait model is loaded: start the app with --checkpoint PORTRAIT.ckpt")
        return self.editor

    def blended_codes(self, crop: Image.Image, crop_labels: np.ndarray, donor: Image.Image,
                      donor_labels: np.ndarray | None, components, alpha: float) -> dict[str, torch.Tensor]:
        """Per component, (1 - alpha) * the target's code + alpha * the donor's; at alpha 0 nothing changes, so no
        code is given and the edit keeps those components as the photo shows them."""
        editor = self._need_editor()
        names = [m for c in components for m in ({"eyes": ("left_eye", "right_eye")}.get(c, (c,)))]
        unknown = [n for n in names if n not in editor.components]
        if unknown:
            raise ConfigError(f"unknown component {unknown[0]!r}; components: {', '.join(editor.components)}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        if float(alpha) == 0.0:
            return {}
        box = square_box(donor.size)
        d_labels = self.parse(donor) if donor_labels is None else donor_labels
        own = editor.encode(crop, crop_labels)
        theirs = editor.encode(donor.crop(box), _crop_labels(d_labels, box))
        return {n: (1 - alpha) * own[n] + alpha * theirs[n] for n in names}

    def edit(self, photo: Image.Image, labels: np.ndarray, edited: np.ndarray | None = None,
             donor: Image.Image | None = None, donor_labels: np.ndarray | None = None, components=(),
             alpha: float = 1.0) -> EditOutcome:
        """Redraw the photo's face for ``edited`` (default: ``labels``), with ``components`` blended from the
        donor's codes; the result has the photo's size."""
        editor = self._need_editor()
        edited = labels if edited is None else edited
        for what, arr in (("label map", labels), ("edited mask", edited)):
            if arr.shape != (photo.height, photo.width):
                raise DataError(None, f"the {what} is {arr.shape[1]}x{arr.shape[0]} px but the photo is "
                                      f"{photo.width}x{photo.height} px")
        box = square_box(photo.size)
        crop, crop_labels = photo.crop(box), _crop_labels(labels, box)
        sources = None
        if donor is not None and components:
            sources = self.blended_codes(crop, crop_labels, donor, donor_labels, components, alpha)
        changed = not np.array_equal(edited, labels)
        res = editor.edit(crop, crop_labels, sources, edited_mask=_crop_labels(edited, box) if changed else None,
                          operation="ui")
        image = pil_to_tensor(photo)
        image[:, box[1]:box[3], box[0]:box[2]] = res.image
        region = np.zeros(edited.shape, dtype=bool)
        if res.alpha is not None:
            region[box[1]:box[3], box[0]:box[2]] = res.alpha[0].numpy() > 0
        out = tensor_to_pil(image)
        return EditOutcome(out, edited.copy(), region, res.codes, list(res.notes), self.agreement(out, edited))

    def sample(self, photo: Image.Image, labels: np.ndarray, component: str, n: int = 4, seed: int = 0
               ) -> list[Image.Image]:
        """``n`` appearances of ``component`` from a VAE model's prior, each pasted into the photo."""
        editor = self._need_editor()
        box = square_box(photo.size)
        results = editor.sample(photo.crop(box), _crop_labels(labels, box), component, n=n, seed=seed)
        outs = []
        for res in results:
            image = pil_to_tensor(photo)
            image[:, box[1]:box[3], box[0]:box[2]] = res.image
            outs.append(tensor_to_pil(image))
        return outs


def _parser_training_notes(parser: str) -> list[str]:
    from pathlib import Path

    if not Path(parser).is_file():
        return []
    from genkit.models.portrait.parser_checks import parser_training

    try:
        training = parser_training(parser)
    except Exception:  # noqa: BLE001 - a BiSeNet state dict has no training record
        return []
    return ["the face parser was trained on SYNTHETIC faces; its masks of real photos are unreliable"] \
        if training.get("synthetic_data") else []
