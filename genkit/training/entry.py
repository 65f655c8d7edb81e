"""Hydra entry point: ``genkit-train experiment=NAME key=value ...`` (also ``python -m genkit.train``).

Composes ``conf/train.yaml``, instantiates the datamodule, model, callbacks, loggers and trainer from their
``_target_``s, fits, tests and prints where everything was written.

- ``ckpt_path=last`` resumes this task's newest resumable run (see :func:`genkit.training.runs.find_last_checkpoint`),
  printing what changed since the checkpoint and refusing a different model/data config unless
  ``resume_force=true``; the step count, optimiser, scheduler, random states and data position continue.
- ``train=false ckpt_path=X`` evaluates checkpoint X (with the model config recorded in it).
- SIGTERM / Ctrl+C save ``last.ckpt`` and exit 143 / 130; errors a user can fix print one line and exit 2.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from genkit.core.errors import ConfigError, FileSystemError, GenkitError
from genkit.training.runs import (RUN_KEY, config_changes, find_last_checkpoint, format_changes,  # noqa: F401 (RUN_KEY)
                         guarded_changes, read_run_record)



def find_conf_dir() -> str:
    """The Hydra configs: ``genkit/conf`` in a wheel (the build maps the repository's top-level ``conf/`` there),
    the repository's ``conf/`` in a source checkout or an editable install."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "conf", package.parent / "conf"):
        if (folder / "train.yaml").is_file():
            return str(folder)
    raise FileNotFoundError(f"genkit's Hydra configs are missing: neither {package / 'conf'} (a wheel install) nor "
                            f"{package.parent / 'conf'} (a source checkout) holds train.yaml; reinstall genkit")


CONF_DIR = find_conf_dir()
RUN_INFO = "run_info.json"
log = logging.getLogger("genkit.training.entry")


class TrainingStopped(GenkitError):
    """The run was stopped by a signal (cluster pre-emption, Ctrl+C); exits with 128 + the signal number."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


def _sweep_job() -> tuple[str, int] | None:
    """``(sweep folder name, job number)`` inside a ``-m`` sweep, else ``None``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return Path(hc.sweep.dir).name, int(hc.job.num)


def resolve_ckpt_path(cfg: DictConfig) -> Path | None:
    value = cfg.get("ckpt_path")
    if value in (None, "", "null"):
        return None
    if value == "last":
        sweep = _sweep_job()
        return find_last_checkpoint(cfg.paths.log_dir, cfg.task_name, output_dir=cfg.paths.output_dir,
                                    sweep_job=None if sweep is None else sweep[1])
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={value}: file does not exist")
    return path


def _previous_run_info(ckpt: Path | None) -> dict:
    import json

    if ckpt is None:
        return {}
    info = ckpt.resolve().parent.parent / RUN_INFO
    return json.loads(info.read_text()) if info.exists() else {}


def _relative_paths(tree, output_dir: str | None):
    """String values under a run's output folder written relative to it, so two runs' configs compare equal."""
    if not output_dir:
        return tree
    if isinstance(tree, dict):
        return {k: _relative_paths(v, output_dir) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_relative_paths(v, output_dir) for v in tree]
    if isinstance(tree, str) and tree.startswith(output_dir):
        return "${paths.output_dir}" + tree[len(output_dir):]
    return tree


def check_against_checkpoint(cfg: DictConfig, ckpt: Path, record: dict) -> None:
    """Say which checkpoint this run starts from and what changed since it was written.

    Training (a resume): a different model or data config is refused unless ``resume_force=true``. Evaluation
    (``train=false``): the model config is the checkpoint's (its weights define the model); data may differ.
    """
    training = bool(cfg.get("train", True))
    step = record.get("global_step")
    print(f"{'resuming from' if training else 'evaluating'} {ckpt} (step {step})", flush=True)
    stored = record.get("config")
    if not stored:
        print("  the checkpoint records no config (written before genkit recorded it): changes since then "
              "cannot be shown or checked", flush=True)
        return
    current = OmegaConf.to_container(cfg, resolve=True)
    changes = config_changes(_relative_paths(stored, (stored.get("paths") or {}).get("output_dir")),
                             _relative_paths(current, str(cfg.paths.output_dir)))
    if not training:
        model_changes = {k: v for k, v in changes.items() if k.startswith("model.")}
        if model_changes and "model" in stored:
            with open_dict(cfg):
                cfg.model = OmegaConf.create(stored["model"])
            print(f"  model config taken from the checkpoint (this command's differs in: "
                  f"{format_changes(model_changes)})", flush=True)
        return
    if changes:
        print(f"  changed since that checkpoint: {format_changes(changes)}", flush=True)
    guarded = guarded_changes(changes)
    if guarded and not cfg.get("resume_force", False):
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: {ckpt} was trained with a different model/data config "
                          f"({format_changes(guarded)}); resume with the checkpoint's values, or add "
                          "resume_force=true to continue with the new ones")


def compose(overrides: list[str] | tuple[str, ...] = (), output_dir: str | Path | None = None) -> DictConfig:
    """Compose ``conf/train.yaml`` outside the command line (notebooks, the demo); pair with :func:`run`.

    ``output_dir`` replaces the Hydra run folder (there is none outside ``genkit-train``).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    if output_dir is not None:
        overrides.append(f"paths.output_dir={Path(output_dir).resolve()}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="genkit"):
        cfg = hydra_compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def instantiate_group(group: DictConfig | None, extra: dict[str, dict] | None = None) -> list:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); ``null`` entries are skipped.
    ``extra[name]`` adds keyword arguments to entry ``name`` for the values it leaves ``null``."""
    out = []
    for name, conf in (group or {}).items():
        if conf is not None and "_target_" in conf:
            kwargs = {k: v for k, v in ((extra or {}).get(name) or {}).items() if conf.get(k) is None}
            out.append(hydra.utils.instantiate(conf, _convert_="partial", **kwargs))
    return out


def _job_type(cfg: DictConfig, sweep) -> str:
    if not cfg.get("train", True):
        return "eval"
    return "sweep" if sweep is not None else "train"


def run(cfg: DictConfig) -> dict:
    """Fit and/or test one composed configuration; returns the final metrics.

    ``train=false`` tests the checkpoint ``ckpt_path`` names; after a fit, ``test`` uses the best checkpoint of
    the monitored metric (the last one when nothing is monitored). A run stopped by SIGTERM or Ctrl+C saves
    ``last.ckpt`` and raises :class:`TrainingStopped`.
    """
    import lightning as L

    from genkit.core import weights
    from genkit.core.console import one_line_per_lightning_record
    from genkit.core.files import atomic_write_json

    one_line_per_lightning_record()
    L.seed_everything(cfg.seed, workers=True)
    training, testing = bool(cfg.get("train", True)), bool(cfg.get("test", True))
    ckpt_path, record = _starting_point(cfg, training, testing)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    log.info("instantiating datamodule <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="partial")
    log.info("instantiating model <%s>", cfg.model._target_)
    model = hydra.utils.instantiate(cfg.model, _convert_="partial")
    if not training and not hasattr(model, "test_step"):
        raise ConfigError(f"train=false: {cfg.model._target_} has no test step to evaluate {ckpt_path} with")
    trainer = _trainer_with_bookkeeping(cfg, output_dir, ckpt_path, record, training)

    metrics, tested = _fit_and_test(trainer, model, datamodule, ckpt_path, training, testing)
    testing = testing and hasattr(model, "test_step")
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", {"step": trainer.global_step, "epoch": trainer.current_epoch,
                                                        "metrics": metrics, "tested_checkpoint": tested,
                                                        "random_weights": weights.used_random_weights()})
        _print_summary(cfg, trainer, output_dir, metrics, tested if testing else False)
    return {"metrics": metrics, "output_dir": str(output_dir), "global_step": trainer.global_step,
            "tested_checkpoint": tested}


def _starting_point(cfg: DictConfig, training: bool, testing: bool) -> tuple[Path | None, dict]:
    """Option values and the checkpoint to start from (``ckpt_path``) with its run record, all checked before
    anything is built or written."""
    from genkit.training.values import check_model_values

    if not training and not testing:
        raise ConfigError("train=false test=false: nothing to do")
    check_model_values(OmegaConf.to_container(cfg.model, resolve=True))
    ckpt_path = resolve_ckpt_path(cfg)
    if not training and ckpt_path is None:
        raise ConfigError("train=false evaluates a checkpoint: give ckpt_path=<file.ckpt> (or ckpt_path=last for the "
                          "newest run of this task)")
    record = read_run_record(ckpt_path) if ckpt_path else {}
    if ckpt_path:
        check_against_checkpoint(cfg, ckpt_path, record)
    return ckpt_path, record


def _trainer_with_bookkeeping(cfg: DictConfig, output_dir: Path, ckpt_path: Path | None, record: dict,
                              training: bool):
    """The trainer with its callbacks and loggers; the run's identity, config and W&B links logged, and
    ``run_info.json`` written."""
    from genkit.core import weights
    from genkit.core.files import atomic_write_json
    from genkit.training import tracking
    from genkit.training.callbacks.run_record import RunRecord

    previous_wandb = record.get("wandb_id") or _previous_run_info(ckpt_path).get("wandb_id")
    sweep = _sweep_job()
    identity = tracking.run_identity(cfg.task_name, _job_type(cfg, sweep), sweep)
    wandb_extra = dict(identity)  # name, group, job_type where the config leaves them null
    online = tracking.wandb_mode() == "online"
    if previous_wandb and training and online:
        wandb_extra["id"] = previous_wandb  # online W&B continues the same run
    config = OmegaConf.to_container(cfg, resolve=True)
    loggers = instantiate_group(cfg.get("logger"), {"wandb": wandb_extra})
    run_record = RunRecord(config, task_name=cfg.task_name)
    callbacks = [*instantiate_group(cfg.get("callbacks")), run_record]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="partial")

    link = {}
    if previous_wandb and not (training and online):
        link = {"resumed_from" if training else "evaluated_from": {"wandb_id": previous_wandb,
                                                                   "checkpoint": str(ckpt_path)}}
    for lg in trainer.loggers:
        lg.log_hyperparams({**config, **link})  # the whole config, once (modules save theirs with logger=False)
    tracking.mark_random_weights(trainer.loggers, weights.used_random_weights())
    wandb_id = next((lg.version for lg in tracking.wandb_loggers(trainer)), None)
    for lg in tracking.wandb_loggers(trainer):
        if link and hasattr(lg.experiment, "summary"):
            lg.experiment.summary[next(iter(link))] = previous_wandb
    run_record.info["wandb_id"] = wandb_id
    if trainer.is_global_zero:
        atomic_write_json(output_dir / RUN_INFO, {
            "task_name": cfg.task_name, "wandb_id": wandb_id, **identity,
            "resumed_from": str(ckpt_path) if ckpt_path and training else None,
            "evaluated": str(ckpt_path) if ckpt_path and not training else None,
            "resumed_wandb_id": previous_wandb if training else None,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "weights": weights.provenance(),
            "random_weights": weights.used_random_weights()})
    return trainer


def _fit_and_test(trainer, model, datamodule, ckpt_path: Path | None, training: bool,
                  testing: bool) -> tuple[dict, str | None]:
    """``(metrics, the checkpoint tested)``: fit (resuming ``ckpt_path``), then test the best checkpoint, or test
    ``ckpt_path`` alone (``train=false``)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from genkit.core import weights
    from genkit.training import tracking

    metrics: dict = {}
    tested: str | None = None
    try:
        if training:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
            metrics.update(_scalar_metrics(trainer))
        if testing and hasattr(model, "test_step"):
            tested = str(ckpt_path) if not training else checkpoint_to_test(trainer)
            log.info("testing %s", tested or "the final weights in memory (no checkpoint was written)")
            trainer.test(model, datamodule=datamodule, ckpt_path=tested)
            metrics.update(_scalar_metrics(trainer))
    except SIGTERMException:
        _finish_wandb(trainer, exit_code=1)
        raise _stopped(trainer) from None
    tracking.mark_random_weights(trainer.loggers, weights.used_random_weights())  # also weights loaded in setup
    _finish_wandb(trainer)
    return metrics, tested


def checkpoint_to_test(trainer) -> str | None:
    """After a fit: the best checkpoint of the monitored metric, else the last one; ``None`` when none was written
    (no checkpoint callback, fast_dev_run)."""
    cb = getattr(trainer, "checkpoint_callback", None)
    if cb is None or trainer.fast_dev_run:
        return None
    if cb.monitor and cb.best_model_path and Path(cb.best_model_path).is_file():
        return cb.best_model_path
    for path in (cb.last_model_path, cb.best_model_path):
        if path and Path(path).is_file():
            return path
    return None


def _stopped(trainer) -> TrainingStopped:
    import signal

    from genkit.training.callbacks.preemption import PreemptibleCheckpoint

    cb = next((c for c in trainer.callbacks if isinstance(c, PreemptibleCheckpoint)), None)
    signum = (cb.stop_signal if cb is not None else None) or signal.SIGTERM
    saved = cb.stop_checkpoint if cb is not None else None
    where = (f"saved {saved} (resume: ckpt_path=last)" if saved else
             "no checkpoint saved (nothing trained yet, or no PreemptibleCheckpoint callback)")
    return TrainingStopped(signum, f"stopped by {signal.Signals(signum).name} at step {trainer.global_step}; {where}")


def _scalar_metrics(trainer) -> dict[str, float]:
    import torch

    return {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}


def _finish_wandb(trainer, exit_code: int = 0) -> None:
    """Close this run's W&B run: Lightning leaves it open, and the next run in the same process (the demo, a
    notebook, a sweep) would otherwise log into it."""
    from genkit.training import tracking

    for lg in tracking.wandb_loggers(trainer):
        if getattr(lg, "_experiment", None) is not None and hasattr(lg.experiment, "finish"):
            lg.experiment.finish(exit_code=exit_code)


def _print_summary(cfg, trainer, output_dir: Path, metrics: dict, tested: str | None | bool) -> None:
    from genkit.training import tracking
    from genkit.core import weights

    ckpt_cb = getattr(trainer, "checkpoint_callback", None)
    verb = "finished" if cfg.get("train", True) else "evaluated"
    lines = [f"genkit-train: {cfg.task_name} {verb} at step {trainer.global_step} (epoch {trainer.current_epoch})",
             f"  outputs:     {output_dir}"]
    if ckpt_cb is not None and getattr(ckpt_cb, "dirpath", None) and Path(ckpt_cb.dirpath).exists():
        lines.append(f"  checkpoints: {ckpt_cb.dirpath}  (resume: ckpt_path=last or ckpt_path=<file>)")
    if tested is not False:
        lines.append(f"  tested:      {tested or '(the final weights in memory; no checkpoint was written)'}")
    if (output_dir / "images").exists():
        lines.append(f"  images:      {output_dir / 'images'}")
    for lg in trainer.loggers:
        if lg in tracking.wandb_loggers(trainer):
            name = getattr(getattr(lg, "_experiment", None), "name", None)
            lines.append(f"  wandb:       {lg.save_dir}/wandb  (run {name}, id {lg.version})")
        elif getattr(lg, "log_dir", None):
            lines.append(f"  {type(lg).__name__}: {lg.log_dir}")
    headline = {k: v for k, v in sorted(metrics.items()) if k.count("/") <= 1}  # per-class values stay in metrics.json
    if headline:
        lines.append("  metrics:     " + ", ".join(f"{k}={v:.4g}" for k, v in headline.items()))
    if weights.used_random_weights():
        lines.append("  NOTE: RANDOM pretrained-network weights were used (weights.allow_random=true); "
                     "numbers and images are not meaningful for quality.")
    print("\n".join(lines), flush=True)


def _user_error(exc: BaseException) -> GenkitError | None:
    """The user-facing error behind ``exc``: a :class:`GenkitError` or an ``OSError`` anywhere in its cause chain
    (Hydra wraps errors raised while instantiating a target in ``InstantiationException``), or a wrong config
    argument."""
    from hydra.errors import InstantiationException

    seen = exc
    while seen is not None:
        if isinstance(seen, GenkitError):
            return seen
        if isinstance(seen, OSError):  # disk full, permission denied...: the path and the reason
            return FileSystemError.from_os_error(seen)
        if isinstance(seen, TypeError) and isinstance(exc, InstantiationException) and "argument" in str(seen):
            target = str(exc).split("'", 2)[1] if "'" in str(exc) else "a config target"
            return ConfigError(f"{target}: {seen}")
        seen = seen.__cause__ or (seen.__context__ if not seen.__suppress_context__ else None)
    return None


def discard_unstarted_run(output_dir: Path) -> bool:
    """Remove the run folder Hydra made for a run that failed before it wrote a checkpoint or its metrics (a bad
    option, a missing file): it holds nothing but the config, so it would only hide the real runs. Returns whether
    it was removed."""
    import shutil

    if not output_dir.is_dir() or (output_dir / "metrics.json").exists() or next(output_dir.rglob("*.ckpt"), None):
        return False
    shutil.rmtree(output_dir, ignore_errors=True)
    return True


@contextlib.contextmanager
def single_job_argv(output_dir: str):
    """Make DDP child processes re-run *this* job, not the whole sweep.

    Lightning starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir`` set to the parent's run dir. In a
    ``--multirun`` that would re-launch the sweep (and write a second multirun folder); here the argv becomes this
    job's concrete overrides and the run dir the job's own output folder, so all ranks share one folder.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    saved = list(sys.argv)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        hc = HydraConfig.get()
        sys.argv = [sys.argv[0], *hc.overrides.task]
        with read_write(hc), open_dict(hc):
            hc.run.dir = output_dir
    try:
        yield
    finally:
        sys.argv = saved


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        with single_job_argv(str(cfg.paths.output_dir)):
            result = run(cfg)
    except Exception as exc:  # noqa: BLE001 - user errors get one line, everything else its traceback
        from genkit.training.callbacks.finite import NonFiniteError

        error = _user_error(exc)
        if error is None:
            raise
        label = "stopped" if isinstance(error, TrainingStopped) else "error"
        print(f"genkit-train: {label}: {error}", file=sys.stderr, flush=True)
        if not isinstance(error, (TrainingStopped, NonFiniteError)):
            discard_unstarted_run(Path(cfg.paths.output_dir))
        sys.exit(error.exit_code)
    metric = cfg.get("optimized_metric")
    if metric:
        if metric not in result["metrics"]:
            log.warning("optimized_metric %r was not logged (did validation run?); logged: %s",
                        metric, sorted(result["metrics"]))
            return None
        return result["metrics"][metric]
    return None


def main() -> None:
    # Lightning attaches console handlers to its loggers at import; imported here, before Hydra configures logging
    # (hydra/default.yaml: job_logging.loggers), those handlers are replaced and every line prints once.
    import lightning  # noqa: F401

    from genkit.core.console import silence_random_weights_warning

    silence_random_weights_warning()
    _hydra_main()


if __name__ == "__main__":
    main()
