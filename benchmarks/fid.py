"""FID between two folders: genkit vs torch-fidelity, both warm, same threads and loader workers, same images.

    python benchmarks/fid.py                         # N=1000 images per folder at 256 px (needs the Inception file)
    python benchmarks/fid.py --n 64 --allow-random   # quick, offline, RANDOM weights (speed only)
    python benchmarks/fid.py --protocols --n 16 --size 128 --batch-size 8 --threads 1
                                                     # every protocol against its own library (fid_protocols.py)

What it measures, in one process, on one set of synthetic-face folders (written to a temp folder):

1. bare forward: the Inception alone on images already decoded in memory (the ceiling);
2. genkit: both folders' statistics (decode with genkit.core, forward, float64 statistics), then the distance;
3. torch-fidelity: both folders' statistics (its dataset, DataLoader and forward; ``fid_input_id_to_statistics``),
   then its distance (``fid_statistics_to_metric``: ``eigvals`` of the 2048 x 2048 product);
4. genkit again, end to end through ``fid_between``: the statistics now come from the cache (no image is read);
5. peak RSS of a fresh process computing one folder's statistics, at N/2 and N images (memory must not grow).

Like for like: both feature extractors are built once, before any timing (the build is reported separately),
and warmed up; both run with the same torch threads (``--threads``) and the same number of DataLoader worker
processes (``--workers``: 0 by default; any other value means torch-fidelity's own choice, min(4, 2 x CPUs),
and genkit is given the same number). With 0 workers genkit still decodes one batch ahead in a thread (its
normal behaviour). Statistics (images -> mean and covariance) and the distance are timed separately, since
their costs scale differently: the distance does not depend on the image count for torch-fidelity, and grows
with it (up to rank 2048) for genkit. Runs 1-3 are interleaved and repeated (``--repeat``, best time counts),
since the machine may be shared. The headline is the end-to-end ratio (statistics + distance) at N=1000.
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
    ap.add_argument("--workers", type=int, default=0,
                    help="DataLoader worker processes for both tools: 0 (default), or any other value for "
                         "torch-fidelity's own count min(4, 2 x CPUs), which genkit then uses too")
    ap.add_argument("--skip-fidelity", action="store_true", help="do not run torch-fidelity")
    ap.add_argument("--skip-rss", action="store_true", help="do not measure peak RSS in child processes")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--protocols", action="store_true",
                    help="instead: each protocol (torch-fidelity, clean-fid, clean-fid-legacy-tf, pytorch-fid) "
                         "against its own library, statistics pass, random weights in the published layouts "
                         "(small: e.g. --n 16 --size 128 --batch-size 8)")
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
    from genkit.metrics.fid import fid_between, fid_from_stats, folder_stats
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
    if args.protocols:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from fid_protocols import run as run_protocols

        print("  statistics of both folders, warm, best of --repeat; genkit vs the protocol's own library:")
        results["protocols"] = run_protocols((a, b), work, args.batch_size, args.repeat)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        if tmp is not None:
            tmp.cleanup()
        return 0

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        extractor = build_inception(args.weights, args.allow_random, device=device)
    results["build_seconds"] = {"genkit": time.perf_counter() - t}
    weights_file = args.weights
    if weights_file is None:
        weights_file = extractor.protocol["weights_file"] or str(extractor.save_weights(work / "inception-random.pth"))
    results["weights"] = extractor.protocol["weights"]
    n_total = 2 * args.n
    tf_workers = min(4, 2 * (os.cpu_count() or 1))  # torch-fidelity's DataLoader workers unless save_cpu_ram
    workers = 0 if args.workers == 0 else tf_workers
    results["loader_workers"] = workers
    print(f"  DataLoader worker processes: {workers} for both"
          + (" (genkit decodes one batch ahead in a thread)" if workers == 0 else " (torch-fidelity's own count)"))

    fidelity = None
    if not args.skip_fidelity:
        from torch_fidelity.metric_fid import fid_input_id_to_statistics, fid_statistics_to_metric
        from torch_fidelity.utils import create_feature_extractor

        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fidelity = create_feature_extractor("inception-v3-compat", ["2048"], cuda=device.type == "cuda",
                                                feature_extractor_weights_path=weights_file, verbose=False)
        results["build_seconds"]["torch_fidelity"] = time.perf_counter() - t
        tf_kwargs = dict(input1=str(a), input2=str(b), cuda=device.type == "cuda", batch_size=args.batch_size,
                         save_cpu_ram=workers == 0, verbose=False, cache=False, fid=True)

    # 1-3, interleaved and repeated (best time counts: the machine may be shared)
    batches = []
    for folder in (a, b):
        files = folder_files(folder)
        for i in range(0, len(files), args.batch_size):
            batches.append(torch.stack([read_uint8(f) for f in files[i:i + args.batch_size]]))
    with torch.no_grad():  # warm-up with every batch shape, both extractors
        for shape in {tuple(x.shape) for x in batches}:
            dummy = torch.zeros(shape, dtype=torch.uint8, device=device)
            extractor(dummy)
            if fidelity is not None:
                fidelity(dummy)
    _sync(device)
    times: dict[str, list[float]] = {"bare_forward": [], "genkit_stats": [], "genkit_distance": [],
                                     "fidelity_stats": [], "fidelity_distance": []}
    cpu: dict[str, list[float]] = {"bare_forward": [], "genkit": [], "torch_fidelity": []}
    for rep in range(args.repeat):
        # 1. bare forward on decoded images (decode not timed)
        t, c = time.perf_counter(), _cpu_seconds()
        with torch.no_grad():
            for x in batches:
                extractor(x.to(device, non_blocking=True))
        _sync(device)
        times["bare_forward"].append(time.perf_counter() - t)
        cpu["bare_forward"].append(_cpu_seconds() - c)

        # 2. genkit: statistics of both folders (no cache), then the distance
        t, c = time.perf_counter(), _cpu_seconds()
        s1, _ = folder_stats(a, extractor, args.batch_size, workers, use_cache=False)
        s2, _ = folder_stats(b, extractor, args.batch_size, workers, use_cache=False)
        _sync(device)
        t_mid = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-N note
            genkit_fid = fid_from_stats(s1, s2)
        times["genkit_stats"].append(t_mid - t)
        times["genkit_distance"].append(time.perf_counter() - t_mid)
        cpu["genkit"].append(_cpu_seconds() - c)

        # 3. torch-fidelity: the same, with its dataset/DataLoader/forward and its distance
        if fidelity is not None:
            t, c = time.perf_counter(), _cpu_seconds()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                st1 = fid_input_id_to_statistics(1, fidelity, "2048", **tf_kwargs)
                st2 = fid_input_id_to_statistics(2, fidelity, "2048", **tf_kwargs)
                _sync(device)
                t_mid = time.perf_counter()
                tf_fid = fid_statistics_to_metric(st1, st2, False)["frechet_inception_distance"]
            times["fidelity_stats"].append(t_mid - t)
            times["fidelity_distance"].append(time.perf_counter() - t_mid)
            cpu["torch_fidelity"].append(_cpu_seconds() - c)
    del batches
    results["cpu_seconds"] = cpu
    results["all_seconds"] = times
    best = {k: min(v) for k, v in times.items() if v}
    bare_s = best["bare_forward"]
    results["bare_forward"] = {"seconds": bare_s, "images_per_s": n_total / bare_s}
    g_total = best["genkit_stats"] + best["genkit_distance"]
    results["genkit"] = {"stats_seconds": best["genkit_stats"], "distance_seconds": best["genkit_distance"],
                         "seconds": g_total, "stats_images_per_s": n_total / best["genkit_stats"], "fid": genkit_fid}
    if fidelity is not None:
        f_total = best["fidelity_stats"] + best["fidelity_distance"]
        results["torch_fidelity"] = {
            "stats_seconds": best["fidelity_stats"], "distance_seconds": best["fidelity_distance"],
            "seconds": f_total, "stats_images_per_s": n_total / best["fidelity_stats"], "fid": tf_fid,
            "relative_difference": abs(genkit_fid - tf_fid) / max(abs(tf_fid), 1e-12)}
        results["speed_ratio"] = {"end_to_end": f_total / g_total,
                                  "statistics": best["fidelity_stats"] / best["genkit_stats"],
                                  "distance": best["fidelity_distance"] / max(best["genkit_distance"], 1e-9)}

    # 4. genkit end to end with cached statistics (the first call fills the cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fid_between(a, b, extractor=extractor, batch_size=args.batch_size, num_workers=workers)
        t = time.perf_counter()
        warm = fid_between(a, b, extractor=extractor, batch_size=args.batch_size, num_workers=workers)
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
    g = results["genkit"]
    random = results["weights"] == "RANDOM"
    print(f"  weights: {'RANDOM (speed only; FID values meaningless)' if random else results['weights']}")
    builds = ", ".join(f"{k} {v:.1f} s" for k, v in results["build_seconds"].items())
    print(f"  extractor build (once, not in the timings below): {builds}")
    print(f"  {'run (warm)':<36}{'stats s':>9}{'img/s':>9}{'dist. s':>9}{'total s':>9}  FID")
    print(f"  {'bare Inception forward (decoded)':<36}{bare_s:>9.2f}{n_total / bare_s:>9.2f}")
    print(f"  {'genkit':<36}{g['stats_seconds']:>9.2f}{g['stats_images_per_s']:>9.2f}{g['distance_seconds']:>9.2f}"
          f"{g['seconds']:>9.2f}  {g['fid']:.6g}")
    if "torch_fidelity" in results:
        r = results["torch_fidelity"]
        print(f"  {'torch-fidelity':<36}{r['stats_seconds']:>9.2f}{r['stats_images_per_s']:>9.2f}"
              f"{r['distance_seconds']:>9.2f}{r['seconds']:>9.2f}  {r['fid']:.6g} "
              f"(rel. diff {r['relative_difference']:.1e})")
        q = results["speed_ratio"]
        print(f"  genkit speed / torch-fidelity speed at N={args.n}: end to end {q['end_to_end']:.2f}x "
              f"(statistics {q['statistics']:.2f}x, distance {q['distance']:.1f}x)")
    print(f"  genkit statistics vs bare forward: {bare_s / g['stats_seconds']:.2f}x of the ceiling")
    c = results["genkit_cached"]
    print(f"  {'genkit fid_between, cached stats':<36}{'':>9}{'':>9}{'':>9}{c['seconds']:>9.2f}  {c['fid']:.6g}"
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
