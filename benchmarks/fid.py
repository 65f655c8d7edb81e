"""FID between two folders: genkit vs the bare Inception forward pass vs torch-fidelity, same images, same run.

    python benchmarks/fid.py                         # N=1000 images per folder at 256 px (needs the Inception file)
    python benchmarks/fid.py --n 64 --allow-random   # quick, offline, RANDOM weights (speed only)

What it measures, in one process, on one set of synthetic-face folders (written to a temp folder):

1. bare forward: the Inception alone on images already decoded in memory (the ceiling);
2. genkit ``fid_between`` end to end (decode with genkit.io, forward, float64 running sums, FID), no cached stats;
3. torch-fidelity ``calculate_metrics(fid=True)`` on the same folders with the same weights file;
4. genkit again: the statistics now come from the cache (no image is read), with its time;
5. peak RSS of a fresh process computing one folder's statistics, at N/2 and N images (memory must not grow).

Runs 1-3 are interleaved and repeated (``--repeat``, best time counts), since the machine may be shared.
Targets: genkit >= 0.9x the bare forward's images/s, and not slower than torch-fidelity.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _write_folder(folder: Path, n: int, size: int, seed: int) -> Path:
    from PIL import Image

    from genkit.data.synthetic import synthetic_faces

    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, _) in enumerate(synthetic_faces(n, size, seed)):
        Image.fromarray(img).save(folder / f"face_{i:05d}.png")
    return folder


def _rss_child(folder: str, weights: str, batch_size: int, device: str) -> None:
    """Compute one folder's FID statistics in this fresh process and print its peak RSS (MiB)."""
    import torch

    from genkit.metrics.fid import folder_stats
    from genkit.metrics.inception import build_inception, resolve_device

    if os.environ.get("GENKIT_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["GENKIT_BENCH_THREADS"]))
    ext = build_inception(weights_path=weights, device=resolve_device(device))
    stats, rec = folder_stats(folder, ext, batch_size=batch_size, use_cache=False)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"num_samples": rec["num_samples"], "peak_rss_mib": peak_kib / 1024}))


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (DataLoader workers), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="images per folder (default 1000)")
    ap.add_argument("--size", type=int, default=256, help="image size in px (default 256)")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--weights", help="Inception weights file (default: genkit's registry)")
    ap.add_argument("--allow-random", action="store_true", help="RANDOM Inception weights if the file is missing")
    ap.add_argument("--workdir", help="keep images and cache here instead of a temp folder")
    ap.add_argument("--repeat", type=int, default=2, help="repetitions of runs 1-3, best time counts (default 2)")
    ap.add_argument("--skip-fidelity", action="store_true", help="do not run torch-fidelity")
    ap.add_argument("--skip-rss", action="store_true", help="do not measure peak RSS in child processes")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--_rss-child", nargs=4, metavar=("FOLDER", "WEIGHTS", "BATCH", "DEVICE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._rss_child:
        folder, weights, batch, device = args._rss_child
        _rss_child(folder, weights, int(batch), device)
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["GENKIT_BENCH_THREADS"] = str(args.threads)
    from genkit.metrics.fid import fid_between
    from genkit.metrics.folders import folder_files, read_uint8
    from genkit.metrics.inception import build_inception, resolve_device

    device = resolve_device(args.device)
    tmp = tempfile.TemporaryDirectory(prefix="genkit-bench-fid-") if not args.workdir else None
    work = Path(args.workdir or tmp.name)
    os.environ["GENKIT_CACHE_DIR"] = str(work / "cache")  # a cold statistics cache for this run
    shutil.rmtree(work / "cache", ignore_errors=True)
    results: dict = {"n_per_folder": args.n, "size": args.size, "batch_size": args.batch_size, "device": str(device),
                     "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    print(f"FID benchmark: 2 x {args.n} images at {args.size}px, batch {args.batch_size}, device {device}, "
          f"{torch.get_num_threads()} torch threads")

    t = time.perf_counter()
    a = work / "a" / "images"
    b = work / "b" / "images"
    if not (a.is_dir() and len(list(a.iterdir())) == args.n):
        _write_folder(a, args.n, args.size, seed=1)
    if not (b.is_dir() and len(list(b.iterdir())) == args.n):
        _write_folder(b, args.n, args.size, seed=2)
    print(f"  synthetic folders ready in {time.perf_counter() - t:.1f} s ({work})")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        extractor = build_inception(args.weights, args.allow_random, device=device)
    weights_file = args.weights
    if weights_file is None:
        weights_file = extractor.protocol["weights_file"] or str(extractor.save_weights(work / "inception-random.pth"))
    results["weights"] = extractor.protocol["weights"]
    n_total = 2 * args.n

    # 1-3, interleaved and repeated (best time counts: the machine may be shared)
    batches = []
    for folder in (a, b):
        files = folder_files(folder)
        for i in range(0, len(files), args.batch_size):
            batches.append(torch.stack([read_uint8(f) for f in files[i:i + args.batch_size]]))
    with torch.no_grad():  # warm-up with every batch shape
        for shape in {tuple(x.shape) for x in batches}:
            extractor(torch.zeros(shape, dtype=torch.uint8, device=device))
    _sync(device)
    bare_times, genkit_times, tf_times = [], [], []
    cpu: dict[str, list[float]] = {"bare_forward": [], "genkit": [], "torch_fidelity": []}
    for rep in range(args.repeat):
        # 1. bare forward on decoded images (decode not timed)
        t, c = time.perf_counter(), _cpu_seconds()
        with torch.no_grad():
            for x in batches:
                extractor(x.to(device, non_blocking=True))
        _sync(device)
        bare_times.append(time.perf_counter() - t)
        cpu["bare_forward"].append(_cpu_seconds() - c)

        # 2. genkit end to end; the first repetition starts from a cold statistics cache and fills it
        t, c = time.perf_counter(), _cpu_seconds()
        cold = fid_between(a, b, extractor=extractor, batch_size=args.batch_size, use_cache=rep == 0)
        _sync(device)
        genkit_times.append(time.perf_counter() - t)
        cpu["genkit"].append(_cpu_seconds() - c)
        if rep == 0:
            first_cache_state = [cold["protocol"]["input1"]["stats_cache"], cold["protocol"]["input2"]["stats_cache"]]
            assert first_cache_state == ["miss", "miss"], first_cache_state  # computed, not read

        # 3. torch-fidelity on the same folders and weights file (its defaults: DataLoader workers, eigvals)
        if not args.skip_fidelity:
            import torch_fidelity

            t, c = time.perf_counter(), _cpu_seconds()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = torch_fidelity.calculate_metrics(
                    input1=str(a), input2=str(b), fid=True, feature_extractor_weights_path=weights_file,
                    batch_size=args.batch_size, cuda=device.type == "cuda", cache=False, verbose=False)
            _sync(device)
            tf_times.append(time.perf_counter() - t)
            cpu["torch_fidelity"].append(_cpu_seconds() - c)
            tf_fid = ref["frechet_inception_distance"]
    del batches
    results["cpu_seconds"] = cpu
    bare_s = min(bare_times)
    genkit_s = min(genkit_times)
    results["bare_forward"] = {"seconds": bare_s, "images_per_s": n_total / bare_s, "all_seconds": bare_times}
    results["genkit"] = {"seconds": genkit_s, "images_per_s": n_total / genkit_s, "fid": cold["fid"],
                         "all_seconds": genkit_times, "stats_cache_first_run": first_cache_state}
    if tf_times:
        tf_s = min(tf_times)
        results["torch_fidelity"] = {"seconds": tf_s, "images_per_s": n_total / tf_s, "fid": tf_fid,
                                     "all_seconds": tf_times,
                                     "relative_difference": abs(cold["fid"] - tf_fid) / max(abs(tf_fid), 1e-12)}

    # 4. genkit with cached statistics
    t = time.perf_counter()
    warm = fid_between(a, b, extractor=extractor, batch_size=args.batch_size)
    cached_s = time.perf_counter() - t
    hits = [warm["protocol"]["input1"]["stats_cache"], warm["protocol"]["input2"]["stats_cache"]]
    results["genkit_cached"] = {"seconds": cached_s, "stats_cache": hits, "fid": warm["fid"]}

    # 5. peak RSS of one folder's statistics at N/2 and N images, each in a fresh process
    if not args.skip_rss:
        half = work / "a_half" / "images"
        if not half.is_dir():
            half.mkdir(parents=True)
            for f in folder_files(a)[: max(2, args.n // 2)]:
                os.link(f, half / f.name)
        rss = []
        for folder in (half, a):
            out = subprocess.run([sys.executable, __file__, "--_rss-child", str(folder), weights_file,
                                  str(args.batch_size), str(device)], capture_output=True, text=True, check=True)
            rss.append(json.loads(out.stdout.strip().splitlines()[-1]))
        results["peak_rss"] = rss

    # report
    bare = results["bare_forward"]["images_per_s"]
    g = results["genkit"]
    random = results["weights"] == "RANDOM"
    print(f"  weights: {'RANDOM (speed only; FID values meaningless)' if random else results['weights']}")
    print(f"  {'run':<34}{'seconds':>10}{'img/s':>10}{'vs bare':>9}  FID")
    print(f"  {'bare Inception forward (decoded)':<34}{bare_s:>10.2f}{bare:>10.2f}{1.0:>9.2f}")
    print(f"  {'genkit fid_between (no cache)':<34}{g['seconds']:>10.2f}{g['images_per_s']:>10.2f}"
          f"{g['images_per_s'] / bare:>9.2f}  {g['fid']:.6g}")
    if "torch_fidelity" in results:
        r = results["torch_fidelity"]
        print(f"  {'torch-fidelity calculate_metrics':<34}{r['seconds']:>10.2f}{r['images_per_s']:>10.2f}"
              f"{r['images_per_s'] / bare:>9.2f}  {r['fid']:.6g} (rel. diff {r['relative_difference']:.1e})")
        print(f"  genkit / torch-fidelity speed: {g['images_per_s'] / r['images_per_s']:.2f}x")
    c = results["genkit_cached"]
    print(f"  {'genkit fid_between (cached stats)':<34}{c['seconds']:>10.2f}{'':>10}{'':>9}  {c['fid']:.6g}"
          f"  [stats cache: {', '.join(c['stats_cache'])}]")
    cpu_per_img = {k: min(v) / n_total for k, v in cpu.items() if v}
    print("  CPU seconds per image (best repetition; less sensitive to other load on the machine): " + ", ".join(
        f"{k} {v:.3f}" for k, v in cpu_per_img.items()))
    if "peak_rss" in results:
        print("  peak RSS, one folder's statistics in a fresh process: " + ", ".join(
            f"{r['num_samples']} images -> {r['peak_rss_mib']:.0f} MiB" for r in results["peak_rss"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
