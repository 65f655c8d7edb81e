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
import time
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
