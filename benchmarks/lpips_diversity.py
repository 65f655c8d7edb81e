"""LPIPS diversity: peak memory against the number of samples K (the pairs are streamed, not materialised).

    python benchmarks/lpips_diversity.py                      # K = 8, 16, 32, 64 at 256 px (LPIPS-alex, RANDOM trunk)
    python benchmarks/lpips_diversity.py --quick              # K = 8, 16, 32 at 128 px
    python benchmarks/lpips_diversity.py --all-pairs          # also the pre-streaming method (K=64 at 256 px: ~3 GiB)

Each measurement runs in a fresh process: it builds the LPIPS model and the K samples, then reports how much the
peak RSS rose above the RSS at the start of ``lpips_diversity`` (so the model and the samples themselves are not
counted; Linux resets the peak mark first), and the time. ``--all-pairs`` measures the method genkit used before
(index all K(K-1)/2 pairs into two tensors, then batch them through the model) for comparison. Random trunk
weights: the values are meaningless, the memory and time are not (the network is the same size).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _all_pairs_diversity(samples, model, batch_size: int) -> float:
    """The method before streaming (genkit <= bee7bd7): every pair gathered up front."""
    from genkit.metrics.lpips import lpips_distance

    pairs = list(itertools.combinations(range(samples.shape[0]), 2))
    import torch

    i = torch.tensor([p[0] for p in pairs])
    j = torch.tensor([p[1] for p in pairs])
    return float(lpips_distance(samples[i], samples[j], model, batch_size).double().mean())


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> int:
    """Reset the peak-RSS mark to the current RSS (Linux: /proc/self/clear_refs) and return the RSS in KiB.

    Building the model leaves a high mark (torchvision builds the whole AlexNet, classifier included, before
    lpips keeps the trunk); without a reset it would hide the call's own growth. Elsewhere: ru_maxrss.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak() -> int:
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(k: int, size: int, batch_size: int, method: str) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("GENKIT_BENCH_THREADS", "1")))
    from genkit.metrics.lpips import build_lpips, lpips_diversity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_lpips("alex", allow_random=True)
    samples = torch.rand(k, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():  # warm-up: allocator and kernels, so the growth below is the method's own
        model(samples[:2], samples[:2])
    before = _reset_peak()
    t = time.perf_counter()
    fn = lpips_diversity if method == "streamed" else _all_pairs_diversity
    value = fn(samples, model, batch_size)
    seconds = time.perf_counter() - t
    after = _peak()
    print(json.dumps({"growth_mib": (after - before) / 1024, "peak_mib": after / 1024, "seconds": seconds,
                      "value": value}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="8,16,32,64", help="numbers of samples K (default 8,16,32,64)")
    ap.add_argument("--size", type=int, default=256, help="image size in px (default 256)")
    ap.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass (default 32)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="K = 8, 16, 32 at 128 px")
    ap.add_argument("--all-pairs", action="store_true", help="also measure the pre-streaming method")
    ap.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        k, size, batch, method = args._child
        _child(int(k), int(size), int(batch), method)
        return 0
    if args.quick:
        args.ks, args.size = "8,16,32", 128
    ks = [int(k) for k in args.ks.split(",")]
    methods = ["streamed"] + (["all pairs"] if args.all_pairs else [])
    env = dict(os.environ, GENKIT_BENCH_THREADS=str(args.threads), GENKIT_OFFLINE="1")
    print(f"LPIPS diversity (alex, RANDOM trunk), {args.size}x{args.size} px, {args.batch_size} pairs per batch, "
          f"{args.threads} thread(s); peak-RSS growth during the call")
    print(f"  {'K':>4} {'pairs':>6}  {'method':<10} {'growth MiB':>11} {'seconds':>9}  "
          f"{'(pairs gathered up front would need)':>36}")
    for k in ks:
        pairs = k * (k - 1) // 2
        gathered = 2 * pairs * 3 * args.size * args.size * 4 / 2 ** 20
        for method in methods:
            out = subprocess.run([sys.executable, __file__, "--_child", str(k), str(args.size), str(args.batch_size),
                                  "all" if method == "all pairs" else method], capture_output=True, text=True,
                                 env=env, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {k:>4} {pairs:>6}  {method:<10} {r['growth_mib']:>11.1f} {r['seconds']:>9.1f}  "
                  f"{gathered:>32.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
