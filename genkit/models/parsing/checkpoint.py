"""Loading face parsers: genkit's own checkpoints, the pretrained BiSeNet, and parsers of another schema.

:func:`load_parser` takes

* a genkit parser Lightning checkpoint, which holds a ``"genkit_parser"`` block (written by
  :meth:`ParserModule.on_save_checkpoint`) with plain values only::

      {"format": 1, "schema": {...LabelSchema.to_dict()...}, "image_size": 256,
       "network": {"num_classes": 11, "base_channels": 32, "depth": 4}}

  and the network weights as the ``net.*`` entries of its ``state_dict``;
* a pretrained parser's registry name (``bisenet-celebamask``: ``79999_iter.pth`` from the weights cache);
* a BiSeNet state-dict file in the published layout (``79999_iter.pth`` itself, any path);
* a model folder (``config.json`` + ``model.safetensors``, written by ``genkit export pretrained``) or its hub id
  (``user/name``), read by :mod:`genkit.core.model_folders`.

With ``expected_schema``, a parser of another schema comes back wrapped so it speaks the expected schema when a
mapping is declared (:mod:`genkit.models.parsing.mapped`), and is refused otherwise.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genkit.data.schemas import LabelSchema, get_schema
from genkit.core.errors import CheckpointError, GenkitError
from genkit.core.checkpoints import check_finite_weights, load_checkpoint
from genkit.core import model_folders
from genkit.core.weights import state_mismatch
from genkit.models.parsing.network import ParserNet

CHECKPOINT_KEY = "genkit_parser"
FOLDER_KIND = "face-parser"  # genkit_model of a parser's model folder (genkit.core.model_folders)
FORMAT_VERSION = 1
STATE_PREFIX = "net."
# pretrained parsers by registry name (genkit.core.weights); genkit's own parser (a checkpoint) stays the trainable default
PRETRAINED_PARSERS = ("bisenet-celebamask",)
# torch.save's format before PyTorch 1.6 (pickle protocol 2 + its magic number), e.g. the 2019 file 79999_iter.pth
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


@dataclass(frozen=True)
class ParserInfo:
    """What a parser checkpoint declares about itself."""

    schema: LabelSchema
    image_size: int
    network: dict
    class_weights: torch.Tensor | None = None  # the cross-entropy weights it was trained with, if any


def schema_from_dict(d: dict) -> LabelSchema:
    return LabelSchema(
        name=str(d["name"]),
        classes=tuple(d["classes"]),
        flip_pairs=tuple(tuple(int(v) for v in p) for p in d.get("flip_pairs", [])),
        colors=tuple(tuple(int(v) for v in c) for c in d.get("colors", [])),
    )


def make_info_block(schema: LabelSchema, image_size: int, network: ParserNet) -> dict:
    return {
        "format": FORMAT_VERSION,
        "schema": schema.to_dict(),
        "image_size": int(image_size),
        "network": {"num_classes": network.num_classes, "base_channels": network.base_channels,
                    "depth": network.depth},
    }


def _load_raw(path: Path, what: str | None = None) -> dict:
    """A parser file as a dict: zip checkpoints through the shared safe loader, legacy-format files (the published
    79999_iter.pth) with ``torch.load(weights_only=True)``, which is as safe for them. ``what``: what the errors
    call the file (default: a face-parser file / checkpoint)."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            legacy = f.read(len(_LEGACY_TORCH_MAGIC)) == _LEGACY_TORCH_MAGIC
        if legacy:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure: the file cannot be used as a parser
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise CheckpointError(f"{path}: cannot be loaded safely as a {what or 'face-parser file'} "
                                      f"({first})") from None
            if not isinstance(obj, dict):
                raise CheckpointError(f"{path}: not a {what or 'face-parser file'} (got {type(obj).__name__})")
            check_finite_weights(obj, path, what or "face-parser file")
            return obj
    return load_checkpoint(path, what or "face-parser checkpoint")


def read_info(ckpt: dict, path: str | Path = "checkpoint") -> ParserInfo:
    block = ckpt.get(CHECKPOINT_KEY)
    if not isinstance(block, dict):
        raise CheckpointError(
            f"{path}: not a face-parser checkpoint (no '{CHECKPOINT_KEY}' entry, and not a BiSeNet state dict like "
            "79999_iter.pth); train one with `genkit-train experiment=parser_synthetic`, or use a pretrained parser: "
            f"{', '.join(PRETRAINED_PARSERS)}"
        )
    if block.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: parser checkpoint format {block.get('format')!r} is not supported "
                              f"(expected {FORMAT_VERSION})")
    try:
        schema = schema_from_dict(block["schema"])
        return ParserInfo(schema=schema, image_size=int(block["image_size"]), network=dict(block["network"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: parser checkpoint metadata is damaged ({exc})") from None


def check_schema(found: LabelSchema, expected: LabelSchema | str | Path | None, path: str | Path) -> None:
    if expected is None:
        return
    try:
        expected = get_schema(expected)
    except GenkitError as exc:
        raise CheckpointError(f"expected schema cannot be resolved: {exc}") from None
    if tuple(found.classes) != tuple(expected.classes):
        raise CheckpointError(
            f"{path}: the parser was trained for schema {found.name!r} ({found.num_classes} classes: "
            f"{', '.join(found.classes)}), but schema {expected.name!r} ({expected.num_classes} classes: "
            f"{', '.join(expected.classes)}) is required, and no mapping between them is declared. Use a parser "
            f"trained on that schema (e.g. experiment=parser_helen for helen11, parser_celebamask for celebamask19)."
        )


def _genkit_parser(ckpt: dict, path: Path) -> tuple[ParserNet, ParserInfo]:
    """A genkit parser from a checkpoint dict; a state that does not fit its declared network is one line."""
    info = read_info(ckpt, path)
    if info.network.get("num_classes") != info.schema.num_classes:
        raise CheckpointError(f"{path}: network has {info.network.get('num_classes')} classes but its schema "
                              f"{info.schema.name!r} has {info.schema.num_classes}")
    try:
        net = ParserNet(**info.network)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: parser network settings are invalid ({exc})") from None
    state = ckpt.get("state_dict", {})
    net_state = {k[len(STATE_PREFIX):]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    problem = state_mismatch(net.state_dict(), net_state, STATE_PREFIX)
    if problem:
        raise CheckpointError(f"{path}: parser weights do not fit the declared network: {problem}")
    net.load_state_dict(net_state, strict=True)
    cw = state.get("class_weights")
    if isinstance(cw, torch.Tensor) and cw.numel() == net.num_classes and torch.isfinite(cw).all():
        info = ParserInfo(info.schema, info.image_size, info.network, cw.float().clone())
    net.schema = info.schema
    net.image_size = info.image_size
    net.class_weights = info.class_weights
    return net.eval(), info


def _bisenet_parser(state: dict, path: Path) -> tuple[nn.Module, ParserInfo]:
    from genkit.core import weights
    from genkit.models.parsing.bisenet import INPUT_SIZE, PRETRAINED_NAME, bisenet_from_state

    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    net = bisenet_from_state(state, path)
    weights.record(PRETRAINED_NAME, path=path)  # its sha256 goes into output metadata / metric protocols
    info = ParserInfo(schema=net.schema, image_size=INPUT_SIZE,
                      network={"architecture": "bisenet", "num_classes": net.num_classes,
                               "sha256": weights.sha256_file(path)})
    return net, info


def _folder_parser(source: str | Path) -> tuple[nn.Module, ParserInfo]:
    """A parser from a model folder or hub id: ``config.json`` says genkit's ParserNet (the checkpoint block) or
    ``architecture: bisenet`` (the published layout's keys in ``model.safetensors``)."""
    from genkit.core import weights

    folder = model_folders.read(source, FOLDER_KIND)
    block = folder.config.get(CHECKPOINT_KEY)
    if isinstance(block, dict) and block.get("architecture") == "bisenet":
        from genkit.models.parsing.bisenet import INPUT_SIZE, bisenet_from_state

        net = bisenet_from_state(folder.state, folder.weights_path)
        return net, ParserInfo(schema=net.schema, image_size=INPUT_SIZE,
                               network={"architecture": "bisenet", "num_classes": net.num_classes,
                                        "sha256": weights.sha256_file(folder.weights_path)})
    ckpt = {CHECKPOINT_KEY: block, "state_dict": {STATE_PREFIX + k: v for k, v in folder.state.items()}}
    return _genkit_parser(ckpt, folder.config_path)


def parser_block(source: str | Path) -> dict:
    """The ``genkit_parser`` block of a parser checkpoint or model folder (``{}`` when it has none)."""
    if model_folders.is_model_source(source):
        config = model_folders.read(source, FOLDER_KIND).config
        block = config.get(CHECKPOINT_KEY)
    else:
        block = load_checkpoint(source, "face-parser checkpoint").get(CHECKPOINT_KEY)
    return dict(block) if isinstance(block, dict) else {}


def _load_native(source: str | Path) -> tuple[nn.Module, ParserInfo]:
    """The parser in its own schema, from a checkpoint, a BiSeNet file, a model folder (or hub id) or a pretrained
    parser's registry name."""
    if isinstance(source, str) and source in PRETRAINED_PARSERS and not Path(source).exists():
        from genkit.core import weights

        path = weights.resolve(source)  # offline and missing: the registry's error naming the file and the import
        return _bisenet_parser(_load_raw(path), path)
    if model_folders.is_model_source(source):
        return _folder_parser(source)
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"{path}: face-parser checkpoint file does not exist (or use a pretrained parser: "
                              f"{', '.join(PRETRAINED_PARSERS)})")
    ckpt = _load_raw(path)
    if CHECKPOINT_KEY not in ckpt:
        from genkit.models.parsing.bisenet import is_bisenet_state

        inner = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else ckpt
        if is_bisenet_state(inner):
            return _bisenet_parser(inner, path)
    return _genkit_parser(ckpt, path)


def load_parser_with_info(source: str | Path, expected_schema: LabelSchema | str | Path | None = None,
                          ) -> tuple[nn.Module, ParserInfo]:
    """A parser network in eval mode and what its file declares (:class:`ParserInfo`, in its own schema).

    ``source``: a genkit parser checkpoint, a BiSeNet file (``79999_iter.pth``), a model folder or hub id
    (``user/name``) or a pretrained parser's name (``bisenet-celebamask``). With ``expected_schema``, the network is wrapped to output that schema when a mapping
    from its own is declared (e.g. celebamask19 or bisenet19 -> helen11), and refused otherwise.
    """
    from genkit.models.parsing.mapped import adapt_parser

    net, info = _load_native(source)
    return adapt_parser(net, expected_schema, source), info


def load_parser(source: str | Path, expected_schema: LabelSchema | str | Path | None = None) -> nn.Module:
    """A face parser in eval mode: RGB in [0, 1] (B, 3, H, W) -> logits (B, C, H, W).

    ``source`` is a parser Lightning checkpoint, a BiSeNet state-dict file (``79999_iter.pth``), a model folder
    (``config.json`` + ``model.safetensors``) or its hub id (``user/name``), or a pretrained parser's registry name
    (``bisenet-celebamask``). ``expected_schema`` (a :class:`LabelSchema`, a built-in name
    like ``"helen11"`` or a schema file) is compared with the parser's schema by class names: equal, the parser is
    returned as it is; different with a declared mapping (celebamask19 / bisenet19 -> helen11), it is wrapped to
    output log-probabilities in the expected schema; otherwise :class:`~genkit.core.errors.CheckpointError`.
    The result carries ``schema``, ``num_classes``, ``image_size`` (its training size), ``multiple`` (input sides
    must divide by it) and ``class_weights`` (its training weights, or ``None``; e.g.
    ``ParsingLoss(net, net.class_weights)``).
    """
    return load_parser_with_info(source, expected_schema)[0]


def load_mask_consistency(source: str | Path, expected_schema: LabelSchema | str | Path | None = None, **kwargs):
    """:class:`~genkit.metrics.mask_consistency.MaskConsistency` with the parser ``source`` (anything
    :func:`load_parser` takes), its schema checked against ``expected_schema``; ``kwargs`` go to the metric."""
    from genkit.metrics.mask_consistency import MaskConsistency

    return MaskConsistency(load_parser(source, expected_schema), **kwargs)
