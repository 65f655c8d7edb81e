"""The decoder set of the fast path (one VGG-mirror decoder per level, features -> image) and its checkpoints.

A checkpoint (a Lightning ``.ckpt`` of :class:`~genkit.models.reshuffle.module.ReshuffleDecoderModule`, or a
compact file from :func:`save_decoders`) carries a ``genkit`` record: the kind, the level set, the width and
the identity of the encoder the decoders were trained to invert. Loading checks all three: a decoder only
inverts the encoder it was trained with (random weights and ImageNet weights are different encoders).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from genkit.errors import CheckpointError
from genkit.io import load_checkpoint
from genkit.nn.decoder import VGGMirrorDecoder

CHECKPOINT_KIND = "reshuffle_decoders"
FORMAT_VERSION = 1


class ReshuffleDecoders(nn.Module):
    """One :class:`VGGMirrorDecoder` per level tap, each mapping that tap's features to an RGB image."""

    def __init__(self, levels: Sequence[str], width: float = 1.0):
        super().__init__()
        if not levels:
            raise ValueError("at least one level is needed")
        self.levels = [str(t) for t in levels]
        self.width = float(width)
        self.decoders = nn.ModuleDict({tap: VGGMirrorDecoder(tap, None, width) for tap in self.levels})

    def forward(self, features: torch.Tensor, tap: str) -> torch.Tensor:
        return self.decoders[tap](features)

    def decode(self, features: torch.Tensor, tap: str) -> torch.Tensor:
        """Decode to an image in [0, 1]."""
        return self(features, tap).clamp(0, 1)


class DecoderReconstructor:
    """The fast path of the transfer: the level's decoder maps the blended target straight to an image."""

    name = "decoder"

    def __init__(self, decoders: ReshuffleDecoders):
        self.decoders = decoders

    def __call__(self, tap: str, features: torch.Tensor, image: torch.Tensor,
                 targets: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            out = self.decoders.decode(features, tap)
        if out.shape[-2:] != image.shape[-2:]:
            out = torch.nn.functional.interpolate(out, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return out


def encoder_identity(encoder) -> dict:
    """What a decoder was trained to invert: random or not, and a fingerprint of the first convolution."""
    first = next(m for m in encoder.features if isinstance(m, nn.Conv2d))
    data = torch.cat([first.weight.detach().float().cpu().reshape(-1), first.bias.detach().float().cpu()])
    ident = {"random": bool(getattr(encoder, "random_weights", False)),
             "fingerprint": hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]}
    if not ident["random"]:
        from genkit import weights

        prov = weights.provenance().get("vgg19")
        if prov and not prov.get("random"):
            ident["sha256"] = prov.get("sha256")
    return ident


def checkpoint_record(decoders: ReshuffleDecoders, encoder) -> dict:
    return {"kind": CHECKPOINT_KIND, "format": FORMAT_VERSION, "levels": list(decoders.levels),
            "width": decoders.width, "target": "image", "encoder": encoder_identity(encoder)}


def save_decoders(path: str | Path, decoders: ReshuffleDecoders, encoder, extra: dict | None = None) -> Path:
    """A compact checkpoint (only the decoders) that ``genkit stylize --decoder`` loads."""
    from genkit.io import atomic_torch_save

    state = {f"decoders.{k}": v.detach().cpu() for k, v in decoders.state_dict().items()}
    record = checkpoint_record(decoders, encoder)
    if extra:
        record.update(extra)
    return atomic_torch_save({"genkit": record, "state_dict": state}, path)


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    ckpt = load_checkpoint(path, "decoder checkpoint")
    record = ckpt.get("genkit") if isinstance(ckpt, dict) else None
    if not isinstance(record, dict) or record.get("kind") != CHECKPOINT_KIND:
        kind = record.get("kind") if isinstance(record, dict) else None
        raise CheckpointError(f"{path}: not a reshuffle decoder checkpoint"
                              + (f" (it holds {kind!r})" if kind else " (no genkit record)")
                              + "; train one with `genkit-train experiment=reshuffle_decoders`")
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint has no state_dict")
    return ckpt


def load_decoders(path: str | Path, levels: Sequence[str] | None = None, encoder=None,
                  map_location: str | torch.device = "cpu") -> tuple[ReshuffleDecoders, dict]:
    """Load the decoders of ``path`` for ``levels`` (default: the checkpoint's own level set).

    Raises :class:`CheckpointError` when a requested level has no decoder in the checkpoint, when the
    checkpoint was trained for a different encoder than ``encoder``, or when the weights do not fit.
    """
    ckpt = read_checkpoint(path)
    record = ckpt["genkit"]
    have = list(record.get("levels") or [])
    want = list(levels) if levels else have
    missing = [t for t in want if t not in have]
    if missing:
        raise CheckpointError(f"{path}: decoder checkpoint was trained for levels {','.join(have)}, but levels "
                              f"{','.join(want)} were asked for ({','.join(missing)} missing); use --levels "
                              f"{','.join(have)} or train decoders for this level set")
    if encoder is not None:
        mine, theirs = encoder_identity(encoder), record.get("encoder", {})
        if theirs.get("fingerprint") != mine["fingerprint"]:
            def describe(ident):
                return "RANDOM VGG-19 weights" if ident.get("random") else f"VGG-19 weights {ident.get('fingerprint')}"
            raise CheckpointError(f"{path}: the decoders were trained to invert {describe(theirs)}, but the encoder "
                                  f"in use has {describe(mine)}; use the matching VGG weights "
                                  "(--vgg-weights random / a weights file) or decoders trained for this encoder")
    decoders = ReshuffleDecoders(want, width=record.get("width", 1.0))
    prefix = "decoders."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if k.split(".")[1] in want}
    try:
        decoders.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: decoder weights do not fit ({exc})") from None
    return decoders.to(map_location).eval().requires_grad_(False), record
