"""Reading parser checkpoints: the schema and image size they carry, and a validated :class:`ParserNet`.

A parser Lightning checkpoint holds a ``"genkit_parser"`` block (written by
:meth:`ParserModule.on_save_checkpoint`) with plain values only::

    {"format": 1, "schema": {...LabelSchema.to_dict()...}, "image_size": 256,
     "network": {"num_classes": 11, "base_channels": 32, "depth": 4}}

The network weights are the ``net.*`` entries of the checkpoint's ``state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from genkit.data.schemas import LabelSchema, get_schema
from genkit.errors import CheckpointError, GenkitError
from genkit.io import load_checkpoint
from genkit.models.parsing.network import ParserNet

CHECKPOINT_KEY = "genkit_parser"
FORMAT_VERSION = 1
STATE_PREFIX = "net."


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


def _load_raw(path: Path) -> dict:
    return load_checkpoint(path, "face-parser checkpoint")


def read_info(ckpt: dict, path: str | Path = "checkpoint") -> ParserInfo:
    block = ckpt.get(CHECKPOINT_KEY)
    if not isinstance(block, dict):
        raise CheckpointError(
            f"{path}: not a face-parser checkpoint (no '{CHECKPOINT_KEY}' entry; train one with "
            "`genkit-train experiment=parser_synthetic`)"
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
            f"{', '.join(expected.classes)}) is required. Use a parser trained on that schema "
            f"(e.g. experiment=parser_helen for helen11, parser_celebamask for celebamask19)."
        )


def load_parser_with_info(checkpoint_path: str | Path, expected_schema: LabelSchema | str | Path | None = None,
                          ) -> tuple[ParserNet, ParserInfo]:
    """Build a :class:`ParserNet` (eval mode) from a parser checkpoint, with its declared schema and size."""
    path = Path(checkpoint_path)
    ckpt = _load_raw(path)
    info = read_info(ckpt, path)
    check_schema(info.schema, expected_schema, path)
    if info.network.get("num_classes") != info.schema.num_classes:
        raise CheckpointError(f"{path}: network has {info.network.get('num_classes')} classes but its schema "
                              f"{info.schema.name!r} has {info.schema.num_classes}")
    try:
        net = ParserNet(**info.network)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: parser network settings are invalid ({exc})") from None
    state = ckpt.get("state_dict", {})
    net_state = {k[len(STATE_PREFIX):]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    try:
        net.load_state_dict(net_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: parser weights do not fit the declared network: {exc}") from None
    cw = state.get("class_weights")
    if isinstance(cw, torch.Tensor) and cw.numel() == net.num_classes and torch.isfinite(cw).all():
        info = ParserInfo(info.schema, info.image_size, info.network, cw.float().clone())
    return net.eval(), info


def load_parser(checkpoint_path: str | Path, expected_schema: LabelSchema | str | Path | None = None) -> ParserNet:
    """The :class:`ParserNet` of a parser Lightning checkpoint, in eval mode.

    ``expected_schema`` (a :class:`LabelSchema`, a built-in name like ``"helen11"`` or a schema file) is compared
    with the checkpoint's schema by class names; a mismatch raises :class:`~genkit.errors.CheckpointError`.
    The schema, image size and training class weights (or ``None``) are attached as ``net.schema``,
    ``net.image_size`` and ``net.class_weights`` (e.g. ``ParsingLoss(net, net.class_weights)``).
    """
    net, info = load_parser_with_info(checkpoint_path, expected_schema)
    net.schema = info.schema
    net.image_size = info.image_size
    net.class_weights = info.class_weights
    return net
