"""Benchmark of the reshuffle style transfer: per-stage times, relu4_1 matching, the optimisation path's time
per iteration, and peak memory.

    .venv/bin/python benchmarks/stylize.py                       # 512 px, 2 threads, CPU, + a 1024 px memory run
    .venv/bin/python benchmarks/stylize.py --device cuda --repeats 5
    .venv/bin/python benchmarks/stylize.py --size 256 --memory-size 0 --repeats 1   # quick

VGG-19 and the decoders run with RANDOM weights (no download possible here; decoders untrained, full width):
the arithmetic is the same as with real weights, so the timings are representative; the images are not.
Peak memory is measured in a fresh child process (``ru_maxrss`` on CPU, ``max_memory_allocated`` on CUDA).

OpenMP threads: unless ``OMP_WAIT_POLICY`` is already set, this script sets it to ``PASSIVE`` before torch is
imported. With the default (spinning) policy and cores shared with other processes, the matching stage (many
medium-sized ops) ran up to 5x slower with 2 threads than with 1; passive waiting removes that.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see the docstring)

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings


def build(args):
    import torch

    from genkit.data.samples import sample_photo
    from genkit.models.reshuffle import ReshuffleDecoders, Stylizer
    from genkit.nn.init import variance_preserving_init
    from genkit.nn.vgg import VGG19Encoder

    levels = args.levels.split(",")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = VGG19Encoder(taps=levels, weights="random")
    decoders = variance_preserving_init(ReshuffleDecoders(levels, width=1.0))
    its = [int(v) for v in args.iterations.split(",")] if args.iterations else None
    st = Stylizer(decoder=decoders, encoder=encoder, size=args.size, device=args.device, levels=levels, iterations=its)
    content, style = sample_photo(args.content), sample_photo(args.style)
    return torch, st, encoder, content, style


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_decoder_path(args) -> dict:
    torch, st, encoder, content, style = build(args)
    runs = []
    st(content, style)  # warm-up (allocator, kernels, lazy library loads)
    for _ in range(args.repeats):
        sync(torch, args.device)
        t0 = time.perf_counter()
        res = st(content, style)
        sync(torch, args.device)
        wall = time.perf_counter() - t0
        runs.append({"wall": wall, **res.timings})
    keys = runs[0].keys()
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    return {"median": med, "runs": [r["wall"] for r in runs], "levels": res.summary(),
            "image": list(res.image.shape)}


def bench_matching(args) -> dict:
    """relu4_1 matching alone: one global top-k + greedy + fill solve, and the level's full iterations."""
    import torch

    from genkit.models.reshuffle.api import fit_size, to_tensor
    from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
    from genkit.models.reshuffle.level import reshuffle_level

    torch_, st, encoder, content, style = build(args)
    with torch.no_grad():
        fc = encoder.encode(fit_size(to_tensor(content), args.size, 8).to(args.device), "relu4_1")[0]
        fs = encoder.encode(fit_size(to_tensor(style), args.size, 8).to(args.device), "relu4_1")[0]
    out = {"positions": [fc.shape[1] * fc.shape[2], fs.shape[1] * fs.shape[2]]}
    for name, iters in (("one_global_solve", 1), ("level_5_iterations", 5)):
        level = LevelConfig.default("relu4_1", iterations=iters)
        cfg = ReshuffleConfig(levels=[level])
        times, res = [], None
        reshuffle_level(fc, fs, level, cfg)  # warm-up
        for _ in range(args.repeats):
            sync(torch, args.device)
            t0 = time.perf_counter()
            res = reshuffle_level(fc, fs, level, cfg)
            sync(torch, args.device)
            times.append(time.perf_counter() - t0)
        out[name] = {"median_s": statistics.median(times), "match_s": res.stats.seconds["match"],
                     "vote_s": res.stats.seconds["vote"], "distinct_used": res.stats.distinct_used,
                     "max_usage": res.stats.max_usage, "limit": res.stats.usage_limit, "n_filled": res.stats.n_filled}
    free_level = LevelConfig.default("relu4_1", iterations=1)
    free = reshuffle_level(fc, fs, free_level, ReshuffleConfig(levels=[free_level], max_usage=None))
    out["unconstrained_distinct_used"] = free.stats.distinct_used
    out["unconstrained_max_usage"] = free.stats.max_usage
    return out


def bench_optimisation(args) -> dict:
    """Seconds per optimiser iteration (VGG forward + backward to relu4_1, three feature targets)."""
    import torch

    from genkit.models.reshuffle.api import fit_size, to_tensor
    from genkit.models.reshuffle.optimize import OptimizationReconstructor, OptimizeSettings, gram

    torch_, st, encoder, content, style = build(args)
    x = fit_size(to_tensor(content), args.size, 8).to(args.device)
    with torch.no_grad():
        targets = {k: v.clone() for k, v in encoder(fit_size(to_tensor(style), args.size, 8).to(args.device)).items()}
    out = {}
    for opt in ("adam", "lbfgs"):
        for gw in (0.0, 1.0):
            grams = {k: gram(v) for k, v in targets.items()} if gw else None
            rec = OptimizationReconstructor(encoder, OptimizeSettings(steps=args.opt_iters, optimizer=opt, gram_weight=gw),
                                            grams)
            rec("relu2_1", None, x, targets)
            h = rec.history[-1]
            out[f"{opt}{'+gram' if gw else ''}"] = {"s_per_iter": h["seconds_per_iteration"], "iterations": h["iterations"]}
    return out


def child_memory(args) -> dict:
    import torch

    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    res = bench_decoder_path(argparse.Namespace(**{**vars(args), "repeats": 1}))
    out = {"size": args.size, "total_s": res["median"]["total"], "peak_rss_mb":
           resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="long side in px")
    p.add_argument("--memory-size", type=int, default=1024, help="long side of the peak-memory run (0: skip)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--levels", default="relu4_1,relu3_1,relu2_1")
    p.add_argument("--iterations", default=None, help="iterations per level, e.g. 5,3,2 (default: the library's)")
    p.add_argument("--content", default="astronaut")
    p.add_argument("--style", default="gravel")
    p.add_argument("--opt-iters", type=int, default=4, help="optimiser iterations timed")
    p.add_argument("--skip", default="", help="comma list of parts to skip: decoder,matching,optimize")
    p.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.child_memory:
        print(json.dumps(child_memory(args)))
        return 0
    skip = set(filter(None, args.skip.split(",")))
    print(f"# reshuffle benchmark: {args.size} px long side, levels {args.levels} (iterations "
          f"{args.iterations or 'default 5,3,2'}), device {args.device}, "
          f"{args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}")
    print("# RANDOM VGG-19 and RANDOM full-width decoders (timing only; images not meaningful)")
    report = {"settings": vars(args)}
    if "decoder" not in skip:
        r = bench_decoder_path(args)
        report["decoder_path"] = r
        m = r["median"]
        print(f"\n## decoder path, median of {args.repeats} (image {r['image']})")
        print(f"total                 {m['total']:7.3f} s   (runs: {', '.join(f'{v:.2f}' for v in r['runs'])})")
        print(f"style encode          {m['style_encode']:7.3f} s")
        for tap in args.levels.split(","):
            parts = "  ".join(f"{k} {m[f'{tap}/{k}']:.3f}" for k in ("encode", "match", "vote", "reconstruct"))
            lv = r["levels"][tap]
            print(f"{tap:<10} {parts}   [used {lv['distinct_used']}/{lv['style_hw'][0] * lv['style_hw'][1]}, "
                  f"max usage {lv['max_usage']} <= {lv['usage_limit']}, filled {lv['n_filled']}]")
    if "matching" not in skip:
        r = bench_matching(args)
        report["matching"] = r
        print(f"\n## relu4_1 matching ({r['positions'][0]} x {r['positions'][1]} positions), median of {args.repeats}")
        for k in ("one_global_solve", "level_5_iterations"):
            v = r[k]
            print(f"{k:<20} {v['median_s']:7.3f} s  (match {v['match_s']:.3f}, vote {v['vote_s']:.3f}; used "
                  f"{v['distinct_used']}, max usage {v['max_usage']} <= {v['limit']}, filled {v['n_filled']})")
        print(f"unconstrained (style-swap): used {r['unconstrained_distinct_used']} style patches, "
              f"max usage {r['unconstrained_max_usage']}")
    if "optimize" not in skip:
        r = bench_optimisation(args)
        report["optimization"] = r
        print(f"\n## optimisation path at {args.size} px (VGG forward+backward to relu4_1, targets relu4_1/3_1/2_1)")
        for k, v in r.items():
            print(f"{k:<12} {v['s_per_iter']:7.3f} s / iteration ({v['iterations']} iterations timed)")
    if args.memory_size:
        cmd = [sys.executable, os.path.abspath(__file__), "--child-memory", "--size", str(args.memory_size),
               "--device", args.device, "--threads", str(args.threads), "--levels", args.levels,
               *(["--iterations", args.iterations] if args.iterations else []),
               "--content", args.content, "--style", args.style]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        report["memory"] = r
        cuda = f", CUDA peak {r['cuda_peak_mb']:.0f} MB" if "cuda_peak_mb" in r else ""
        print(f"\n## peak memory at {r['size']} px (fresh process, decoder path, one image incl. warm-up)")
        print(f"peak RSS {r['peak_rss_mb']:.0f} MB{cuda}; total {r['total_s']:.2f} s")
    if os.environ.get("GENKIT_BENCH_JSON"):
        with open(os.environ["GENKIT_BENCH_JSON"], "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
