"""Shared helpers for tests that run the real command-line entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None, check: bool = True):
    """Run ``genkit-train`` / ``genkit`` (from this venv) with offline W&B; returns the CompletedProcess."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "GENKIT_OFFLINE": "1",
                "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout[-4000:]}\n"
                             f"STDERR:\n{proc.stderr[-4000:]}")
    return proc
