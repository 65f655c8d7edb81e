"""The portrait model's checkpoint block, exports, and loading a generator for inference.

A training checkpoint (Lightning) carries a ``"genkit_portrait"`` block with plain values only::

    {"format": 2, "generator": {...PortraitGenerator.config()...}, "generator_target": "...PortraitGenerator",
     "ema": true, "selection": {"weights": "ema", "metric": "val/l1", "raw": 0.031, "ema": 0.029, "step": 600},
     "training": {"data_source": "synthetic", "synthetic_data": true, "random_weights": false, ...}}

and the weights under ``state_dict`` (``generator.*``, ``generator_ema.module.*`` when EMA is on). ``selection``
records which of the raw and EMA generators the last validation found better; loading with ``weights="auto"``
takes that one (the EMA one when no validation ran). An *export* (:func:`export_generator`) is a small file with
the same block and one generator's weights. Both load with ``torch.load(weights_only=True)``. A model folder
(``config.json`` with the block + ``model.safetensors``, from ``genkit export pretrained``) or its hub id loads as an
export.

Format 1 (flat model settings, a generator without the photo-keeping paste) is refused with a clear message: its
networks differ from the current ones.
"""

from __future__ import annotations

from pathlib import Path

from genkit.data.schemas import LabelSchema, get_schema
from genkit.core.errors import CheckpointError, GenkitError
from genkit.core.checkpoints import atomic_torch_save, load_checkpoint
from genkit.core import model_folders
from genkit.core.weights import state_mismatch

CHECKPOINT_KEY = "genkit_portrait"
FOLDER_KIND = "portrait-generator"  # genkit_model of a generator's model folder (genkit.core.model_folders)
FORMAT_VERSION = 2
GENERATOR_PREFIX = "generator."
EMA_PREFIX = "generator_ema.module."
WEIGHT_CHOICES = ("auto", "ema", "raw")


def make_block(generator_config: dict, ema: bool, target: str | None = None) -> dict:
    block = {"format": FORMAT_VERSION, "generator": dict(generator_config), "ema": bool(ema)}
    if target:
        block["generator_target"] = str(target)
    return block


def load_raw(path: str | Path) -> dict:
    """A portrait checkpoint's dict; a model folder or hub id reads as an export (block + one generator)."""
    if model_folders.is_model_source(path):
        folder = model_folders.read(path, FOLDER_KIND)
        return {CHECKPOINT_KEY: folder.config.get(CHECKPOINT_KEY), "state_dict": dict(folder.state),
                "folder": folder}
    return load_checkpoint(path, "portrait checkpoint")


def read_block(ckpt: dict, path: str | Path = "checkpoint") -> dict:
    block = ckpt.get(CHECKPOINT_KEY)
    if not isinstance(block, dict):
        other = " (it is a face-parser checkpoint)" if "genkit_parser" in ckpt else ""
        raise CheckpointError(f"{path}: not a portrait-editing checkpoint{other}; train one with "
                              "`genkit-train experiment=portrait_synthetic`")
    if block.get("format") == 1:
        raise CheckpointError(f"{path}: portrait checkpoint of format 1 (an earlier genkit: flat model settings and a "
                              "generator without the photo-keeping paste); its networks differ from this version's. "
                              "Retrain it with `genkit-train experiment=portrait_*`")
    if block.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: portrait checkpoint format {block.get('format')!r} is not supported "
                              f"(expected {FORMAT_VERSION})")
    if not isinstance(block.get("generator"), dict):
        raise CheckpointError(f"{path}: portrait checkpoint metadata is damaged (no generator settings)")
    return block


def block_schema(block: dict) -> LabelSchema:
    from genkit.models.parsing.checkpoint import schema_from_dict

    try:
        return schema_from_dict(block["generator"]["schema"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"portrait checkpoint metadata is damaged ({exc})") from None


def check_compatible(block: dict, path: str | Path, expected_schema: LabelSchema | str | Path | None = None,
                     expected_image_size: int | None = None) -> None:
    """Clear errors for a checkpoint of another schema or resolution."""
    schema = block_schema(block)
    size = int(block["generator"].get("image_size", -1))
    if expected_schema is not None:
        try:
            expected = get_schema(expected_schema)
        except GenkitError as exc:
            raise CheckpointError(f"expected schema cannot be resolved: {exc}") from None
        if tuple(expected.classes) != tuple(schema.classes):
            raise CheckpointError(
                f"{path}: the portrait model was trained for schema {schema.name!r} ({schema.num_classes} classes: "
                f"{', '.join(schema.classes)}), but schema {expected.name!r} ({expected.num_classes} classes) is "
                "required; map the masks to the model's schema or use a model trained on this one")
    if expected_image_size is not None and int(expected_image_size) != size:
        raise CheckpointError(f"{path}: the portrait model works at {size}x{size} px, but {expected_image_size} px "
                              "is required (set the data/model image_size to match, or train at this size)")


def compare_configs(saved: dict, current: dict, path: str | Path = "checkpoint") -> None:
    """Raise a CheckpointError naming every generator setting that differs (schema and resolution first)."""
    diffs = []
    for key in ("schema", "image_size"):
        if saved.get(key) != current.get(key):
            if key == "schema":
                a, b = saved.get("schema", {}), current.get("schema", {})
                if a.get("classes") == b.get("classes"):
                    continue  # same classes: colours/names of the schema do not matter
                diffs.append(f"schema {a.get('name')!r} ({len(a.get('classes', []))} classes) vs "
                             f"{b.get('name')!r} ({len(b.get('classes', []))} classes)")
            else:
                diffs.append(f"image_size {saved.get(key)} vs {current.get(key)}")
    for key in sorted(set(saved) | set(current)):
        if key in ("schema", "image_size"):
            continue
        if saved.get(key) != current.get(key):
            diffs.append(f"{key} {saved.get(key)!r} vs {current.get(key)!r}")
    if diffs:
        raise CheckpointError(f"{path}: checkpoint does not fit this model (checkpoint vs configured): "
                              + "; ".join(diffs))


def generator_state(ckpt: dict, weights: str = "auto") -> tuple[dict, str, str]:
    """The generator weights of a training checkpoint or an export: ``(state, used, why)`` with ``used`` ``"ema"``
    or ``"raw"`` and ``why`` a short reason (for the editor's notes)."""
    if weights not in WEIGHT_CHOICES:
        raise CheckpointError(f"generator weights must be one of {', '.join(WEIGHT_CHOICES)}, got {weights!r}")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError("checkpoint has no state_dict")
    block = ckpt.get(CHECKPOINT_KEY, {})
    if not any(k.startswith((GENERATOR_PREFIX, EMA_PREFIX)) for k in state):  # an export: one generator
        used = "ema" if block.get("ema", False) else "raw"
        if weights not in ("auto", used):
            raise CheckpointError(f"this export holds only the {used} generator weights, not the {weights} ones")
        return dict(state), used, f"the export's {used} weights"
    has_ema = any(k.startswith(EMA_PREFIX) for k in state)
    selection = block.get("selection") or {}
    if weights == "auto":
        if not has_ema:
            used, why = "raw", "no EMA was kept"
        elif selection.get("weights") in ("ema", "raw"):
            used = selection["weights"]
            other = "raw" if used == "ema" else "ema"
            why = (f"better by {selection.get('metric', 'validation')}: {used} {selection.get(used, float('nan')):.4g}"
                   f" vs {other} {selection.get(other, float('nan')):.4g} at step {selection.get('step', '?')}")
        else:
            used, why = "ema", "no validation result recorded; EMA by default"
    else:
        used, why = weights, "asked for"
        if used == "ema" and not has_ema:
            raise CheckpointError("this checkpoint keeps no EMA generator (trained with model.ema=null); use the raw "
                                  "weights")
    prefix = EMA_PREFIX if used == "ema" else GENERATOR_PREFIX
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, used, why


def build_generator(block: dict, state: dict, path: str | Path = "checkpoint"):
    from genkit.models.portrait.generator import PortraitGenerator

    cls = PortraitGenerator
    target = block.get("generator_target")
    if target and target != f"{PortraitGenerator.__module__}.{PortraitGenerator.__qualname__}":
        import hydra.utils

        try:
            cls = hydra.utils.get_class(target)
        except Exception as exc:  # noqa: BLE001 - hydra raises several kinds
            raise CheckpointError(f"{path}: generator class {target!r} cannot be imported ({exc})") from None
    try:
        gen = cls(**block["generator"])
    except (TypeError, ValueError, GenkitError) as exc:
        raise CheckpointError(f"{path}: generator settings are invalid ({exc})") from None
    problem = state_mismatch(gen.state_dict(), state)
    if problem:
        raise CheckpointError(f"{path}: generator weights do not fit the declared network: {problem}")
    gen.load_state_dict(state, strict=True)
    return gen.eval()


def load_generator(path: str | Path, weights: str = "auto", expected_schema: LabelSchema | str | Path | None = None,
                   expected_image_size: int | None = None):
    """``(PortraitGenerator in eval mode, block, used, why)`` from a training checkpoint or an export; ``weights``:
    ``auto`` (the better of raw and EMA by the last validation), ``ema`` or ``raw``."""
    ckpt = load_raw(path)
    if "folder" in ckpt:
        path = ckpt["folder"].config_path  # errors name the file that declares the network
    block = read_block(ckpt, path)
    check_compatible(block, path, expected_schema, expected_image_size)
    state, used, why = generator_state(ckpt, weights)
    return build_generator(block, state, path), block, used, why


def export_generator(generator, path: str | Path, ema: bool, training: dict | None = None,
                     selection: dict | None = None) -> Path:
    """Write a small inference file: the checkpoint block and one generator's weights (atomic)."""
    block = make_block(generator.config(), ema, f"{type(generator).__module__}.{type(generator).__qualname__}")
    if training:
        block["training"] = dict(training)
    if selection:
        block["selection"] = dict(selection)
    state = {k: v.detach().cpu() for k, v in generator.state_dict().items()}
    return atomic_torch_save({CHECKPOINT_KEY: block, "state_dict": state}, path)
