"""Notebook-friendly editing API on a trained portrait generator.

    editor = PortraitEditor.from_checkpoint("last.ckpt")          # the better of raw / EMA weights (validation)
    out = editor.reconstruct("face.png", "face_mask.png")
    out = editor.transfer("face.png", "face_mask.png", {"mouth": ("b.png", "b_mask.png"), "hair": "c.png"})
    out = editor.regenerate("face.png", "face_mask.png", edited_mask)  # move/resize/reshape parts in the mask
    outs = editor.sample("face.png", "face_mask.png", "mouth", n=4)    # VAE-trained models only
    grid = editor.transfer_grid(targets, donors, ["mouth"])            # targets x donors
    out = editor.edit_photo("group.jpg", detector, {"hair": "c.png"})  # detect, edit, paste back into the photo
    out.image  # (3, H, W) in [0, 1] at the photo's size;  out.codes  # {component: (latent_dim,) code used}

Images may be paths, PIL images, uint8 arrays (H, W, 3) or float tensors (3, H, W) in [0, 1], of any size and
aspect ratio; masks may be paths (8-bit label PNGs, or colour-coded masks in the schema's palette: see
:mod:`genkit.data.masks`), arrays or tensors (H, W) with labels of the model's schema, at the photo's size. A photo
without a mask is parsed by the face parser given to the editor. The face is cropped to a square around its labels (and the
edited mask's: :func:`face_box`), edited at the model's resolution, and pasted back at the photo's own resolution.

**An edit touches only what it edits.** The region that is regenerated is the set of pixels whose label changes
plus both label maps' pixels of the components whose appearance changes (a mouth transfer: the mouth), computed on
the full-resolution label maps, grown by ``grow`` and feathered over ``feather`` pixels (both given at 256 px of the
face crop). The blend is split by frequency (:func:`compositing.detail_blend`): in the margin the photo keeps its
own detail. Outside the region every output pixel *is* the photo's pixel; a reconstruction changes nothing.
``region="face"`` regenerates the whole head instead (the generator's own reconstruction).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image

from genkit.data.transforms import resize_labels, to_symmetric, to_unit
from genkit.core.device import resolve_device
from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import PHOTOS, conversion_note, read_image
from genkit.core.saving import save_image
from genkit.core.tensors import pil_to_tensor
from genkit.data.masks import labels_from_colors, read_mask
from genkit.models.portrait import compositing
from genkit.models.portrait.encoders import ComponentCodes

log = logging.getLogger(__name__)

ImageLike = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]
MaskLike = Union[str, Path, np.ndarray, torch.Tensor]
ALIASES = {"eyes": ("left_eye", "right_eye")}
FILLS = ("backdrop", "generator")  # how the backdrop an edit uncovers is filled (PortraitEditor's ``fill``)
# the face crop's side, in extents of the face (non-background labels, hair included): the face fills two thirds of
# it, as in aligned portrait crops, leaving the generator the backdrop around the head and room for the blend band
FACE_MARGIN = 1.5


@dataclass
class EditResult:
    """One edited portrait: ``image`` (3, H, W) in [0, 1] at the photo's size (the photo's own pixels outside the
    edit region), the label map it was drawn for (``mask``: the face crop's, model resolution; ``labels``: at the
    photo's size), the codes used, and ``alpha`` (1, H, W): where the generated face was pasted (0: the photo's
    pixel)."""

    image: torch.Tensor
    mask: torch.Tensor
    codes: dict[str, torch.Tensor]
    sources: dict[str, str] = field(default_factory=dict)
    operation: str = ""
    notes: list[str] = field(default_factory=list)
    alpha: torch.Tensor | None = None
    fill: str = ""  # how the backdrop the edit uncovers was filled: "backdrop", "generator"; "" when none was
    # (H, W) the label map drawn, at the photo's size (what --save-mask writes); None when the face was warped
    # (edit_photo's aligned crop)
    labels: torch.Tensor | None = None

    def to_pil(self) -> Image.Image:
        from genkit.core.tensors import tensor_to_pil

        return tensor_to_pil(self.image)

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        meta = {"operation": self.operation, "sources": self.sources, "notes": self.notes,
                **({"fill": self.fill} if self.fill else {}), **(metadata or {})}
        return save_image(self.image, path, metadata=meta)


@dataclass
class _Input:
    image: torch.Tensor  # (1, 3, S, S) in [-1, 1]
    mask: torch.Tensor  # (1, S, S) long
    name: str
    parsed: bool = False
    photo: torch.Tensor | None = None  # (1, 3, H, W) in [0, 1]: the photo at its own size
    notes: list[str] = field(default_factory=list)
    labels: torch.Tensor | None = None  # (H, W) long: the photo's label map at the photo's size
    box: tuple[int, int, int] = (0, 0, 0)  # (top, left, side): the square face crop in photo pixels (may overhang)


class PortraitEditor:
    def __init__(self, generator, parser: torch.nn.Module | None = None, device: str | torch.device = "cpu",
                 source: str | None = None, weights: str = "raw", weights_reason: str = "",
                 parser_source: str | None = None, parser_training: dict | None = None, grow: float = 2.0,
                 feather: float = 5.0, fill: str = "backdrop"):
        """``grow`` and ``feather``: the margin around the changed pixels that is regenerated, and the blend band
        beyond it, in pixels at 256 px of the face crop (scaled to the crop's size in the photo). ``fill``: the
        backdrop an edit uncovers is continued from the photo's visible backdrop (``backdrop``: colour by membrane
        interpolation, texture quilted from it, :mod:`~genkit.models.portrait.backdrop`; the generator's colour
        drifts inside large holes, measured in docs/portrait.md) or is the generator's fill (``generator``)."""
        if grow < 0 or feather < 0:
            raise ConfigError("grow and feather must be >= 0")
        if fill not in FILLS:
            raise ConfigError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
        self.grow, self.feather, self.fill = float(grow), float(feather), fill
        self.device = resolve_device(device)
        self.parser_source = parser_source
        self.parser_training = dict(parser_training or {})  # what the parser checkpoint says it was trained on
        self.training: dict = {}  # what the checkpoint says about its training (random weights, synthetic data)
        self.generator = generator.to(self.device).eval()
        self.parser = parser.to(self.device).eval() if parser is not None else None
        self.source = source
        self.weights = weights  # "ema" or "raw": which generator weights are in use
        self.weights_reason = weights_reason
        self.reading = PHOTOS  # how photo files are read (genkit.core.reading.ReadPolicy); the CLI sets --strict-modes etc.
        self.input_conversions: dict[str, str] = {}  # photo file -> what reading converted (for the metadata)
        if self.parser is not None:
            multiple = getattr(self.parser, "multiple", 1)
            if self.image_size % multiple:
                raise ConfigError(f"the parser needs sizes divisible by {multiple}; the model works at "
                                  f"{self.image_size} px")

    # ---------------------------------------------------------------------------------------- building
    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, parser: str | Path | torch.nn.Module | None = None,
                        device: str | torch.device = "cpu", weights: str = "auto", expected_schema=None,
                        expected_image_size: int | None = None, grow: float = 2.0,
                        feather: float = 5.0, fill: str = "backdrop") -> "PortraitEditor":
        """Load a training checkpoint (``.ckpt``) or an export; ``parser`` is a parser checkpoint or network.

        ``weights``: ``auto`` takes the generator (raw or EMA) that the last validation found better (EMA when no
        validation ran), ``ema`` or ``raw`` force one. :attr:`weights` and :attr:`weights_reason` say which was used
        and why; every result's notes repeat it. ``grow``, ``feather`` and ``fill``: see :class:`PortraitEditor`."""
        from genkit.models.portrait.checkpoint import load_generator

        gen, block, used, why = load_generator(checkpoint, weights, expected_schema, expected_image_size)
        training = block.get("training", {})
        parser_source, parser_training = None, {}
        if isinstance(parser, (str, Path)):
            from genkit.models.parsing import load_parser
            from genkit.models.portrait.parser_checks import parser_training as read_parser_training

            parser_source = str(parser)
            parser_training = read_parser_training(parser)
            parser = load_parser(parser, expected_schema=gen.schema)
        editor = cls(gen, parser, device, source=str(checkpoint), weights=used, weights_reason=why,
                     parser_source=parser_source, parser_training=parser_training, grow=grow, feather=feather, fill=fill)
        editor.training = dict(training) if isinstance(training, dict) else {}
        log.info("portrait editor: %s generator weights (%s)", used, why)
        return editor

    @property
    def used_ema(self) -> bool:
        return self.weights == "ema"

    @property
    def schema(self):
        return self.generator.schema

    @property
    def image_size(self) -> int:
        return self.generator.image_size

    @property
    def components(self) -> tuple[str, ...]:
        return self.generator.component_names

    @property
    def variational(self) -> bool:
        return self.generator.variational

    # ------------------------------------------------------------------------------------------- inputs
    def _load_image(self, image: ImageLike) -> tuple[torch.Tensor, str]:
        """(3, H, W) float in [0, 1] at the image's own size, and a name for messages."""
        if isinstance(image, (str, Path)):
            img = read_image(image, self.reading)
            if conversion_note(img):
                self.input_conversions[str(image)] = conversion_note(img)
            return pil_to_tensor(img), str(image)
        if isinstance(image, Image.Image):
            return pil_to_tensor(image.convert("RGB")), "<PIL image>"
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise DataError(None, f"image arrays must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
            return pil_to_tensor(Image.fromarray(image)), "<array>"
        if isinstance(image, torch.Tensor):
            t = image.detach().float().cpu()
            if t.dim() == 4 and t.shape[0] == 1:
                t = t[0]
            if t.dim() != 3 or t.shape[0] != 3:
                raise DataError(None, f"image tensors must be (3, H, W) in [0, 1], got {tuple(image.shape)}")
            if float(t.min()) < -1e-3 or float(t.max()) > 1 + 1e-3:
                raise DataError(None, "image tensors must be in [0, 1] (use genkit.data.transforms.to_unit first)")
            return t.clamp(0, 1).contiguous(), "<tensor>"
        raise DataError(None, f"unsupported image type {type(image).__name__}")

    def _load_mask(self, mask: MaskLike) -> tuple[np.ndarray, str]:
        """A label map (H, W) int64 of the model's schema: a file (8-bit labels or a colour-coded mask in the
        schema's palette), an array or a tensor."""
        n = self.schema.num_classes
        if isinstance(mask, (str, Path)):
            return read_mask(mask, self.schema), str(mask)
        arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
            return labels_from_colors(arr, self.schema), "<colour mask>"
        if arr.ndim != 2:
            raise DataError(None, f"a mask must be a (H, W) label map, got shape {arr.shape}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
            raise DataError(None, "mask holds non-integer values; it must be a label map")
        arr = arr.astype(np.int64)
        bad = np.unique(arr[(arr < 0) | (arr >= n)])
        if bad.size:
            raise DataError(None, f"mask label values {', '.join(map(str, bad[:8]))} are outside schema "
                                  f"{self.schema.name!r} (0..{n - 1})")
        return arr, "<mask>"

    def prepare(self, image: ImageLike, mask: MaskLike | None = None) -> _Input:
        """Load and check one photo of any size (+ its label map at the photo's size, or parse it); crop the face
        to a square around it (:func:`face_box`) and resize the crop to the model's resolution."""
        photo, name = self._load_image(image)
        h, w = photo.shape[-2:]
        notes, parsed = [], False
        if mask is not None:
            labels, mask_name = self._load_mask(mask)
            if labels.shape != (h, w):
                raise DataError(mask_name if mask_name[0] != "<" else None,
                                f"mask is {labels.shape[1]}x{labels.shape[0]} but its image {name} is {w}x{h}")
            labels = torch.from_numpy(np.ascontiguousarray(labels)).long()
        else:
            labels, notes = self._parse_photo(photo, image), ["target mask predicted by the face parser"]
            notes += self._parser_notes(image)
            parsed = True
        box = face_box(labels, self.generator.layout.background_label, self.image_size)
        return self._cropped(photo, labels, name, parsed, notes, box)

    def _cropped(self, photo: torch.Tensor, labels: torch.Tensor, name: str, parsed: bool, notes: list[str],
                 box: tuple[int, int, int]) -> _Input:
        """The input of photo (3, H, W) in [0, 1] and its labels (H, W): the square ``box`` at the model's size."""
        s = self.image_size
        crop = crop_square(photo.unsqueeze(0).cpu(), box)
        x = to_symmetric(crop if crop.shape[-1] == s else _resize(crop, s)).to(self.device)
        crop_labels = crop_square(labels[None, None].float().cpu(), box, fill=self.generator.layout.background_label)
        small = resize_labels(crop_labels[0, 0].long().numpy(), s)
        return _Input(x, torch.from_numpy(np.ascontiguousarray(small)).long().unsqueeze(0).to(self.device), name,
                      parsed, photo.unsqueeze(0).to(self.device), notes, labels.to(self.device), box)

    def _parse_photo(self, photo: torch.Tensor, image: ImageLike) -> torch.Tensor:
        """(H, W) labels of a photo (3, H, W) by the parser: the photo padded to a square (edge pixels repeated),
        parsed at the model's size, the labels brought back to the photo's size (nearest)."""
        h, w = photo.shape[-2:]
        side = max(h, w)
        box = ((h - side) // 2, (w - side) // 2, side)
        square = crop_square(photo.unsqueeze(0), box)
        x = to_symmetric(_resize(square, self.image_size) if side != self.image_size else square).to(self.device)
        labels = self.parse(x)[0].float()
        big = torch.nn.functional.interpolate(labels[None, None].cpu(), size=(side, side), mode="nearest")[0, 0]
        return big[-box[0]:-box[0] + h, -box[1]:-box[1] + w].long()

    def _parser_notes(self, image: ImageLike) -> list[str]:
        from genkit.models.portrait.parser_checks import parser_warnings

        lines = parser_warnings(self.parser_training, getattr(self.parser, "image_size", None), self.image_size,
                                photos=not _known_synthetic(image))
        for line in lines:
            log.warning("portrait editor: %s", line)
        return list(lines)

    @torch.no_grad()
    def parse(self, image: torch.Tensor) -> torch.Tensor:
        """Label map (B, H, W) of images in [-1, 1] by the face parser."""
        if self.parser is None:
            raise ConfigError("no mask was given and no face parser is loaded: pass a mask, or a parser checkpoint "
                              "(PortraitEditor.from_checkpoint(..., parser=...) / genkit edit --parser CKPT)")
        return self.parser(to_unit(image).clamp(0, 1)).argmax(1)

    def composite(self, raw: torch.Tensor, target: _Input, edited: torch.Tensor, changed: list[str],
                  region: str = "edit") -> tuple[torch.Tensor, torch.Tensor, str]:
        """The generated crop ``raw`` (1, 3, S, S) in [-1, 1] blended into the photo at the photo's resolution.

        ``edited`` is the edited layout at the photo's size, ``changed`` the components whose appearance changes.
        Returns the image (1, 3, H, W) in [0, 1], the paste weight (1, 1, H, W) and how the backdrop the edit
        uncovers was filled (:attr:`EditResult.fill`). Into a greyscale photo (three equal channels) the generator's
        colour is drawn as its luminance, and the result keeps three equal channels."""
        photo = target.photo.float()
        layout = self.generator.layout
        labels = [lab for n in changed for lab in layout.labels[n]]
        where = compositing.changed_region(target.labels, edited, labels, layout.background_label,
                                           whole_face=region == "face")
        if not bool(where.any()):
            return photo, torch.zeros_like(photo[:, :1]), ""
        top, left, side = target.box
        scale = side / 256.0
        gen = to_unit(raw.float()).clamp(0, 1)
        grey = compositing.is_greyscale(photo)
        gen = compositing.greyscale(gen) if grey else gen
        gen = gen if side == gen.shape[-1] else _resize(gen, side)  # upsampled once, to the crop's size
        canvas, inside = place_square(gen, target.box, photo)
        dist = compositing.distance_to(where)
        grow = self.grow * scale
        alpha = (compositing.ramp(dist, grow, self.feather * scale) * inside)[None, None]
        detail = (compositing.ramp(dist, 0.0, max(grow, 1.0)) * inside)[None, None]
        canvas, fill, filled, kept = self._fill_backdrop(canvas, photo, target.labels, edited, where, inside > 0,
                                                         grow, side)
        sigma = side / self.image_size / 2.0
        image = compositing.detail_blend(canvas, photo, alpha, detail, sigma)
        if filled is not None:  # the harmonised fill is exact, and continues into the photo's own backdrop there
            image = torch.where(filled | kept, canvas, image)
            alpha = torch.where(kept, torch.zeros_like(alpha), torch.where(filled, torch.ones_like(alpha), alpha))
        if grey:  # exactly equal channels (the photo's own pixels are: channel 0 is the photo there)
            image = image[:, :1].expand_as(image).contiguous()
        return image, alpha, fill

    def _fill_backdrop(self, canvas: torch.Tensor, photo: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
                       where: torch.Tensor, inside: torch.Tensor, grow: float, side: int):
        """With ``fill="backdrop"``: the generated canvas with the backdrop the edit uncovers (non-background before,
        background after, plus the ``grow`` margin around it on the backdrop: ``filled``) drawn from the photo's
        visible backdrop (:func:`~genkit.models.portrait.backdrop.fill_uncovered`), and the photo on that visible
        backdrop. Returns the canvas, how the uncovered backdrop was
        filled ("" when nothing is uncovered), ``filled`` and ``kept`` (H, W) bool or None: the visible backdrop
        nearer to the fill than to the rest of the edit, where the photo is kept exactly (no blend band: the fill
        continues it)."""
        from genkit.models.portrait import backdrop

        bg = self.generator.layout.background_label
        uncovered = (before != bg) & (after == bg) & inside
        if not bool(uncovered.any()):
            return canvas, "", None, None
        visible = (before == bg) & (after == bg)
        if self.fill == "generator" or not bool(visible.any()):  # (no backdrop to take from: the generator's)
            return canvas, "generator", None, None
        to_fill = compositing.distance_to(uncovered)
        filled = (uncovered | (visible & (to_fill <= grow))) & inside
        source = visible & ~filled
        out = backdrop.fill_uncovered(canvas, photo, filled, source, sigma=side / self.image_size)
        kept = source & (to_fill < compositing.distance_to(where & ~uncovered))
        return torch.where(source[None, None], photo, out), "backdrop", filled, kept

    # -------------------------------------------------------------------------------------------- codes
    @torch.no_grad()
    def encode(self, image: ImageLike, mask: MaskLike | None = None) -> dict[str, torch.Tensor]:
        """The component codes of a face: ``{component: (latent_dim,)}``."""
        inp = self.prepare(image, mask)
        codes = self.generator.encode(inp.image, inp.mask)
        return {k: v[0].cpu() for k, v in codes.z.items()}

    def _resolve_names(self, names) -> list[str]:
        out = []
        for n in names:
            for m in ALIASES.get(n, (n,)):
                if m not in self.components:
                    raise ConfigError(f"unknown component {n!r}; components: {', '.join(self.components)}"
                                      f" (alias: eyes)")
                out.append(m)
        return out

    def _source_codes(self, source: Any) -> tuple[ComponentCodes | None, torch.Tensor | None, str]:
        """A component source: an image, ``(image, mask)``, or a latent code tensor (latent_dim,)."""
        if isinstance(source, torch.Tensor) and source.dim() == 1:
            if source.numel() != self.generator.embedding.latent_dim:
                raise ConfigError(f"a component code must have {self.generator.embedding.latent_dim} values, "
                                  f"got {source.numel()}")
            return None, source.to(self.device).float(), "<code>"
        image, mask = source if isinstance(source, tuple) else (source, None)
        inp = self.prepare(image, mask)
        codes = self.generator.encode(inp.image, inp.mask)
        return codes, None, inp.name + (" (parsed)" if inp.parsed else "")

    def _weights_note(self) -> str:
        return f"generator weights: {self.weights}" + (f" ({self.weights_reason})" if self.weights_reason else "")

    def _component_codes(self, target: _Input, components: dict[str, Any] | None
                         ) -> tuple[ComponentCodes, dict[str, str], list[str], list[str]]:
        """The target's codes with ``components`` replaced; their sources, notes and the replaced names."""
        codes = self.generator.encode(target.image, target.mask)
        sources = {n: target.name for n in self.components}
        notes, changed = [self._weights_note(), *target.notes], []
        for key, src in (components or {}).items():
            names = self._resolve_names([key])
            src_codes, raw, label = self._source_codes(src)
            for name in names:
                if raw is not None:
                    codes.z[name] = raw.view(1, -1)
                else:
                    codes.z[name] = src_codes.z[name]
                    if not bool(src_codes.presence[name][0]):
                        notes.append(f"{name}: not found in {label}; a neutral (zero) code was used")
                sources[name] = label
                changed.append(name)
        for name in self.components:
            if name not in changed and not bool(codes.presence[name][0]):
                notes.append(f"{name}: not found in the target; a neutral (zero) code was used")
        return codes, sources, notes, changed

    def _absent_notes(self, names: list[str], layout: torch.Tensor, verb: str = "transfer") -> list[str]:
        """Notes (also logged as warnings) for the components asked for that have no pixel in ``layout`` (the label
        map drawn, at the photo's size): nothing of theirs can change."""
        notes = []
        for name in dict.fromkeys(names):
            classes = torch.tensor(self.generator.layout.labels[name], device=layout.device)
            if not bool(torch.isin(layout, classes).any()):
                notes.append(f"{name}: not in the target's mask; nothing to {verb}")
                log.warning("portrait editor: %s", notes[-1])
        return notes

    def _edited_labels(self, target: _Input, edited_mask: MaskLike) -> torch.Tensor:
        """The edited label map (H, W) at the photo's size; a mask of any other size is refused (resizing a label
        map redraws every outline)."""
        labels, name = self._load_mask(edited_mask)
        h, w = target.labels.shape
        if labels.shape != (h, w):
            raise DataError(name if name[0] != "<" else None,
                            f"edited mask is {labels.shape[1]}x{labels.shape[0]} but its image {target.name} is "
                            f"{w}x{h}")
        return torch.from_numpy(np.ascontiguousarray(labels)).long().to(self.device)

    def _edited_layout(self, target: _Input, full: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The edited label map at the photo's size (H, W) (``full``; None: the target's) and in the face crop at
        the model's size (1, S, S)."""
        if full is None:
            return target.labels, target.mask
        crop = crop_square(full[None, None].float(), target.box, fill=self.generator.layout.background_label)
        small = resize_labels(crop[0, 0].long().cpu().numpy(), self.image_size)
        return full, torch.from_numpy(np.ascontiguousarray(small)).long().unsqueeze(0).to(self.device)

    # ------------------------------------------------------------------------------------------- editing
    @torch.no_grad()
    def edit(self, target_image: ImageLike, target_mask: MaskLike | None = None,
             components: dict[str, Any] | None = None, edited_mask: MaskLike | None = None,
             operation: str = "edit", region: str = "edit") -> EditResult:
        """The general edit: the target's own components, some replaced from ``components`` sources, drawn
        for ``edited_mask`` (default: the target mask; at the photo's size), over the target's background.

        ``region``: ``"edit"`` (default) regenerates only what the edit changes (changed labels and the replaced
        components); ``"face"`` regenerates the whole head (every non-background label)."""
        return self._edit(self.prepare(target_image, target_mask), components, edited_mask, operation, region)

    def _edit(self, target: _Input, components: dict[str, Any] | None = None, edited_mask: MaskLike | None = None,
              operation: str = "edit", region: str = "edit") -> EditResult:
        if region not in ("edit", "face"):
            raise ConfigError(f"region must be 'edit' or 'face', got {region!r}")
        G = self.generator
        full = None if edited_mask is None else self._edited_labels(target, edited_mask)
        if full is not None:  # the crop covers the face of both label maps, so all of the edit is drawn
            bg = G.layout.background_label
            both = torch.where(target.labels != bg, target.labels, full)
            box = face_box(both, bg, self.image_size)
            if box != target.box:
                target = self._cropped(target.photo[0], target.labels, target.name, target.parsed, target.notes, box)
        codes, sources, notes, changed = self._component_codes(target, components)
        edited, layout_mask = self._edited_layout(target, full)
        notes += self._absent_notes(changed, edited)
        raw = G.synthesize(layout_mask, codes, target.image, G.known_background(target.mask, layout_mask))
        image, alpha, fill = self.composite(raw, target, edited, changed, region)
        return EditResult(image=image[0].cpu(), mask=layout_mask[0].cpu(),
                          codes={k: v[0].cpu() for k, v in codes.z.items()}, sources=sources,
                          operation=operation, notes=notes, alpha=alpha[0].cpu(), fill=fill, labels=edited.cpu())

    def reconstruct(self, image: ImageLike, mask: MaskLike | None = None, region: str = "edit") -> EditResult:
        """The face from its own codes: nothing changes, so the photo comes back, unless ``region="face"`` (the
        whole head as the generator draws it)."""
        return self.edit(image, mask, operation="reconstruct", region=region)

    def transfer(self, target_image: ImageLike, target_mask: MaskLike | None = None,
                 components: dict[str, Any] | None = None, region: str = "edit") -> EditResult:
        """Replace components (``left_eye``, ``right_eye``, ``eyes``, ``mouth``, ``skin``, ``hair``) by those of
        other faces: each value is an image (parsed), ``(image, mask)``, or a code tensor. Only those components'
        regions are regenerated (``region="face"``: the whole head)."""
        if not components:
            raise ConfigError("transfer needs at least one component source, e.g. {'mouth': ('b.png', 'b_mask.png')}")
        return self.edit(target_image, target_mask, components, operation="transfer", region=region)

    def regenerate(self, image: ImageLike, mask: MaskLike | None, edited_mask: MaskLike,
                   components: dict[str, Any] | None = None, region: str = "edit") -> EditResult:
        """Redraw the face for an edited label map (components moved, resized, reshaped), same appearance: the
        pixels whose label changes are regenerated (plus the regions of any ``components`` replaced)."""
        return self.edit(image, mask, components, edited_mask=edited_mask, operation="regenerate", region=region)

    @torch.no_grad()
    def sample(self, image: ImageLike, mask: MaskLike | None, component: str, n: int = 4, seed: int = 0,
               temperature: float = 1.0) -> list[EditResult]:
        """``n`` appearances of ``component`` drawn from the prior N(0, I) (VAE-trained models only); only that
        component's region is regenerated."""
        if not self.variational:
            raise ConfigError("sampling components needs a model trained with model.generator.variational=true (a VAE "
                              "embedding with its KL term); this checkpoint uses plain autoencoders")
        if n < 1:
            raise ConfigError("n must be >= 1")
        names = self._resolve_names([component])
        target = self.prepare(image, mask)
        G = self.generator
        base, sources, notes, _ = self._component_codes(target, None)
        notes += self._absent_notes(names, target.labels, "sample")
        g = torch.Generator().manual_seed(int(seed))
        codes = ComponentCodes({k: v.repeat(n, 1) for k, v in base.z.items()})
        for name in names:
            codes.z[name] = (torch.randn(n, G.embedding.latent_dim, generator=g) * temperature).to(self.device)
        masks = target.mask.repeat(n, 1, 1)
        raw = G.synthesize(masks, codes, target.image.repeat(n, 1, 1, 1), G.known_background(masks))
        results = []
        for i in range(n):
            drawn = dict(sources)
            for name in names:
                drawn[name] = f"prior sample {i} (seed {seed}, temperature {temperature})"
            image_i, alpha, _ = self.composite(raw[i:i + 1], target, target.labels, names)
            results.append(EditResult(image=image_i[0].cpu(), mask=masks[i].cpu(),
                                      codes={k: v[i].cpu() for k, v in codes.z.items()}, sources=drawn,
                                      operation="sample", notes=list(notes), alpha=alpha[0].cpu(),
                                      labels=target.labels.cpu()))
        return results

    # ----------------------------------------------------------------------------------- batches of edits
    @torch.no_grad()
    def transfer_grid(self, targets: list, donors: list, components: list[str]) -> list[list[EditResult]]:
        """Every target (``image`` or ``(image, mask)``) with ``components`` taken from every donor:
        ``grid[i][j]`` is target ``i`` with donor ``j``'s components."""
        if not targets or not donors:
            raise ConfigError("transfer_grid needs at least one target and one donor")
        names = self._resolve_names(components)
        prepared = [self.prepare(*(t if isinstance(t, tuple) else (t, None))) for t in targets]
        donor_codes = [self._source_codes(d) for d in donors]
        grid = []
        for target in prepared:
            row = []
            for codes, _, label in donor_codes:
                picked = {n: codes.z[n][0] for n in names}
                res = self._edit(target, picked, operation="transfer")
                for n in names:
                    res.sources[n] = label
                    if not bool(codes.presence[n][0]):
                        res.notes.append(f"{n}: not found in {label}; a neutral (zero) code was used")
                row.append(res)
            grid.append(row)
        return grid

    # ------------------------------------------------------------------------------- whole photographs
    @torch.no_grad()
    def edit_photo(self, photo: str | Path | Image.Image, detector, components: dict[str, Any] | None = None,
                   face_scale: float = 1.0, operation: str | None = None) -> EditResult:
        """Edit the largest face of a photograph of any size and paste it back.

        The face is detected (``detector``: e.g. :class:`genkit.models.parsing.detect.MTCNNDetector`) and aligned
        into a square crop at the face's own resolution in the photo (at least the model's), parsed with the
        editor's parser, edited (only what the edit changes), and the edited crop is warped back into the photo;
        outside the pasted region every pixel is the photo's own."""
        from genkit.models.parsing.detect import alignment_quad, crop_quad

        if self.parser is None:
            raise ConfigError("editing a whole photograph needs a face parser for the detected face (--parser CKPT)")
        pil = read_image(photo, self.reading) if isinstance(photo, (str, Path)) else photo.convert("RGB")
        name = str(photo) if isinstance(photo, (str, Path)) else "<PIL image>"
        faces = detector(pil)
        if not faces:
            raise DataError(name if name[0] != "<" else None, "no face detected (try a larger or frontal photo, or "
                                                              "edit without --detect, giving the photo's label map "
                                                              "with --mask: `genkit parse --size photo` writes one)")
        quad = alignment_quad(faces[0].landmarks, face_scale)
        side = int(np.ceil(np.hypot(*(quad[3] - quad[0]))))
        crop = crop_quad(pil, quad, max(self.image_size, side))
        res = self.edit(crop, None, components,
                        operation=operation or ("transfer" if components else "reconstruct"))
        image, alpha = paste_crop(pil, res.image, res.alpha, quad)
        res.notes.append(f"face {faces[0].box} of {len(faces)} detected, aligned, edited and pasted back")
        res.sources = {k: (name if v == "<PIL image>" else v) for k, v in res.sources.items()}
        return EditResult(image=image, mask=res.mask, codes=res.codes, sources=res.sources,
                          operation=res.operation, notes=res.notes, alpha=alpha, fill=res.fill)

    def metadata(self) -> dict:
        """Provenance for saved outputs: checkpoint, EMA use, model size/schema, random weights used."""
        from genkit.core import weights

        return {"checkpoint": self.source, "ema_weights": self.used_ema, "generator_weights": self.weights,
                "generator_weights_reason": self.weights_reason, "image_size": self.image_size,
                "schema": self.schema.name, "variational": self.variational,
                "parser": self.parser_source if self.parser_source else (self.parser is not None),
                "weights": weights.provenance(), "random_weights": weights.used_random_weights(),
                "training": self.training, "image_reading": self.reading.record(), "fill_option": self.fill,
                **({"input_conversions": dict(self.input_conversions)} if self.input_conversions else {})}


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 3, H, W) in [0, 1] -> square ``size`` (bicubic with antialiasing when shrinking), clamped."""
    x = image if image.dim() == 4 else image.unsqueeze(0)
    out = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bicubic", align_corners=False,
                                          antialias=size < x.shape[-1]).clamp(0, 1)
    return out if image.dim() == 4 else out[0]


def _known_synthetic(image) -> bool:
    """Whether ``image`` is a file of a synthetic-face folder (``genkit data synth`` writes SYNTHETIC.json)."""
    if not isinstance(image, (str, Path)):
        return False
    p = Path(image).resolve()
    return any((d / "SYNTHETIC.json").exists() for d in (p.parent, p.parent.parent))


def paste_crop(photo: Image.Image, crop: torch.Tensor, alpha: torch.Tensor, quad: np.ndarray
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp an edited aligned crop (3, S, S) and its paste weight (1, S, S) back into ``photo`` through the inverse of
    the alignment ``quad`` (corners top-left, bottom-left, bottom-right, top-right in photo pixels, as
    :func:`~genkit.models.parsing.detect.crop_quad` used). Returns the photo (3, H, W) in [0, 1] with the face
    pasted, equal to the photo wherever the warped weight is 0, and that weight (1, H, W)."""
    size = crop.shape[-1]
    q = np.asarray(quad, dtype=np.float64) + 0.5  # pixel indices -> PIL's continuous coordinates
    origin, x_axis, y_axis = q[0], q[3] - q[0], q[1] - q[0]
    inv = np.linalg.inv(np.stack([x_axis, y_axis], 1)) * size  # photo offset -> crop coordinates
    coeffs = (inv[0, 0], inv[0, 1], -(inv[0] @ origin), inv[1, 0], inv[1, 1], -(inv[1] @ origin))
    w, h = photo.size

    def warp(channel: np.ndarray, resample) -> np.ndarray:
        img = Image.fromarray(channel.astype(np.float32), mode="F")
        return np.asarray(img.transform((w, h), Image.AFFINE, coeffs, resample=resample, fillcolor=0.0))

    a = warp(alpha[0].numpy(), Image.BILINEAR)
    a = np.where(a > 1e-6, np.clip(a, 0, 1), 0.0)
    face = np.stack([warp(c, Image.BICUBIC) for c in crop.numpy()])
    base = pil_to_tensor(photo)
    warped_alpha = torch.from_numpy(a).float().unsqueeze(0)
    pasted = compositing.paste(torch.from_numpy(np.clip(face, 0, 1)).float(), base, warped_alpha)
    return pasted, warped_alpha


def face_box(labels: torch.Tensor, background_label: int = 0, min_side: int = 0) -> tuple[int, int, int]:
    """The square face crop ``(top, left, side)`` of a photo with label map ``labels`` (H, W), around the face (the
    non-background labels).

    A face that, with a margin of ``FACE_MARGIN`` times its extent, fits in the photo's shorter side gets a square of
    that size (at least ``min_side``, the model's resolution, where the photo allows), kept inside the photo: a small
    face in a large photo fills the model's input. A larger face gets a square of the shorter side (a square photo:
    the whole photo), or, for a face larger than that, a square around the face that overhangs the photo (the
    overhang is filled with the photo's edge pixels). No face: the centre square of the shorter side."""
    h, w = labels.shape[-2:]
    short = min(h, w)
    ys, xs = torch.nonzero(labels != background_label, as_tuple=True)
    if len(ys) == 0:
        y0, y1, x0, x1 = 0, h - 1, 0, w - 1
        extent = need = short
    else:
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
        extent = max(y1 - y0 + 1, x1 - x0 + 1)
        need = max(int(np.ceil(extent * FACE_MARGIN)), min(min_side, short))
    side = need if need < short else max(short, extent)

    def place(lo: int, hi: int, length: int) -> int:
        start = (lo + hi + 1 - side) // 2
        return start if side > length else min(max(start, 0), length - side)

    return place(y0, y1, h), place(x0, x1, w), int(side)


def crop_square(images: torch.Tensor, box: tuple[int, int, int], fill: float | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, side, side): the square ``box`` = (top, left, side); where it overhangs the image the
    edge pixels are repeated (``fill=None``) or ``fill`` is used."""
    top, left, side = box
    h, w = images.shape[-2:]
    pads = (max(0, -left), max(0, left + side - w), max(0, -top), max(0, top + side - h))
    if any(pads):
        images = (torch.nn.functional.pad(images, pads, mode="replicate") if fill is None
                  else torch.nn.functional.pad(images, pads, value=float(fill)))
        top, left = top + pads[2], left + pads[0]
    return images[..., top:top + side, left:left + side]


def place_square(crop: torch.Tensor, box: tuple[int, int, int], photo: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo (B, C, H, W) with ``crop`` (B, C, side, side) written at ``box``, and the (H, W) indicator of
    the pixels it covers."""
    top, left, side = box
    h, w = photo.shape[-2:]
    y0, y1, x0, x1 = max(top, 0), min(top + side, h), max(left, 0), min(left + side, w)
    canvas = photo.clone()
    canvas[..., y0:y1, x0:x1] = crop[..., y0 - top:y1 - top, x0 - left:x1 - left].to(photo.dtype)
    inside = torch.zeros(h, w, device=photo.device)
    inside[y0:y1, x0:x1] = 1.0
    return canvas, inside
