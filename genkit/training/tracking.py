"""Experiment tracking: a W&B logger that never needs a network to start, run identities, and offline records.

Online when an API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry) and ``WANDB_MODE`` does not say
otherwise; offline otherwise, so runs land in ``<save_dir>/wandb/offline-run-*`` and can be uploaded later with
``wandb sync <folder>``. Every run gets a unique name (``<task>-<time>``, plus ``-job<N>`` in a sweep), its task as
``group`` (``<task>-sweep-<time>`` for the jobs of one sweep) and a ``job_type`` (``train``, ``sweep``, ``eval``).

Resuming: online, a resumed run continues the same W&B run (same id, same step axis). Offline, W&B cannot append to
a run (``wandb sync`` of a second folder with the same id overwrites the first), so a resumed run is a NEW run in
the same group whose config and summary name the run it continues (``resumed_from``).
"""

from __future__ import annotations

import logging
import netrc
import os
import struct
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_TAG = "random-weights"


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """``online``, ``offline`` or ``disabled``: WANDB_MODE if set, else online only with credentials."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("online", "offline", "disabled", "dryrun"):
        return "offline" if mode == "dryrun" else mode
    return "online" if wandb_has_credentials() else "offline"


def run_identity(task_name: str, job_type: str, sweep: tuple[str, int] | None = None,
                 started: float | None = None) -> dict[str, str]:
    """``name``, ``group`` and ``job_type`` of a run; ``sweep`` is ``(sweep folder name, job number)``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started or time.time()))
    if sweep is None:
        return {"name": f"{task_name}-{stamp}", "group": task_name, "job_type": job_type}
    sweep_name, job = sweep
    return {"name": f"{task_name}-{sweep_name}-job{job}", "group": f"{task_name}-sweep-{sweep_name}",
            "job_type": job_type}


def wandb_logger(project: str = "genkit", save_dir: str = ".", name: str | None = None, tags=None,
                 log_model: bool | str = False, id: str | None = None, group: str | None = None,
                 job_type: str | None = None, silent: bool = False, **kwargs):
    """A Lightning ``WandbLogger`` in the right mode (see module doc); ``id`` continues an existing (online) run.

    ``log_model``: upload checkpoints as W&B artifacts (online only: offline runs cannot hold them, the flag is then
    ignored with a warning). ``silent``: no W&B console output (the demo and tests).
    """
    from lightning.pytorch.loggers import WandbLogger

    mode = wandb_mode()
    if mode != "online":
        log.info("W&B runs %s (no API key or WANDB_MODE=%s); sync later with `wandb sync %s/wandb/<run>`",
                 mode, os.environ.get("WANDB_MODE", "unset"), save_dir)
        if log_model:
            log.warning("logger.wandb.log_model=%s is ignored: an %s W&B run cannot upload checkpoints as artifacts "
                        "(they stay in the run's checkpoints/ folder)", log_model, mode)
            log_model = False
    if silent:
        import wandb

        kwargs.setdefault("settings", wandb.Settings(silent=True))
    os.makedirs(save_dir, exist_ok=True)
    logger = WandbLogger(project=project, save_dir=save_dir, name=name, tags=list(tags or []), group=group,
                         job_type=job_type, log_model=log_model, offline=mode == "offline",
                         mode=mode if mode == "disabled" else None, id=id, resume="allow" if id else None, **kwargs)
    # Lightning passes anonymous=None, which wandb >= 0.19 answers with a deprecation warning on every run
    if getattr(logger, "_wandb_init", {}).get("anonymous", 0) is None:
        logger._wandb_init.pop("anonymous")
    return logger


def wandb_loggers(trainer_or_loggers) -> list:
    loggers = getattr(trainer_or_loggers, "loggers", trainer_or_loggers) or []
    return [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]


def mark_random_weights(loggers, used: bool) -> None:
    """Put ``random_weights`` in every W&B run's summary, and the ``random-weights`` tag on runs that used them."""
    for lg in wandb_loggers(loggers):
        run = lg.experiment
        if not hasattr(run, "summary"):
            continue  # a disabled run, or a non-zero rank's dummy
        run.summary["random_weights"] = bool(used)
        if used and RANDOM_WEIGHTS_TAG not in (run.tags or ()):
            run.tags = (*(run.tags or ()), RANDOM_WEIGHTS_TAG)


# --------------------------------------------------------------------------------------- offline run records
def _wandb_file_records(path: Path) -> Iterator[bytes]:
    """The raw records of a ``.wandb`` transaction log (LevelDB log format: 32 KiB blocks of chunked records)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B transaction log")
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        chunk, pos = data[pos:pos + length], pos + length
        if kind == 1:      # full
            yield chunk
        elif kind == 2:    # first
            pending = chunk
        elif kind == 3:    # middle
            pending += chunk
        elif kind == 4:    # last
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:
            pos += left - 7  # zero padding to the end of the block


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """What an offline W&B run folder (``offline-run-*``) recorded, decoded with wandb's own protobuf messages:
    ``id``, ``name``, ``group``, ``job_type``, ``tags`` (final), ``config`` and ``summary`` (nested dicts of the
    last values) and ``history_keys`` (every logged metric)."""
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no .wandb file")
    out: dict[str, Any] = {"config": {}, "summary": {}, "history_keys": set(), "tags": []}

    def put(tree: dict, item) -> None:
        keys = list(item.nested_key) or [item.key]
        node = tree
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = json.loads(item.value_json)

    for raw in _wandb_file_records(files[0]):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out.update(id=r.run_id, name=r.display_name or out.get("name"), group=r.run_group or out.get("group"),
                       job_type=r.job_type or out.get("job_type"), tags=list(r.tags))
            for item in r.config.update:
                put(out["config"], item)
        elif kind == "config":
            for item in record.config.update:
                put(out["config"], item)
        elif kind == "summary":
            for item in record.summary.update:
                put(out["summary"], item)
        elif kind == "history":
            out["history_keys"].update("/".join(i.nested_key) if i.nested_key else i.key for i in record.history.item)
    out["config"].pop("_wandb", None)
    return out
