"""Notebook-friendly editing API on a trained portrait generator.

    editor = PortraitEditor.from_checkpoint("last.ckpt")          # the better of raw / EMA weights (validation)
    out = editor.reconstruct("face.png", "face_mask.png")
    out = editor.transfer("face.png", "face_mask.png", {"mouth": ("b.png", "b_mask.png"), "hair": "c.png"})
    out = editor.regenerate("face.png", "face_mask.png", edited_mask)  # move/resize/reshape parts in the mask
    outs = editor.sample("face.png", "face_mask.png", "mouth", n=4)    # VAE-trained models only
    grid = editor.transfer_grid(targets, donors, ["mouth"])            # targets x donors
    out = editor.edit_photo("group.jpg", detector, {"hair": "c.png"})  # detect, edit, paste back into the photo
    out.image  # (3, H, W) in [0, 1] at the photo's size;  out.codes  # {component: (latent_dim,) code used}

Images may be paths, PIL images, uint8 arrays (H, W, 3) or float tensors (3, H, W) in [0, 1]; masks may be paths
(8-bit label PNGs), arrays or tensors (H, W) with labels of the model's schema. A photo without a mask is parsed
by the face parser given to the editor. Inputs must be square; the model works at its own resolution (images
resized bicubic, masks nearest).

**The photo is kept.** The generated face is pasted into the photo at the photo's own resolution: outside the edit
region (the union of the photo's and the edited mask's non-background labels, grown and feathered by the
generator's ``paste_grow`` / ``paste_feather``) every output pixel *is* the photo's pixel.
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
from genkit.core.reading import PHOTOS, conversion_note, read_image, read_label_map
from genkit.core.saving import save_image
from genkit.core.tensors import pil_to_tensor
from genkit.models.portrait import compositing
from genkit.models.portrait.encoders import ComponentCodes

log = logging.getLogger(__name__)

ImageLike = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]
MaskLike = Union[str, Path, np.ndarray, torch.Tensor]
ALIASES = {"eyes": ("left_eye", "right_eye")}


@dataclass
class EditResult:
    """One edited portrait: ``image`` (3, H, W) in [0, 1] at the photo's size (the photo's own pixels outside the
    edit region), the label map it was drawn for (model resolution), the codes used, and ``alpha`` (1, H, W): where
    the generated face was pasted (0: the photo's pixel)."""

    image: torch.Tensor
    mask: torch.Tensor
    codes: dict[str, torch.Tensor]
    sources: dict[str, str] = field(default_factory=dict)
    operation: str = ""
    notes: list[str] = field(default_factory=list)
    alpha: torch.Tensor | None = None

    def to_pil(self) -> Image.Image:
        from genkit.core.tensors import tensor_to_pil

        return tensor_to_pil(self.image)

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        meta = {"operation": self.operation, "sources": self.sources, "notes": self.notes, **(metadata or {})}
        return save_image(self.image, path, metadata=meta)


@dataclass
class _Input:
    image: torch.Tensor  # (1, 3, S, S) in [-1, 1]
    mask: torch.Tensor  # (1, S, S) long
    name: str
    parsed: bool = False
    photo: torch.Tensor | None = None  # (1, 3, H, W) in [0, 1]: the photo at its own size
    notes: list[str] = field(default_factory=list)


class PortraitEditor:
    def __init__(self, generator, parser: torch.nn.Module | None = None, device: str | torch.device = "cpu",
                 source: str | None = None, weights: str = "raw", weights_reason: str = "",
                 parser_source: str | None = None, parser_training: dict | None = None):
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
                        expected_image_size: int | None = None) -> "PortraitEditor":
        """Load a training checkpoint (``.ckpt``) or an export; ``parser`` is a parser checkpoint or network.

        ``weights``: ``auto`` takes the generator (raw or EMA) that the last validation found better (EMA when no
        validation ran), ``ema`` or ``raw`` force one. :attr:`weights` and :attr:`weights_reason` say which was used
        and why; every result's notes repeat it."""
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
                     parser_source=parser_source, parser_training=parser_training)
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
        n = self.schema.num_classes
        if isinstance(mask, (str, Path)):
            return read_label_map(mask, n), str(mask)
        arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
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
        """Load, check and resize one image (+ mask, or parse it) to the model's resolution."""
        photo, name = self._load_image(image)
        h, w = photo.shape[-2:]
        if w != h:
            raise DataError(name if name[0] != "<" else None,
                            f"image is {w}x{h}; the portrait model needs square images (crop the face to a square "
                            "first, or use --detect)")
        labels = None
        if mask is not None:
            labels, mask_name = self._load_mask(mask)
            if labels.shape != (h, w):
                raise DataError(mask_name if mask_name[0] != "<" else None,
                                f"mask is {labels.shape[1]}x{labels.shape[0]} but its image {name} is {w}x{h}")
        s = self.image_size
        x = photo if h == s else _resize(photo, s)
        x = to_symmetric(x).unsqueeze(0).to(self.device)
        notes, parsed = [], False
        if labels is None:
            labels = self.parse(x)
            parsed = True
            notes.append("target mask predicted by the face parser")
            from genkit.models.portrait.parser_checks import parser_warnings

            for line in parser_warnings(self.parser_training, getattr(self.parser, "image_size", None), s,
                                        photos=not _known_synthetic(image)):
                log.warning("portrait editor: %s", line)
                notes.append(line)
        else:
            labels = torch.from_numpy(np.ascontiguousarray(resize_labels(labels, s))).unsqueeze(0)
        return _Input(x, labels.long().to(self.device), name, parsed, photo.unsqueeze(0).to(self.device), notes)

    @torch.no_grad()
    def parse(self, image: torch.Tensor) -> torch.Tensor:
        """Label map (B, H, W) of images in [-1, 1] by the face parser."""
        if self.parser is None:
            raise ConfigError("no mask was given and no face parser is loaded: pass a mask, or a parser checkpoint "
                              "(PortraitEditor.from_checkpoint(..., parser=...) / genkit edit --parser CKPT)")
        return self.parser(to_unit(image).clamp(0, 1)).argmax(1)

    def _paste_into_photo(self, raw: torch.Tensor, alpha: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """The generated image (model resolution, [-1, 1]) pasted into the photo at the photo's size, [0, 1]."""
        gen = to_unit(raw.float()).clamp(0, 1)
        if gen.shape[-2:] != photo.shape[-2:]:
            gen = _resize(gen, photo.shape[-1])
            alpha = torch.nn.functional.interpolate(alpha.float(), size=photo.shape[-2:], mode="bilinear",
                                                    align_corners=False)
        return compositing.paste(gen, photo.float(), alpha)

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

    # ------------------------------------------------------------------------------------------- editing
    @torch.no_grad()
    def edit(self, target_image: ImageLike, target_mask: MaskLike | None = None,
             components: dict[str, Any] | None = None, edited_mask: MaskLike | None = None,
             operation: str = "edit") -> EditResult:
        """The general edit: the target's own components, some replaced from ``components`` sources, drawn
        for ``edited_mask`` (default: the target mask), over the target's background."""
        return self._edit(self.prepare(target_image, target_mask), components, edited_mask, operation)

    def _edit(self, target: _Input, components: dict[str, Any] | None = None, edited_mask: MaskLike | None = None,
              operation: str = "edit") -> EditResult:
        G = self.generator
        codes = G.encode(target.image, target.mask)
        sources = {n: target.name for n in self.components}
        notes = [self._weights_note(), *target.notes]
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
        for name in self.components:
            if sources[name] == target.name and not bool(codes.presence[name][0]):
                notes.append(f"{name}: not found in the target; a neutral (zero) code was used")
        layout_mask, photo_mask = target.mask, None
        if edited_mask is not None:
            labels, _ = self._load_mask(edited_mask)
            if labels.shape[0] != labels.shape[1]:
                raise DataError(None, f"edited mask is {labels.shape[1]}x{labels.shape[0]}; masks must be square")
            layout_mask = torch.from_numpy(np.ascontiguousarray(resize_labels(labels, self.image_size)))
            layout_mask = layout_mask.unsqueeze(0).long().to(self.device)
            photo_mask = target.mask  # the edit region covers the face before and after the edit
        out = G.render(layout_mask, codes, target.image, photo_mask)
        image = self._paste_into_photo(out["raw"], out["alpha"], target.photo)
        alpha = out["alpha"]
        if alpha.shape[-2:] != image.shape[-2:]:
            alpha = torch.nn.functional.interpolate(alpha, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return EditResult(image=image[0].cpu(), mask=layout_mask[0].cpu(),
                          codes={k: v[0].cpu() for k, v in codes.z.items()}, sources=sources,
                          operation=operation, notes=notes, alpha=alpha[0].cpu())

    def reconstruct(self, image: ImageLike, mask: MaskLike | None = None) -> EditResult:
        return self.edit(image, mask, operation="reconstruct")

    def transfer(self, target_image: ImageLike, target_mask: MaskLike | None = None,
                 components: dict[str, Any] | None = None) -> EditResult:
        """Replace components (``left_eye``, ``right_eye``, ``eyes``, ``mouth``, ``skin``, ``hair``) by those of
        other faces: each value is an image (parsed), ``(image, mask)``, or a code tensor."""
        if not components:
            raise ConfigError("transfer needs at least one component source, e.g. {'mouth': ('b.png', 'b_mask.png')}")
        return self.edit(target_image, target_mask, components, operation="transfer")

    def regenerate(self, image: ImageLike, mask: MaskLike | None, edited_mask: MaskLike,
                   components: dict[str, Any] | None = None) -> EditResult:
        """Redraw the face for an edited label map (components moved, resized, reshaped), same appearance."""
        return self.edit(image, mask, components, edited_mask=edited_mask, operation="regenerate")

    @torch.no_grad()
    def sample(self, image: ImageLike, mask: MaskLike | None, component: str, n: int = 4, seed: int = 0,
               temperature: float = 1.0) -> list[EditResult]:
        """``n`` appearances of ``component`` drawn from the prior N(0, I) (VAE-trained models only)."""
        if not self.variational:
            raise ConfigError("sampling components needs a model trained with model.generator.variational=true (a VAE "
                              "embedding with its KL term); this checkpoint uses plain autoencoders")
        if n < 1:
            raise ConfigError("n must be >= 1")
        names = self._resolve_names([component])
        target = self.prepare(image, mask)
        base = self._edit(target, operation="sample")
        G = self.generator
        g = torch.Generator().manual_seed(int(seed))
        codes = ComponentCodes({k: v.view(1, -1).repeat(n, 1).to(self.device) for k, v in base.codes.items()})
        for name in names:
            codes.z[name] = (torch.randn(n, G.embedding.latent_dim, generator=g) * temperature).to(self.device)
        masks = target.mask.repeat(n, 1, 1)
        out = G.render(masks, codes, target.image.repeat(n, 1, 1, 1))
        results = []
        for i in range(n):
            sources = dict(base.sources)
            for name in names:
                sources[name] = f"prior sample {i} (seed {seed}, temperature {temperature})"
            image = self._paste_into_photo(out["raw"][i:i + 1], out["alpha"][i:i + 1], target.photo)
            results.append(EditResult(image=image[0].cpu(), mask=masks[i].cpu(),
                                      codes={k: v[i].cpu() for k, v in codes.z.items()}, sources=sources,
                                      operation="sample", notes=list(base.notes), alpha=base.alpha))
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
        into a square crop at the model's resolution, parsed with the editor's parser, edited, and the edited crop
        is warped back into the photo; outside the pasted face every pixel is the photo's own."""
        from genkit.models.parsing.detect import alignment_quad, crop_quad

        if self.parser is None:
            raise ConfigError("editing a whole photograph needs a face parser for the detected face (--parser CKPT)")
        pil = read_image(photo, self.reading) if isinstance(photo, (str, Path)) else photo.convert("RGB")
        name = str(photo) if isinstance(photo, (str, Path)) else "<PIL image>"
        faces = detector(pil)
        if not faces:
            raise DataError(name if name[0] != "<" else None, "no face detected (try a larger or frontal photo, or "
                                                              "crop the face yourself and edit without --detect)")
        quad = alignment_quad(faces[0].landmarks, face_scale)
        crop = crop_quad(pil, quad, self.image_size)
        res = self.edit(crop, None, components,
                        operation=operation or ("transfer" if components else "reconstruct"))
        image, alpha = paste_crop(pil, res.image, res.alpha, quad)
        res.notes.append(f"face {faces[0].box} of {len(faces)} detected, aligned, edited and pasted back")
        res.sources = {k: (name if v == "<PIL image>" else v) for k, v in res.sources.items()}
        return EditResult(image=image, mask=res.mask, codes=res.codes, sources=res.sources,
                          operation=res.operation, notes=res.notes, alpha=alpha)

    def metadata(self) -> dict:
        """Provenance for saved outputs: checkpoint, EMA use, model size/schema, random weights used."""
        from genkit.core import weights

        return {"checkpoint": self.source, "ema_weights": self.used_ema, "generator_weights": self.weights,
                "generator_weights_reason": self.weights_reason, "image_size": self.image_size,
                "schema": self.schema.name, "variational": self.variational,
                "parser": self.parser_source if self.parser_source else (self.parser is not None),
                "weights": weights.provenance(), "random_weights": weights.used_random_weights(),
                "training": self.training, "image_reading": self.reading.record(),
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
