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

from genkit.core.checkpoints import load_checkpoint
from genkit.core.errors import CheckpointError, ConfigError
from genkit.core.moved import current_targets

RUN_KEY = "genkit_run"
log = logging.getLogger(__name__)

# keys that say where and how a run is launched, not what is trained: never reported as changes
IGNORED_KEYS = ("paths.", "hydra.", "ckpt_path", "resume_force", "train", "test")
# a resume refuses changes under these prefixes (a different model or data), unless resume_force=true
GUARDED_PREFIXES = ("model.", "data.")
# ... except these, which do not change what is trained
UNGUARDED_KEYS = ("data.num_workers",)


TRAINING_STATE = ("state_dict", "global_step")  # what a checkpoint needs to be resumed or evaluated


def read_run_record(ckpt: str | Path, finite: bool = True) -> dict:
    """The run record of a genkit-train checkpoint (see :class:`~genkit.training.callbacks.run_record.RunRecord`;
    without one, the run folder's Hydra config). A file that is damaged, unsafe, non-finite or not a training
    checkpoint is a :class:`~genkit.core.errors.CheckpointError` naming it and the reason. Tensors are mapped, not
    read, except to check that the weights are finite (``finite=False``: not even that)."""
    ckpt = Path(ckpt)
    data = load_checkpoint(ckpt, "training checkpoint", mmap=True, finite=finite)
    missing = [k for k in TRAINING_STATE if k not in data]
    if missing:
        raise CheckpointError(f"{ckpt}: not a genkit-train checkpoint (no {' or '.join(missing)}); ckpt_path takes "
                              "a .ckpt that genkit-train wrote")
    record = dict(data.get(RUN_KEY) or {})
    record.setdefault("global_step", data.get("global_step"))
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


def _newest_first(runs: list[Path]) -> list[Path]:
    """Run folders, the one with the most recently written checkpoint first (runs without any are left out)."""
    stamped = [(max(p.stat().st_mtime for p in ckpts), run) for run in runs
               if (ckpts := list((run / "checkpoints").glob("*.ckpt")))]
    return [run for _, run in sorted(stamped, key=lambda t: t[0], reverse=True)]


def newest_intact_checkpoint(run: Path) -> tuple[Path | None, list[str]]:
    """``(the run's intact resumable checkpoint of the highest step, or None; 'file: reason' of each damaged one)``.
    The weights are read (to check they are finite) only of the candidates tried, highest step first."""
    ranked, damaged = [], []
    for path in sorted((run / "checkpoints").glob("*.ckpt")):
        try:
            record = read_run_record(path, finite=False)
        except CheckpointError as exc:
            damaged.append(str(exc))
            continue
        if is_resumable(record):
            ranked.append(((record["global_step"], path.name == "last.ckpt", path.stat().st_mtime), path))
    for _, path in sorted(ranked, reverse=True):
        try:
            read_run_record(path)
            return path, damaged
        except CheckpointError as exc:
            damaged.append(str(exc))
    return None, damaged


def find_last_checkpoint(log_dir: str | Path, task_name: str, output_dir: str | Path | None = None,
                         sweep_job: int | None = None) -> Path:
    """The checkpoint ``ckpt_path=last`` resumes: the newest intact checkpoint of the newest run, or a refusal.

    The runs looked at are this run's own folder first (a requeued cluster job restarts in its own folder), then
    the task's single runs (``<log_dir>/<task>/runs/*``), or, for job ``sweep_job`` of a sweep, the same job of the
    task's earlier sweeps, newest first; other tasks are never looked at. Runs whose checkpoints are all of
    ``fast_dev_run`` or step 0 are skipped. In the first other run, damaged checkpoints are reported (file and
    reason) and the intact one of the highest step is taken; when none is intact the resume is refused rather than
    silently taking an older run.
    """
    root = Path(log_dir) / task_name
    pattern = "runs/*" if sweep_job is None else f"multiruns/*/{sweep_job}"
    own = [Path(output_dir)] if output_dir is not None and (Path(output_dir) / "checkpoints").is_dir() else []
    skipped = 0
    for run in own + [r for r in _newest_first(list(root.glob(pattern))) if not own or r.resolve() != own[0].resolve()]:
        path, damaged = newest_intact_checkpoint(run)
        for problem in damaged:
            log.warning("ckpt_path=last: damaged checkpoint skipped: %s", problem)
        if path is not None:
            if skipped:
                log.info("ckpt_path=last: skipped %d newer run(s) of fast_dev_run or step 0", skipped)
            return path
        if damaged:
            raise ConfigError(f"ckpt_path=last: the newest run {run} has no intact checkpoint to resume ({damaged[0]}"
                              f"{f'; and {len(damaged) - 1} more' if len(damaged) > 1 else ''}); give "
                              "ckpt_path=<file.ckpt> to resume another run")
        skipped += 1
    raise ConfigError(f"ckpt_path=last: no checkpoint of a resumable run under {root / pattern} (has task "
                      f"{task_name!r} been trained with this paths.log_dir? fast_dev_run and step-0 checkpoints are "
                      "skipped)")


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
