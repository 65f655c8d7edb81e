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


# A 4x4 label-map pair with per-class IoU worked out by hand (tests of the IoU metrics; class 3 is in neither):
#   class 0: pred {(0,0),(0,1),(1,0),(1,1),(3,3)}, target {(0,0),(0,1),(1,0)}: I=3, U=5 -> 0.6
#   class 1: pred {(0,2),(0,3),(1,2),(1,3)}, target {(0,2),(0,3),(1,1),(1,2),(1,3),(2,2),(2,3)}: I=4, U=7
#   class 2: pred {(2,0..3),(3,0..2)} (7), target {(2,0),(2,1),(3,0..3)} (6): I=5, U=8
def iou_example():
    """(pred, target, per-class IoU of classes 0-2, pixel accuracy), each map (1, 4, 4)."""
    import torch

    pred = torch.tensor([[[0, 0, 1, 1],
                          [0, 0, 1, 1],
                          [2, 2, 2, 2],
                          [2, 2, 2, 0]]])
    target = torch.tensor([[[0, 0, 1, 1],
                            [0, 1, 1, 1],
                            [2, 2, 1, 1],
                            [2, 2, 2, 2]]])
    return pred, target, [3 / 5, 4 / 7, 5 / 8], 12 / 16
