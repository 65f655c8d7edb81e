"""What an export starts from: a trained model opened from a run folder, a checkpoint, a model folder or a name.

:func:`open_trained` recognises the three kinds genkit trains (face parsers, including the published BiSeNet file;
reshuffle decoders; portrait generators), loads the network through the same loaders every command uses, and
collects what the model card reports (steps, metrics, training data, random-weights flags, the source's sha256).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from genkit.core import model_folders
from genkit.core.errors import CheckpointError, ConfigError
from genkit.models.parsing.checkpoint import CHECKPOINT_KEY as PARSER_KEY
from genkit.models.parsing.checkpoint import PRETRAINED_PARSERS

PARSER, DECODERS, PORTRAIT = model_folders.KINDS
EXPORTABLE = "model checkpoint (face parser, reshuffle decoders, portrait generator or BiSeNet file)"
BLOCK_KEYS = {PARSER: PARSER_KEY, DECODERS: "genkit", PORTRAIT: "genkit_portrait"}


@dataclass
class Trained:
    """A trained network ready to export: ``block`` (under ``block_key``) rebuilds it, ``state`` holds its weights,
    ``facts`` what the card reports."""

    kind: str
    source: str
    network: nn.Module
    block: dict
    state: dict
    facts: dict = field(default_factory=dict)

    @property
    def block_key(self) -> str:
        return BLOCK_KEYS[self.kind]

    @property
    def architecture(self) -> str:
        if self.kind == PARSER:
            return "bisenet" if self.block.get("architecture") == "bisenet" else "parsernet"
        return "vgg-mirror-decoders" if self.kind == DECODERS else "mask-guided-generator"


def _run_checkpoint(folder: Path) -> Path:
    """The checkpoint a run folder exports: ``checkpoints/last.ckpt``, else its only ``.ckpt``."""
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    found = sorted(folder.glob("checkpoints/*.ckpt")) or sorted(folder.glob("*.ckpt"))
    if len(found) == 1:
        return found[0]
    what = f"{len(found)} checkpoints ({', '.join(p.name for p in found[:4])}); name one" if found else "no checkpoint"
    raise ConfigError(f"{folder}: not a model folder (no {model_folders.CONFIG_NAME}) and a run folder with {what}")


def _checkpoint_facts(raw: dict, path: Path) -> dict:
    """Steps, epoch, monitored metrics and the run's data/model config, as far as the checkpoint records them."""
    from genkit.core.weights import sha256_file
    from genkit.training.runs import RUN_KEY

    facts: dict = {"source_file": path.name, "source_sha256": sha256_file(path)}
    if "global_step" in raw:
        facts["steps"] = int(raw["global_step"])
        facts["epoch"] = int(raw.get("epoch", 0))
    metrics = []
    for name, state in (raw.get("callbacks") or {}).items():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_score") is not None:
            metrics.append({"name": str(state["monitor"]), "value": float(state["best_model_score"]),
                            "source": f"best of the run ({name.split('{')[0]})"})
    if metrics:
        facts["metrics"] = metrics
    run = raw.get(RUN_KEY) or {}
    config = run.get("config") if isinstance(run, dict) else None
    if isinstance(config, dict):
        facts["run_config"] = {k: config[k] for k in ("data", "model", "trainer", "seed") if k in config}
    return facts


def _parser(source, facts: dict) -> Trained:
    from genkit.models.parsing.checkpoint import load_parser_with_info, make_info_block, parser_block

    net, info = load_parser_with_info(source)
    if info.network.get("architecture") == "bisenet":
        from genkit.core.weights import get_entry

        block = {"architecture": "bisenet", "schema": net.schema.to_dict(), "image_size": info.image_size,
                 "input_size": net.input_size, "source_sha256": info.network["sha256"],
                 "published": get_entry("bisenet-celebamask").matches(info.network["sha256"])}
        return Trained(PARSER, str(source), net, block, dict(net.net.state_dict()), facts)
    block = make_info_block(info.schema, info.image_size, net)
    try:
        training = parser_block(source).get("training")
    except CheckpointError:
        training = None
    if training:
        block["training"] = training
    return Trained(PARSER, str(source), net, block, dict(net.state_dict()), facts)


def _decoders(source, facts: dict) -> Trained:
    from genkit.models.reshuffle.decoders import load_decoders, read_checkpoint

    record = dict(read_checkpoint(source)["genkit"])
    decoders, _ = load_decoders(source)
    return Trained(DECODERS, str(source), decoders, record, dict(decoders.state_dict()), facts)


def _portrait(source, facts: dict) -> Trained:
    from genkit.models.portrait.checkpoint import load_generator, make_block

    gen, block, used, why = load_generator(source)
    out = make_block(gen.config(), used == "ema", f"{type(gen).__module__}.{type(gen).__qualname__}")
    for key in ("training", "selection"):
        if isinstance(block.get(key), dict):
            out[key] = dict(block[key])
    facts = {**facts, "generator_weights": f"{used} ({why})"}
    return Trained(PORTRAIT, str(source), gen, out, dict(gen.state_dict()), facts)


OPENERS = {PARSER: _parser, DECODERS: _decoders, PORTRAIT: _portrait}


def _file_kind(raw: dict, path: Path) -> str:
    from genkit.models.parsing.bisenet import is_bisenet_state

    if PARSER_KEY in raw:
        return PARSER
    if isinstance(raw.get("genkit"), dict) and raw["genkit"].get("kind") == "reshuffle_decoders":
        return DECODERS
    if "genkit_portrait" in raw:
        return PORTRAIT
    inner = raw.get("state_dict") if isinstance(raw.get("state_dict"), dict) else raw
    if is_bisenet_state(inner):
        return PARSER
    raise CheckpointError(f"{path}: not a {EXPORTABLE}")


def open_trained(source: str | Path) -> Trained:
    """The trained model of ``source``: a run folder, a checkpoint, a BiSeNet file, a model folder, a hub id or a
    pretrained parser's name (``bisenet-celebamask``)."""
    from genkit.models.parsing.checkpoint import _load_raw

    if isinstance(source, str) and source in PRETRAINED_PARSERS and not Path(source).exists():
        return _parser(source, {"source_file": source})
    if model_folders.is_model_source(source):
        folder = model_folders.local_path(source)
        config_path = folder / model_folders.CONFIG_NAME
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text(encoding="utf-8"))
                kind = config[model_folders.KIND_KEY]
                opener = OPENERS[kind]
            except (ValueError, KeyError, TypeError):
                raise CheckpointError(f"{config_path}: not a genkit model config") from None
            return opener(folder, dict(config.get("facts") or {}))
        source = _run_checkpoint(folder)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint, run folder or model folder")
    raw = _load_raw(path, EXPORTABLE)
    return OPENERS[_file_kind(raw, path)](path, _checkpoint_facts(raw, path))
