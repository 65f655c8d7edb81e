"""The decoders of the fast path and their checkpoints.

Two kinds (``target``), both VGG-mirror decoders (:class:`~genkit.nn.decoder.VGGMirrorDecoder`):

* ``"next_level"`` (the default, as the official release): for levels ``relu4_1, relu3_1, relu2_1`` the decoders
  ``relu4_1 -> relu3_1``, ``relu3_1 -> relu2_1`` and ``relu2_1 -> image``. A level's blend is decoded into the
  next level's content features; only the finest level is decoded to an image. Such a set runs its own level
  list and every suffix of it (``relu3_1, relu2_1``; ``relu2_1``).
* ``"image"`` (format 1 checkpoints, kept loadable): one ``tap -> image`` decoder per level; every level's blend
  is decoded to an image that the next level re-encodes.

A checkpoint (a Lightning ``.ckpt`` of :class:`~genkit.models.reshuffle.module.ReshuffleDecoderModule`, or a
compact file from :func:`save_decoders`, or a model folder / hub id whose ``config.json`` holds the record) carries a ``genkit`` record: the kind, the level set, the decoder
``target``, the width and the identity of the encoder the decoders were trained to invert. Loading checks them: a
decoder only inverts the encoder it was trained with (random weights and ImageNet weights are different encoders).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from genkit.core.errors import CheckpointError
from genkit.core.checkpoints import load_checkpoint
from genkit.core import model_folders
from genkit.core.weights import state_mismatch
from genkit.nn.decoder import VGGMirrorDecoder
from genkit.nn.init import variance_preserving_init

CHECKPOINT_KIND = "reshuffle_decoders"
FOLDER_KIND = "reshuffle-decoders"  # genkit_model of a decoder model folder (genkit.core.model_folders)
FORMAT_VERSION = 2
TARGETS = ("next_level", "image")


def decoder_name(src: str, dst: str | None) -> str:
    return f"{src}_to_{dst or 'image'}"


class ReshuffleDecoders(nn.Module):
    """The decoders of one level set (see the module docstring for the two ``target`` kinds)."""

    def __init__(self, levels: Sequence[str], width: float = 1.0, target: str = "next_level"):
        super().__init__()
        if not levels:
            raise ValueError("at least one level is needed")
        if target not in TARGETS:
            raise ValueError(f"decoder target must be one of {TARGETS}, got {target!r}")
        self.levels = [str(t) for t in levels]
        self.width = float(width)
        self.target = target
        if target == "image":
            mods = {tap: VGGMirrorDecoder(tap, None, width) for tap in self.levels}
        else:
            mods = {decoder_name(a, b): VGGMirrorDecoder(a, b, width) for a, b in zip(self.levels, self.levels[1:])}
            mods[decoder_name(self.levels[-1], None)] = VGGMirrorDecoder(self.levels[-1], None, width)
        self.decoders = nn.ModuleDict(mods)
        # feature decoders start from He-normal convolutions (zero biases): in a measured 150-step run the
        # relu4_1 -> relu3_1 decoder reached a normalised error of 0.19 from there against 0.24 from PyTorch's
        # default; image decoders keep the default (He made their first outputs far outside [0, 1])
        for mod in self.decoders.values():
            if mod.to_tap is not None:
                variance_preserving_init(mod)

    # ------------------------------------------------------------------------------------------ structure
    def chain(self) -> str:
        """Human-readable description, e.g. ``relu4_1->relu3_1->relu2_1->image``."""
        if self.target == "image":
            return ", ".join(f"{t}->image" for t in self.levels)
        return "->".join(self.levels + ["image"])

    def missing_for(self, taps: Sequence[str]) -> list[str]:
        """The decoders a transfer over ``taps`` (coarse to fine) needs and this set lacks."""
        taps = list(taps)
        if self.target == "image":
            return [f"{t}->image" for t in taps if t not in self.decoders]
        need = [(a, b) for a, b in zip(taps, taps[1:])] + [(taps[-1], None)]
        return [f"{a}->{b or 'image'}" for a, b in need if decoder_name(a, b) not in self.decoders]

    def runnable_level_sets(self) -> list[list[str]]:
        if self.target == "image":
            return [list(self.levels)]
        return [self.levels[i:] for i in range(len(self.levels))]

    # ------------------------------------------------------------------------------------------ decoding
    def to_next(self, features: torch.Tensor, tap: str, next_tap: str) -> torch.Tensor:
        """Decode ``tap`` features into ``next_tap`` features (next-level decoders only)."""
        return self.decoders[decoder_name(tap, next_tap)](features)

    def to_image(self, features: torch.Tensor, tap: str) -> torch.Tensor:
        """Decode ``tap`` features to an (unclamped) image: the level's own image decoder."""
        return self.decoders[tap if self.target == "image" else decoder_name(tap, None)](features)

    def forward(self, features: torch.Tensor, tap: str) -> torch.Tensor:
        """Decode ``tap`` features to an unclamped image, through the next-level chain where needed."""
        if self.target == "image" or tap == self.levels[-1]:
            return self.to_image(features, tap)
        i = self.levels.index(tap)
        for a, b in zip(self.levels[i:], self.levels[i + 1:]):
            features = self.to_next(features, a, b)
        return self.to_image(features, self.levels[-1])

    def decode(self, features: torch.Tensor, tap: str) -> torch.Tensor:
        """Decode to an image in [0, 1]."""
        return self(features, tap).clamp(0, 1)


def _fit(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if image.shape[-2:] != like.shape[-2:]:
        image = torch.nn.functional.interpolate(image, size=like.shape[-2:], mode="bilinear", align_corners=False)
    return image


class DecoderReconstructor:
    """The fast path: next-level decoders carry each blend down; the finest one is decoded to the image.

    ``restore_detail`` (off by default: not in the release): add back, in proportion to the level's content weight
    ``alpha``, what the decoder loses of the *content* itself: ``h = dec(blend) + alpha * (F_next(content) -
    dec(F(content)))`` (and the same for the image). With ``alpha = 1`` the cascade then returns the content
    exactly; with a perfect decoder the term is zero (the release's behaviour). A fix for weak decoders: it costs
    one more decoder pass per level and re-injects the content's own detail and colour.
    With legacy ``image`` decoders each blend is decoded to an image and re-encoded at the next level.
    """

    name = "decoder"
    needs_targets = False  # the blends of earlier levels are not used (memory)

    carries = True

    def __init__(self, decoders: ReshuffleDecoders, encoder: nn.Module | None = None, restore_detail: bool = False,
                 alphas: dict[str, float] | None = None, tile: int = 0):
        if decoders.target == "image" and encoder is None:
            raise ValueError("image decoders need the encoder to re-encode every level's image")
        if restore_detail and decoders.target != "image" and (encoder is None or alphas is None):
            raise ValueError("restore_detail needs the encoder and the content weight (alpha) of every level")
        self.decoders, self.encoder = decoders, encoder
        self.restore_detail = restore_detail and decoders.target != "image"
        self.needs_content_features = self.restore_detail
        self.alphas = alphas or {}
        self.tile = int(tile)  # decode larger images in tiles of this many px (0: in one piece)

    def _to_next(self, x: torch.Tensor, tap: str, next_tap: str) -> torch.Tensor:
        from genkit.models.reshuffle.tiling import tiled_decode
        from genkit.nn.vgg import VGG19_STRIDE

        return tiled_decode(lambda h: self.decoders.to_next(h, tap, next_tap), x,
                            VGG19_STRIDE[tap] // VGG19_STRIDE[next_tap], self.tile, VGG19_STRIDE[tap])

    def _to_image(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        from genkit.models.reshuffle.tiling import tiled_decode
        from genkit.nn.vgg import VGG19_STRIDE

        return tiled_decode(lambda h: self.decoders.to_image(h, tap), x, VGG19_STRIDE[tap], self.tile,
                            VGG19_STRIDE[tap])

    def restores_detail(self, tap: str) -> bool:
        """Whether the content's detail is added back after decoding ``tap`` (its level's metadata says so)."""
        return self.restore_detail and self.alphas.get(tap, 0.0) > 0

    def _content(self, ctx: dict, tap: str) -> torch.Tensor:
        feats = ctx.setdefault("content_features", {})
        if tap not in feats:
            feats.update(self.encoder(ctx["content"], taps=set(self.decoders.levels) & set(self.encoder.taps)))
        return feats[tap]

    @torch.no_grad()
    def next_features(self, tap: str, next_tap: str, blend: torch.Tensor, ctx: dict) -> torch.Tensor:
        if self.decoders.target == "image":
            image = _fit(self.decoders.decode(blend, tap), ctx["content"])
            return self.encoder.encode(image, next_tap)
        out = self._to_next(blend, tap, next_tap)
        if self.restore_detail and self.alphas.get(tap, 0.0) > 0:
            lost = self._content(ctx, next_tap) - self._to_next(self._content(ctx, tap), tap, next_tap)
            out = (out + self.alphas[tap] * lost).clamp_min(0)  # relu features are non-negative
        return out

    @torch.no_grad()
    def image(self, tap: str, blend: torch.Tensor, ctx: dict) -> torch.Tensor:
        out = self._to_image(blend, tap) if self.decoders.target != "image" else self.decoders.to_image(blend, tap)
        if self.restore_detail and self.alphas.get(tap, 0.0) > 0:
            content = ctx["content"]
            recon = self._to_image(self._content(ctx, tap), tap)
            if recon.shape[-2:] == content.shape[-2:]:
                out = out + self.alphas[tap] * (content - recon)
        return _fit(out.clamp(0, 1), ctx["content"])


def encoder_identity(encoder) -> dict:
    """What a decoder was trained to invert: the VGG-19 variant (its preprocessing), random or not, the weights
    file's sha256 and a fingerprint of the first convolution."""
    first = next(m for m in encoder.features if isinstance(m, nn.Conv2d))
    data = torch.cat([first.weight.detach().float().cpu().reshape(-1), first.bias.detach().float().cpu()])
    ident = {"variant": getattr(encoder, "variant", "torchvision"),
             "random": bool(getattr(encoder, "random_weights", False)),
             "fingerprint": hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]}
    if hasattr(encoder, "identity"):
        ident["identity"] = encoder.identity
    if not ident["random"] and getattr(encoder, "weights_sha256", None):
        ident["sha256"] = encoder.weights_sha256
    return ident


def check_encoder(record: dict | None, encoder, where: str) -> None:
    """Raise :class:`CheckpointError` when decoders recorded as ``record`` were trained for another encoder than
    ``encoder`` (another VGG-19 variant, or other weights). Records from before variants existed are torchvision's."""
    theirs, mine = dict(record or {}), encoder_identity(encoder)
    if not theirs:
        return
    variant = theirs.get("variant", "torchvision")
    if variant != mine["variant"]:
        raise CheckpointError(f"{where}: the decoders were trained for the {variant} VGG-19, but the encoder in use is "
                              f"the {mine['variant']} VGG-19 (another preprocessing and feature scale); use "
                              f"--vgg-variant {variant} (model.vgg_variant={variant}) or decoders trained for this "
                              "encoder")
    if theirs.get("fingerprint") is not None and theirs["fingerprint"] != mine["fingerprint"]:
        def describe(ident):
            return "RANDOM VGG-19 weights" if ident.get("random") else f"VGG-19 weights {ident.get('fingerprint')}"
        raise CheckpointError(f"{where}: the decoders were trained to invert {describe(theirs)}, but the encoder "
                              f"in use has {describe(mine)}; use the matching VGG weights "
                              "(--vgg-weights random / a weights file) or decoders trained for this encoder")


def checkpoint_record(decoders: ReshuffleDecoders, encoder) -> dict:
    return {"kind": CHECKPOINT_KIND, "format": FORMAT_VERSION, "levels": list(decoders.levels),
            "width": decoders.width, "target": decoders.target, "chain": decoders.chain(),
            "encoder": encoder_identity(encoder)}


def save_decoders(path: str | Path, decoders: ReshuffleDecoders, encoder, extra: dict | None = None) -> Path:
    """A compact checkpoint (only the decoders) that ``genkit stylize --decoder`` loads."""
    from genkit.core.checkpoints import atomic_torch_save

    state = {f"decoders.{k}": v.detach().cpu() for k, v in decoders.state_dict().items()}
    record = checkpoint_record(decoders, encoder)
    if extra:
        record.update(extra)
    return atomic_torch_save({"genkit": record, "state_dict": state}, path)


def read_checkpoint(path: str | Path) -> dict:
    """A decoder checkpoint's dict (``genkit`` record + ``state_dict``); a model folder or hub id reads as one."""
    if model_folders.is_model_source(path):
        folder = model_folders.read(path, FOLDER_KIND)
        path = folder.config_path
        ckpt = {"genkit": folder.config.get("genkit"), "folder": folder,
                "state_dict": {"decoders." + k: v for k, v in folder.state.items()}}
    else:
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
    target = record.get("target", "image")  # format 1 wrote "image" (tap -> image decoders)
    if target not in TARGETS:
        raise CheckpointError(f"{path}: unknown decoder target {target!r} (known: {', '.join(TARGETS)})")
    return ckpt


def decoders_from_record(record: dict) -> ReshuffleDecoders:
    """An (untrained) decoder set with the structure a checkpoint record describes."""
    return ReshuffleDecoders(list(record.get("levels") or []), width=record.get("width", 1.0),
                             target=record.get("target", "image"))


def check_levels(decoders: ReshuffleDecoders, taps: Sequence[str], where: str) -> None:
    """Raise a clear :class:`CheckpointError` when ``decoders`` cannot run the level list ``taps``."""
    missing = decoders.missing_for(taps)
    if missing:
        sets = " or ".join("--levels " + ",".join(s) for s in decoders.runnable_level_sets())
        raise CheckpointError(f"{where} covers levels {','.join(decoders.levels)} ({decoders.chain()}), but levels "
                              f"{','.join(taps)} were asked for ({', '.join(missing)} missing); use {sets}, or "
                              "train decoders for this level set")


def load_decoders(path: str | Path, levels: Sequence[str] | None = None, encoder=None,
                  map_location: str | torch.device = "cpu") -> tuple[ReshuffleDecoders, dict]:
    """Load the decoders of ``path`` that run ``levels`` (default: the checkpoint's own level set).

    Raises :class:`CheckpointError` when the checkpoint cannot run ``levels`` (a missing decoder), when it was
    trained for a different encoder than ``encoder``, or when the weights do not fit.
    """
    ckpt = read_checkpoint(path)
    record = ckpt["genkit"]
    full = decoders_from_record(record)
    want = list(levels) if levels else list(full.levels)
    check_levels(full, want, f"{path}: decoder checkpoint")
    if encoder is not None:
        check_encoder(record.get("encoder"), encoder, str(path))
    decoders = ReshuffleDecoders(want, width=full.width, target=full.target)
    prefix = "decoders."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if k.split(".")[1] in decoders.decoders}
    problem = state_mismatch(decoders.state_dict(), state, prefix)
    if problem:
        where = ckpt["folder"].config_path if "folder" in ckpt else path
        raise CheckpointError(f"{where}: decoder weights do not fit the declared decoders ({decoders.chain()}): "
                              f"{problem}")
    decoders.load_state_dict(state)
    return decoders.to(map_location).eval().requires_grad_(False), record
