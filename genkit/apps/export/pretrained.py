"""``genkit export pretrained``: a trained model as a model folder (``config.json``, ``model.safetensors``, card).

After writing, the folder is loaded back through the loader every command uses and run on a probe input next to
the network it came from: the outputs must be bit-identical (:func:`check_folder`), otherwise the export fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from genkit.apps.export.card import model_card
from genkit.apps.export.trained import DECODERS, PARSER, PORTRAIT, Trained, open_trained
from genkit.core import model_folders
from genkit.core.errors import CheckpointError
from genkit.core.outputs import check_output_dir

OWN_FILES = (model_folders.CONFIG_NAME, model_folders.WEIGHTS_NAME, model_folders.CARD_NAME)


def folder_config(trained: Trained) -> dict:
    """``config.json``: the loader's block (what rebuilds the network), the architecture and the card's facts."""
    return model_folders.new_config(trained.kind, trained.block_key, trained.block,
                                    architecture=trained.architecture, facts=trained.facts)


def probe_outputs(kind: str, network: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """The network's outputs on a fixed probe input (per kind): what a round trip must reproduce exactly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if kind == PARSER:
            side = max(getattr(network, "multiple", 1), 32)
            return {"logits": network(torch.rand(1, 3, side * 2, side * 2, generator=g))}
        if kind == DECODERS:
            from genkit.nn.vgg import VGG19_CHANNELS

            return {name: dec(torch.rand(1, VGG19_CHANNELS[dec.from_tap], 4, 4, generator=g))
                    for name, dec in network.decoders.items()}
        if kind == PORTRAIT:
            from genkit.apps.export.synthesis import probe_inputs

            mask, codes, photo = probe_inputs(network, seed)
            return {"image": network.synthesize(mask, codes, photo, network.known_background(mask))}
    raise ValueError(f"unknown kind {kind!r}")


def check_folder(trained: Trained, folder: str | Path) -> float:
    """Load ``folder`` back with genkit's loader and compare with ``trained.network``: the largest absolute
    difference on the probe (0.0 when bit-identical, which is required)."""
    loaded = open_trained(folder).network
    want, got = probe_outputs(trained.kind, trained.network), probe_outputs(trained.kind, loaded)
    worst = max(float((want[k] - got[k]).abs().max()) for k in want)
    if worst != 0.0 or any(not torch.equal(want[k], got[k]) for k in want):
        raise CheckpointError(f"{folder}: the model folder loaded back does not reproduce {trained.source} "
                              f"(max difference {worst:.3g}); the export was not faithful")
    return worst


def _genkit_config(path: Path) -> bool:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get(model_folders.KIND_KEY) in model_folders.KINDS


def written_by_genkit(path: Path) -> bool:
    """A model-folder file genkit wrote: its ``config.json`` (a genkit model config), the card (front matter
    ``library_name: genkit``), or the weights beside such a config."""
    if path.name == model_folders.CONFIG_NAME:
        return _genkit_config(path)
    if path.name == model_folders.CARD_NAME:
        try:
            head = path.read_text(encoding="utf-8")[:200]
        except (OSError, ValueError):
            return False
        return head.startswith("---\n") and "\nlibrary_name: genkit\n" in head
    return path.name == model_folders.WEIGHTS_NAME and _genkit_config(path.parent / model_folders.CONFIG_NAME)


def check_destination(out: str | Path, overwrite: bool = False) -> Path:
    """``out`` may be new, empty, or (with ``overwrite``) a model folder genkit wrote; other files are never
    replaced."""
    from genkit.core.outputs import check_replaceable

    out = check_output_dir(out, "model folder")
    if out.is_dir():
        present = [n for n in OWN_FILES if (out / n).exists() or (out / n).is_symlink()]
        check_replaceable(out, present, written_by_genkit, overwrite, "genkit export")
    return out


def export_pretrained(source: str | Path, out: str | Path, overwrite: bool = False,
                      ref: str | None = None) -> Path:
    """Write the model folder of ``source`` (run folder, checkpoint, BiSeNet file, model folder, hub id or
    ``bisenet-celebamask``) into ``out`` and check that it loads back bit-identically. ``ref``: the name the card's
    loading examples use (e.g. the hub id it will be pushed to)."""
    out = check_destination(out, overwrite)
    trained = open_trained(source)
    model_folders.write(out, folder_config(trained), trained.state, model_card(trained, ref or str(out)))
    check_folder(trained, out)
    return out


__all__ = ["DECODERS", "PARSER", "PORTRAIT", "check_folder", "export_pretrained", "folder_config", "probe_outputs"]
