"""Hydra callback that summarises a multirun: one row per job with its overrides and final metrics.

Written to ``<sweep dir>/sweep_summary.csv`` and ``sweep_summary.json`` when the sweep ends, from each job's
``metrics.json`` (see :func:`genkit.training.entry.run`). Jobs that failed appear with ``status: failed``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def collect_sweep(sweep_dir: str | Path) -> list[dict]:
    rows = []
    for job_dir in sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = []
        if overrides_file.exists():
            import yaml

            overrides = yaml.safe_load(overrides_file.read_text()) or []
        metrics_file = job_dir / "metrics.json"
        row: dict[str, Any] = {"job": int(job_dir.name), "dir": str(job_dir), "overrides": overrides}
        if metrics_file.exists():
            data = json.loads(metrics_file.read_text())
            row.update(status="ok", step=data.get("step"), **data.get("metrics", {}))
        else:
            row["status"] = "failed"
        rows.append(row)
    # the swept parameters: overrides whose value differs between jobs (the rest is shared by all)
    values: dict[str, set] = {}
    for r in rows:
        for o in r["overrides"]:
            key, _, value = o.partition("=")
            values.setdefault(key, set()).add(value)
    for r in rows:
        r["swept"] = " ".join(o for o in r["overrides"] if len(values[o.partition("=")[0]]) > 1)
        r["overrides"] = " ".join(r["overrides"])
    return rows


def write_summary(sweep_dir: str | Path) -> Path:
    from genkit.core.files import atomic_write_json, atomic_write_text

    sweep_dir = Path(sweep_dir)
    rows = collect_sweep(sweep_dir)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "sweep_summary.csv", buf.getvalue())
    atomic_write_json(sweep_dir / "sweep_summary.json", rows)
    return sweep_dir / "sweep_summary.csv"


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        path = write_summary(config.hydra.sweep.dir)
        print(f"sweep summary: {path}", flush=True)
