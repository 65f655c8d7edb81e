"""Experiment tracking: a W&B logger that never needs a network to start.

Online when an API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry) and ``WANDB_MODE`` does not say
otherwise; offline otherwise, so runs land in ``<save_dir>/wandb/offline-run-*`` and can be uploaded later with
``wandb sync <folder>``. A resumed genkit run passes the previous run's id so W&B continues the same run.
"""

from __future__ import annotations

import logging
import netrc
import os
from urllib.parse import urlparse

log = logging.getLogger(__name__)


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


def wandb_logger(project: str = "genkit", save_dir: str = ".", name: str | None = None, tags=None,
                 log_model: bool | str = True, id: str | None = None, **kwargs):
    """A Lightning ``WandbLogger`` in the right mode (see module doc); ``id`` resumes an existing run."""
    from lightning.pytorch.loggers import WandbLogger

    mode = wandb_mode()
    if mode != "online":
        log.info("W&B runs %s (no API key or WANDB_MODE=%s); sync later with `wandb sync %s/wandb/<run>`",
                 mode, os.environ.get("WANDB_MODE", "unset"), save_dir)
    os.makedirs(save_dir, exist_ok=True)
    return WandbLogger(project=project, save_dir=save_dir, name=name, tags=list(tags or []),
                       log_model=log_model if mode == "online" else False, offline=mode == "offline",
                       mode=mode if mode == "disabled" else None, id=id, resume="allow" if id else None, **kwargs)
