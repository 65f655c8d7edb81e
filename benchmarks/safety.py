"""Bounded resources when a user hands genkit something hostile or huge (issue #22): peak RSS and time of fresh
``genkit`` processes.

    python benchmarks/safety.py                        # this checkout
    python benchmarks/safety.py --tree /path/to/other  # the same cases on another checkout (e.g. main, for "before")
    python benchmarks/safety.py --skip-bomb            # leave out the 1.5 GiB zip bomb (writing it takes a while)

Cases, each run as ``python -m genkit ...`` in a fresh process (peak RSS from ``wait4``, wall time):

1. the issue's zip bomb: a checkpoint whose one tensor is 1.5 GiB of zeros, re-zipped with DEFLATE (about 1.5 MB
   on disk), given to ``stylize --decoder``, ``parse --parser`` and ``eval fid --weights``;
2. ``parse --size 100000`` and ``stylize --size 100000``: refused, and how fast;
3. a 12000 x 12000 PNG photo stylised at ``--size 64`` (``--optimize --steps 2`` with random VGG weights: reading
   the photo dominates).

Exit codes and the last stderr line are printed, so a "before" run shows what went wrong there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def measure(tree: Path, args: list[str], cwd: Path, timeout: float = 600) -> tuple[int, float, float, str]:
    """``(exit code, peak RSS in MB, seconds, last stderr line)`` of ``python -m genkit ARGS`` run from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "GENKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline"}
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "genkit", *args], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = [ln for ln in err.read().replace("\r", "\n").splitlines() if ln.strip()]
    return proc.returncode, usage.ru_maxrss / 1024, elapsed, (lines[-1][:160] if lines else "")


def big_png(path: Path, side: int = 12000) -> Path:
    """A smooth side x side photo-like PNG (a few hundred KB: gradients compress well)."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgb = np.empty((side, side, 3), dtype=np.uint8)
    rgb[..., 0] = ramp[None, :]
    rgb[..., 1] = ramp[:, None]
    rgb[..., 2] = 128
    Image.fromarray(rgb).save(path, optimize=False, compress_level=9)
    return path


def make_files(work: Path, skip_bomb: bool) -> None:
    """Write the inputs (run in a child process: ``ru_maxrss`` carries over a fork, so the measuring process itself
    must stay small)."""
    from fixtures.bombs import zeros_checkpoint
    from fixtures.user_mistakes import photo

    photo(work / "photos" / "a.png", size=64)
    photo(work / "photos" / "b.png", size=64, seed=1)
    if not skip_bomb:
        t0 = time.perf_counter()
        bomb = zeros_checkpoint(work / "bomb.ckpt", int(1.5 * (1 << 30)))
        print(f"zip bomb: {bomb.stat().st_size / 1e6:.2f} MB on disk, 1.50 GiB inflated "
              f"(written in {time.perf_counter() - t0:.0f} s)", flush=True)
    big = big_png(work / "big.png")
    print(f"12000 x 12000 PNG: {big.stat().st_size / 1e3:.0f} KB on disk", flush=True)


def cases(work: Path, skip_bomb: bool) -> list[tuple[str, list[str]]]:
    p, bomb, big = work / "photos" / "a.png", work / "bomb.ckpt", work / "big.png"
    out = []
    if not skip_bomb:
        out += [("zip bomb: stylize --decoder", ["stylize", str(p), str(p), "-o", str(work / "o.png"),
                                                 "--decoder", str(bomb)]),
                ("zip bomb: parse --parser", ["parse", str(p), "--parser", str(bomb), "-o", str(work / "parsed")]),
                ("zip bomb: eval fid --weights", ["eval", "fid", str(p.parent), str(p.parent), "--weights", str(bomb),
                                                  "--no-cache"])]
    out += [("parse --size 100000", ["parse", str(p), "--parser", "bisenet-celebamask", "-o", str(work / "p2"),
                                     "--size", "100000"]),
            ("stylize --size 100000", ["stylize", str(p), str(p), "-o", str(work / "s.png"), "--optimize",
                                       "--allow-random", "--size", "100000"]),
            ("12000 px PNG: stylize --size 64", ["stylize", str(big), str(p), "-o", str(work / "big_out.png"),
                                                 "--optimize", "--steps", "2", "--allow-random", "--size", "64"])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default=str(REPO), help="the checkout whose genkit runs (default: this one)")
    ap.add_argument("--skip-bomb", action="store_true", help="leave out the 1.5 GiB zip bomb")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per case before it is killed")
    ap.add_argument("--make", metavar="DIR", help=argparse.SUPPRESS)  # internal: write the inputs into DIR
    args = ap.parse_args()
    if args.make:
        return make_files(Path(args.make), args.skip_bomb)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, __file__, "--make", str(work)] + ["--skip-bomb"] * args.skip_bomb, check=True)
        todo = cases(work, args.skip_bomb)
        print(f"genkit from {args.tree}")
        print(f"{'case':<36} {'exit':>4} {'peak RSS':>10} {'time':>8}  last stderr line")
        for name, argv in todo:
            code, peak, secs, last = measure(Path(args.tree), argv, work, args.timeout)
            print(f"{name:<36} {code:>4} {peak:>7.0f} MB {secs:>6.2f} s  {last}", flush=True)


if __name__ == "__main__":
    main()
