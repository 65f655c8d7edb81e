"""Notebook-friendly editing API on a trained portrait generator.

    editor = PortraitEditor.from_checkpoint("last.ckpt")          # EMA weights when the run kept them
    out = editor.reconstruct("face.png", "face_mask.png")
    out = editor.transfer("face.png", "face_mask.png", {"mouth": ("b.png", "b_mask.png"), "hair": "c.png"})
    out = editor.regenerate("face.png", "face_mask.png", edited_mask)  # move/resize/reshape parts in the mask
    outs = editor.sample("face.png", "face_mask.png", "mouth", n=4)    # VAE-trained models only
    out.image  # (3, H, W) in [0, 1];  out.codes  # {component: (latent_dim,) code used};  out.save("x.png")

Images may be paths, PIL images, uint8 arrays (H, W, 3) or float tensors (3, H, W) in [0, 1]; masks may be paths
(8-bit label PNGs), arrays or tensors (H, W) with labels of the model's schema. A photo without a mask is parsed
by the face parser given to the editor. Inputs must be square; they are resized to the model's resolution
(images bicubic, masks nearest) and results come out at that resolution. The target image's background is kept
(wherever the target mask, and the original mask when the layout is edited, say background).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image

from genkit.data.transforms import resize_image, resize_labels, to_symmetric, to_unit
from genkit.device import resolve_device
from genkit.errors import ConfigError, DataError
from genkit.io import PHOTOS, conversion_note, pil_to_tensor, read_image, read_label_map, save_image
from genkit.models.portrait.encoders import ComponentCodes

log = logging.getLogger(__name__)

ImageLike = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]
MaskLike = Union[str, Path, np.ndarray, torch.Tensor]
ALIASES = {"eyes": ("left_eye", "right_eye")}


@dataclass
class EditResult:
    """One edited portrait: ``image`` (3, H, W) in [0, 1], the label map it was drawn for, and the codes used."""

    image: torch.Tensor
    mask: torch.Tensor
    codes: dict[str, torch.Tensor]
    sources: dict[str, str] = field(default_factory=dict)
    operation: str = ""
    notes: list[str] = field(default_factory=list)

    def to_pil(self) -> Image.Image:
        from genkit.io import tensor_to_pil

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


class PortraitEditor:
    def __init__(self, generator, parser: torch.nn.Module | None = None, device: str | torch.device = "cpu",
                 source: str | None = None, used_ema: bool = False, parser_source: str | None = None):
        self.device = resolve_device(device)
        self.parser_source = parser_source
        self.training: dict = {}  # what the checkpoint says about its training (random weights, synthetic data)
        self.generator = generator.to(self.device).eval()
        self.parser = parser.to(self.device).eval() if parser is not None else None
        self.source = source
        self.used_ema = used_ema
        self.reading = PHOTOS  # how photo files are read (genkit.io.ReadPolicy); the CLI sets --strict-modes etc.
        self.input_conversions: dict[str, str] = {}  # photo file -> what reading converted (for the metadata)
        if self.parser is not None:
            multiple = getattr(self.parser, "multiple", 1)
            if self.image_size % multiple:
                raise ConfigError(f"the parser needs sizes divisible by {multiple}; the model works at "
                                  f"{self.image_size} px")

    # ---------------------------------------------------------------------------------------- building
    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, parser: str | Path | torch.nn.Module | None = None,
                        device: str | torch.device = "cpu", use_ema: bool = True, expected_schema=None,
                        expected_image_size: int | None = None) -> "PortraitEditor":
        """Load a training checkpoint (``.ckpt``) or an export; ``parser`` is a parser checkpoint or network."""
        from genkit.models.portrait.checkpoint import load_generator

        gen, block, used_ema = load_generator(checkpoint, use_ema, expected_schema, expected_image_size)
        training = block.get("training", {})
        parser_source = None
        if isinstance(parser, (str, Path)):
            from genkit.models.parsing import load_parser

            parser_source = str(parser)
            parser = load_parser(parser, expected_schema=gen.schema)
        editor = cls(gen, parser, device, source=str(checkpoint), used_ema=used_ema, parser_source=parser_source)
        editor.training = dict(training) if isinstance(training, dict) else {}
        return editor

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
    def _load_image(self, image: ImageLike) -> tuple[Image.Image, str]:
        if isinstance(image, (str, Path)):
            img = read_image(image, self.reading)
            if conversion_note(img):
                self.input_conversions[str(image)] = conversion_note(img)
            return img, str(image)
        if isinstance(image, Image.Image):
            return image.convert("RGB"), "<PIL image>"
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise DataError(None, f"image arrays must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
            return Image.fromarray(image), "<array>"
        if isinstance(image, torch.Tensor):
            t = image.detach().float().cpu()
            if t.dim() == 4 and t.shape[0] == 1:
                t = t[0]
            if t.dim() != 3 or t.shape[0] != 3:
                raise DataError(None, f"image tensors must be (3, H, W) in [0, 1], got {tuple(image.shape)}")
            if float(t.min()) < -1e-3 or float(t.max()) > 1 + 1e-3:
                raise DataError(None, "image tensors must be in [0, 1] (use genkit.data.transforms.to_unit first)")
            arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            return Image.fromarray(arr), "<tensor>"
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
        pil, name = self._load_image(image)
        if pil.width != pil.height:
            raise DataError(name if name[0] != "<" else None,
                            f"image is {pil.width}x{pil.height}; the portrait model needs square images "
                            "(crop the face to a square first)")
        labels = None
        if mask is not None:
            labels, mask_name = self._load_mask(mask)
            if labels.shape != (pil.height, pil.width):
                raise DataError(mask_name if mask_name[0] != "<" else None,
                                f"mask is {labels.shape[1]}x{labels.shape[0]} but its image {name} is "
                                f"{pil.width}x{pil.height}")
        s = self.image_size
        x = to_symmetric(pil_to_tensor(resize_image(pil, s))).unsqueeze(0).to(self.device)
        parsed = False
        if labels is None:
            labels = self.parse(x)
            parsed = True
        else:
            labels = torch.from_numpy(np.ascontiguousarray(resize_labels(labels, s))).unsqueeze(0)
        return _Input(x, labels.long().to(self.device), name, parsed)

    @torch.no_grad()
    def parse(self, image: torch.Tensor) -> torch.Tensor:
        """Label map (B, H, W) of images in [-1, 1] by the face parser."""
        if self.parser is None:
            raise ConfigError("no mask was given and no face parser is loaded: pass a mask, or a parser checkpoint "
                              "(PortraitEditor.from_checkpoint(..., parser=...) / genkit edit --parser CKPT)")
        return self.parser(to_unit(image).clamp(0, 1)).argmax(1)

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
        notes = []
        if target.parsed:
            notes.append("target mask predicted by the face parser")
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
        layout_mask = target.mask
        bg = G.background_mask(target.mask)
        if edited_mask is not None:
            labels, _ = self._load_mask(edited_mask)
            if labels.shape[0] != labels.shape[1]:
                raise DataError(None, f"edited mask is {labels.shape[1]}x{labels.shape[0]}; masks must be square")
            layout_mask = torch.from_numpy(np.ascontiguousarray(resize_labels(labels, self.image_size)))
            layout_mask = layout_mask.unsqueeze(0).long().to(self.device)
            # known background: where both the photo's mask and the edited layout say background
            bg = bg * G.background_mask(layout_mask)
        image = G.synthesize(layout_mask, codes, target.image, bg)
        return EditResult(image=to_unit(image[0]).clamp(0, 1).cpu(), mask=layout_mask[0].cpu(),
                          codes={k: v[0].cpu() for k, v in codes.z.items()}, sources=sources,
                          operation=operation, notes=notes)

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
            raise ConfigError("sampling components needs a model trained with model.variational=true (a VAE "
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
        images = G.synthesize(masks, codes, target.image.repeat(n, 1, 1, 1))
        out = []
        for i in range(n):
            sources = dict(base.sources)
            for name in names:
                sources[name] = f"prior sample {i} (seed {seed}, temperature {temperature})"
            out.append(EditResult(image=to_unit(images[i]).clamp(0, 1).cpu(), mask=masks[i].cpu(),
                                  codes={k: v[i].cpu() for k, v in codes.z.items()}, sources=sources,
                                  operation="sample", notes=list(base.notes)))
        return out

    def metadata(self) -> dict:
        """Provenance for saved outputs: checkpoint, EMA use, model size/schema, random weights used."""
        from genkit import weights

        return {"checkpoint": self.source, "ema_weights": self.used_ema, "image_size": self.image_size,
                "schema": self.schema.name, "variational": self.variational,
                "parser": self.parser_source if self.parser_source else (self.parser is not None),
                "weights": weights.provenance(), "random_weights": weights.used_random_weights(),
                "training": self.training, "image_reading": self.reading.record(),
                **({"input_conversions": dict(self.input_conversions)} if self.input_conversions else {})}
