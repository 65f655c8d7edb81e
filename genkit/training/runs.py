"""Runs and their checkpoints: which checkpoint ``ckpt_path=last`` means, and what changed since it was written.

Every checkpoint genkit-train writes carries a run record under :data:`RUN_KEY` (see
:class:`genkit.training.callbacks.run_record.RunRecord`): the resolved config of the run that wrote it and its W&B run id.
Resuming compares that config with the new one; evaluating (``train=false``) takes the model config from it.
Checkpoints written before the record existed fall back to the ``.hydra/config.yaml`` of their run folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from genkit.core.errors import ConfigError
from genkit.core.moved import current_targets

RUN_KEY = "genkit_run"
log = logging.getLogger(__name__)

# keys that say where and how a run is launched, not what is trained: never reported as changes
IGNORED_KEYS = ("paths.", "hydra.", "ckpt_path", "resume_force", "train", "test")
# a resume refuses changes under these prefixes (a different model or data), unless resume_force=true
GUARDED_PREFIXES = ("model.", "data.")
# ... except these, which do not change what is trained
UNGUARDED_KEYS = ("data.num_workers",)


def read_run_record(ckpt: str | Path) -> dict:
    """The run record of a checkpoint (``{}`` when it has none). Loads lazily (mmap), so it is cheap for big files."""
    import torch

    ckpt = Path(ckpt)
    try:
        data = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported by the caller's own load
        log.debug("cannot read %s: %s", ckpt, exc)
        return {}
    record = dict(data.get(RUN_KEY) or {}) if isinstance(data, dict) else {}
    record.setdefault("global_step", data.get("global_step") if isinstance(data, dict) else None)
    if "config" not in record:
        hydra_cfg = ckpt.resolve().parent.parent / ".hydra" / "config.yaml"
        if hydra_cfg.is_file():
            import yaml

            # unresolved (interpolations), so good for literal flags such as fast_dev_run, not for a diff
            record["hydra_config"] = yaml.safe_load(hydra_cfg.read_text()) or {}
    return record


def is_resumable(record: dict) -> bool:
    """False for checkpoints no run should resume: fast_dev_run smoke runs and runs that never took a step."""
    trainer = (record.get("config") or record.get("hydra_config") or {}).get("trainer") or {}
    if trainer.get("fast_dev_run"):
        return False
    return bool(record.get("global_step"))


def find_last_checkpoint(log_dir: str | Path, task_name: str, output_dir: str | Path | None = None,
                         sweep_job: int | None = None) -> Path:
    """The checkpoint ``ckpt_path=last`` resumes.

    1. this run's own ``checkpoints/last.ckpt`` (a requeued cluster job restarts in its own folder);
    2. otherwise the newest resumable ``last.ckpt`` among the task's single runs (``<log_dir>/<task>/runs/*``), or,
       for job ``sweep_job`` of a sweep, among the same job of the task's earlier sweeps. Checkpoints of
       ``fast_dev_run`` and of runs that never took a step are skipped; other tasks are never looked at.
    """
    if output_dir is not None:
        own = Path(output_dir) / "checkpoints" / "last.ckpt"
        if own.is_file() and is_resumable(read_run_record(own)):
            return own
    root = Path(log_dir) / task_name
    pattern = "runs/*/checkpoints/last.ckpt" if sweep_job is None else f"multiruns/*/{sweep_job}/checkpoints/last.ckpt"
    candidates = sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    skipped = 0
    for path in candidates:
        if is_resumable(read_run_record(path)):
            if skipped:
                log.info("ckpt_path=last: skipped %d newer checkpoint(s) of fast_dev_run or step-0 runs", skipped)
            return path
        skipped += 1
    where = root / pattern.rsplit("/checkpoints", 1)[0]
    raise ConfigError(f"ckpt_path=last: no last.ckpt of a resumable run under {where} (has task {task_name!r} been "
                      "trained with this paths.log_dir? fast_dev_run and step-0 checkpoints are skipped)")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for every flattened key whose value differs (missing keys count as ``None``)."""
    a, b = flatten(current_targets(old)), flatten(current_targets(new))  # a 0.2 record names old module paths
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k), b.get(k)) for k in keys
            if a.get(k) != b.get(k) and not any(k == i or (i.endswith(".") and k.startswith(i)) for i in IGNORED_KEYS)}


def guarded_changes(changes: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """The changes a resume refuses: a different model or data config."""
    return {k: v for k, v in changes.items() if k.startswith(GUARDED_PREFIXES) and k not in UNGUARDED_KEYS}


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def format_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, (a, b) in changes.items())
