"""Hydra entry point: ``genkit-train experiment=NAME key=value ...`` (also ``python -m genkit.train``).

Composes ``genkit/conf/train.yaml``, instantiates the datamodule, model, callbacks, loggers and trainer from their
``_target_``s, fits, tests and prints where everything was written. ``ckpt_path=last`` resumes the newest run of
the same ``task_name`` (same step count, optimiser and scheduler states, and the same W&B run).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from genkit.errors import ConfigError, GenkitError

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
RUN_INFO = "run_info.json"
log = logging.getLogger("genkit.train")


def find_last_checkpoint(log_dir: str | Path, task_name: str) -> Path:
    runs = Path(log_dir) / task_name
    candidates = sorted(runs.glob("runs/*/checkpoints/last.ckpt")) + sorted(runs.glob("multiruns/*/*/checkpoints/last.ckpt"))
    if not candidates:
        raise ConfigError(f"ckpt_path=last: no last.ckpt under {runs}/runs/*/checkpoints (has task "
                          f"{task_name!r} been trained with this paths.log_dir?)")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def resolve_ckpt_path(cfg: DictConfig) -> Path | None:
    value = cfg.get("ckpt_path")
    if value in (None, "", "null"):
        return None
    if value == "last":
        return find_last_checkpoint(cfg.paths.log_dir, cfg.task_name)
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


def compose(overrides: list[str] | tuple[str, ...] = (), output_dir: str | Path | None = None) -> DictConfig:
    """Compose ``genkit/conf/train.yaml`` outside the command line (notebooks, the demo); pair with :func:`run`.

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


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); ``null`` entries are skipped."""
    out = []
    for _, conf in (group or {}).items():
        if conf is not None and "_target_" in conf:
            out.append(hydra.utils.instantiate(conf, _convert_="partial"))
    return out


def run(cfg: DictConfig) -> dict:
    """Fit (and test) one composed configuration; returns the final metrics."""
    import lightning as L

    from genkit import weights
    from genkit.callbacks.atomic_checkpoint import AtomicCheckpointIO
    from genkit.io import atomic_write_json

    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = resolve_ckpt_path(cfg)
    previous = _previous_run_info(ckpt_path)
    if previous.get("wandb_id") and cfg.get("logger") and cfg.logger.get("wandb"):
        with open_dict(cfg):
            cfg.logger.wandb.id = previous["wandb_id"]  # continue the same W&B run

    log.info("instantiating datamodule <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="partial")
    log.info("instantiating model <%s>", cfg.model._target_)
    model = hydra.utils.instantiate(cfg.model, _convert_="partial")
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      plugins=[AtomicCheckpointIO()], _convert_="partial")

    config = OmegaConf.to_container(cfg, resolve=True)
    for lg in trainer.loggers:
        lg.log_hyperparams(config)
    wandb_id = next((lg.version for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"), None)
    if trainer.is_global_zero:
        atomic_write_json(output_dir / RUN_INFO, {
            "task_name": cfg.task_name, "wandb_id": wandb_id, "resumed_from": str(ckpt_path) if ckpt_path else None,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "weights": weights.provenance(),
            "random_weights": weights.used_random_weights()})

    metrics: dict = {}
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        metrics.update(_scalar_metrics(trainer))
    if cfg.get("test", True) and hasattr(model, "test_step"):
        trainer.test(model, datamodule=datamodule)
        metrics.update(_scalar_metrics(trainer))

    _finish_wandb(trainer)
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", {"step": trainer.global_step, "epoch": trainer.current_epoch,
                                                        "metrics": metrics, "random_weights": weights.used_random_weights()})
        _print_summary(cfg, trainer, output_dir, metrics)
    return {"metrics": metrics, "output_dir": str(output_dir), "global_step": trainer.global_step}


def _scalar_metrics(trainer) -> dict[str, float]:
    import torch

    return {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}


def _finish_wandb(trainer) -> None:
    """Close this run's W&B run: Lightning leaves it open, and the next run in the same process (the demo, a
    notebook, a sweep) would otherwise log into it."""
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger" and getattr(lg, "_experiment", None) is not None:
            lg.experiment.finish()


def _print_summary(cfg, trainer, output_dir: Path, metrics: dict) -> None:
    from genkit import weights

    ckpt_cb = getattr(trainer, "checkpoint_callback", None)
    lines = [f"genkit-train: {cfg.task_name} finished at step {trainer.global_step} (epoch {trainer.current_epoch})",
             f"  outputs:     {output_dir}"]
    if ckpt_cb is not None and getattr(ckpt_cb, "dirpath", None) and Path(ckpt_cb.dirpath).exists():
        lines.append(f"  checkpoints: {ckpt_cb.dirpath}  (resume: ckpt_path=last or ckpt_path=<file>)")
    if (output_dir / "images").exists():
        lines.append(f"  images:      {output_dir / 'images'}")
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            lines.append(f"  wandb:       {lg.save_dir}/wandb  (run id {lg.version})")
        elif getattr(lg, "log_dir", None):
            lines.append(f"  {type(lg).__name__}: {lg.log_dir}")
    headline = {k: v for k, v in sorted(metrics.items()) if k.count("/") <= 1}  # per-class values stay in metrics.json
    if headline:
        lines.append("  metrics:     " + ", ".join(f"{k}={v:.4g}" for k, v in headline.items()))
    if weights.used_random_weights():
        lines.append("  NOTE: RANDOM pretrained-network weights were used (weights.allow_random=true); "
                     "numbers and images are not meaningful for quality.")
    print("\n".join(lines), flush=True)


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
    except GenkitError as exc:
        print(f"genkit-train: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    metric = cfg.get("optimized_metric")
    if metric:
        if metric not in result["metrics"]:
            log.warning("optimized_metric %r was not logged (did validation run?); logged: %s",
                        metric, sorted(result["metrics"]))
            return None
        return result["metrics"][metric]
    return None


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
