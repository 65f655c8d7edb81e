"""Benchmark of the reshuffle style transfer: this tree side by side with a baseline commit, in one run.

    .venv/bin/python benchmarks/stylize.py                     # all parts (see --parts), baseline bee7bd7
    .venv/bin/python benchmarks/stylize.py --quick             # small sizes, one run each, a short decoder training
    .venv/bin/python benchmarks/stylize.py --parts decoder --sizes 512 --repeats 3
    .venv/bin/python benchmarks/stylize.py --baseline none     # this tree only
    .venv/bin/python benchmarks/stylize.py --device cuda

Parts:

* ``decoder``: the decoder path at each ``--sizes`` (astronaut content, gravel style), each code version with its
  own defaults (bee7bd7: 5/3/2 iterations, tap->image decoders; this tree: the release's 5 iterations per level
  with early stopping, level-to-level decoders). Every run is a fresh process (so its peak RSS is its own);
  baseline and current runs alternate, so a change of machine load hits both.
* ``optimize``: the optimisation path at ``--opt-size`` with each version's defaults: wall time and the final
  feature loss (both versions report it the same way: the sum over levels of the output's feature error against
  that level's blended target, each normalised by the target's mean square).
* ``gram``: the relative Gram-matrix error of the voted target against the style, per level, reshuffle vs
  style-swap (overlapping patches are averaged, so only 1x1 patches keep the Gram matrix exactly).
* ``profile``: the optimisation path at ``--profile-size`` on four pairs, each version's defaults: how far the
  output's channel means move from the content's towards the style's, and the health checks N1-N4
  (:mod:`genkit.metrics.health`).
* ``search``: one search iteration per level against exact global search (true cosine, usage limit applied), on
  the five benchmark pairs, with the mean and largest gap per level.
* ``stopping``: early stopping on the benchmark pairs: iterations, stop reasons, final similarity vs 5 iterations.
* ``stopping_decoder``: the same on the decoder path, where a finer level starts from the coarser result carried
  through the decoders: with random decoders that start is noise, with trained ones (``--decoders``) it is close
  to the level's fixed point, so how soon a level settles depends on them.
* ``cascade``: decoders of this tree trained for the same short budget on the sample photos, then eight pairs
  (grey textures and colourful style samples) stylised with the default (the release's profile: 3 levels, alpha
  0.6, no detail restoration), with 2 levels, and with genkit 0.3's decoder default (split alpha + restore_detail):
  per-channel mean/std against the content, content distance (relu4_1), Gram style distance, N1-N4 and the
  progress towards the style's colours. Writes a grid PNG and the decoders (``--cascade-decoders`` reuses them).
* ``large``: the decoder path of this tree alone at ``--large-size`` (one process): time and peak RSS.

VGG-19 runs with RANDOM weights, decoders with random (``decoder``) or briefly trained (``cascade``) weights: no
download is possible here. Timings are representative of the arithmetic; the images are not of real quality.
The baseline code is extracted with ``git archive <commit> genkit`` into a temporary folder and run with
``PYTHONPATH`` pointing there. Unless ``OMP_WAIT_POLICY`` is set, it is set to ``PASSIVE`` (spinning OpenMP
threads on shared cores made the matching up to 5x slower).
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
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEVELS = ["relu4_1", "relu3_1", "relu2_1"]


# ---------------------------------------------------------------------------------------------- child processes
# Children import only what both code versions share: Stylizer, ReshuffleDecoders, VGG19Encoder, sample_photo.
def _encoder(levels):
    from genkit.nn.vgg import VGG19Encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VGG19Encoder(taps=levels, weights="random")


def _prepared(name: str, size: int):
    """A sample photo as a (1, 3, H, W) tensor, long side ``size``, sides multiples of 8."""
    from genkit.data.samples import sample_photo
    from genkit.models.reshuffle.api import fit_size, to_tensor

    return fit_size(to_tensor(sample_photo(name)), size, 8)


def _cpu() -> float:
    """CPU seconds of this process (all threads, user + system): less sensitive to other load than wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def child_decoder(args) -> dict:
    import torch

    from genkit.data.samples import sample_photo
    from genkit.models.reshuffle import ReshuffleDecoders, Stylizer
    from genkit.nn.init import variance_preserving_init

    encoder = _encoder(LEVELS)
    decoders = _decoders(args.decoders, encoder) if args.decoders else variance_preserving_init(
        ReshuffleDecoders(LEVELS, width=1.0))
    if args.progress:
        _progress_to_stderr()
    st = Stylizer(decoder=decoders, encoder=encoder, size=args.size, device=args.device, **json.loads(args.options))
    content, style = sample_photo(args.content), sample_photo(args.style)
    for _ in range(args.warmup):
        st(content, style)
    walls, cpus, res = [], [], None
    for _ in range(args.runs):
        _sync(args.device)
        t0, c0 = time.perf_counter(), _cpu()
        res = st(content, style)
        _sync(args.device)
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    out = {"walls": walls, "cpu": cpus, "timings": res.timings, "levels": res.summary(),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def _decoders(path: str, encoder):
    """Trained decoders of this tree (``--decoders``; the baseline keeps its own random ones)."""
    from genkit.models.reshuffle.decoders import load_decoders

    return load_decoders(path, LEVELS, encoder=encoder)[0]


def _progress_to_stderr() -> None:
    """Print every level's end (seconds since start, peak RSS so far) to stderr: how far a long run got."""
    from genkit.models.reshuffle import pyramid

    start, inner = time.perf_counter(), pyramid.reshuffle_level

    def level(content, style, lv, *a, **kw):
        res = inner(content, style, lv, *a, **kw)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        print(f"[{time.perf_counter() - start:7.1f} s] {lv.tap} done ({tuple(content.shape)}, "
              f"{res.stats.iterations} iterations), peak RSS so far {rss:.2f} GB", file=sys.stderr, flush=True)
        return res

    pyramid.reshuffle_level = level


def child_optimize(args) -> dict:
    from genkit.data.samples import sample_photo
    from genkit.models.reshuffle import Stylizer

    st = Stylizer(optimize=True, encoder=_encoder(LEVELS), size=args.size, device=args.device)
    _sync(args.device)
    t0, c0 = time.perf_counter(), _cpu()
    res = st(sample_photo(args.content), sample_photo(args.style))
    _sync(args.device)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if args.save:
        res.save(args.save)
    return {"walls": [wall], "cpu": [cpu], "history": res.optimization, "final_loss": res.optimization[-1]["final_loss"],
            "levels": res.summary(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(part: str, pythonpath: Path, args, size: int, **extra) -> dict:
    content, style = extra.pop("content", args.content), extra.pop("style", args.style)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part, "--size", str(size), "--threads",
           str(args.threads), "--device", args.device, "--content", content, "--style", style]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{part} child ({pythonpath}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def extract_baseline(commit: str, into: Path) -> Path:
    """``git archive <commit> genkit`` unpacked into ``into``; returns the folder to put on PYTHONPATH."""
    import io
    import tarfile

    data = subprocess.run(["git", "-C", str(REPO), "archive", commit, "genkit"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


# ---------------------------------------------------------------------------------------------- parts
def part_decoder(args, versions: dict[str, Path], report: dict) -> None:
    for size in args.sizes:
        big = size > 512
        repeats = args.repeats
        runs = [(name, path, "{}") for name, path in versions.items()]
        if args.variant != "{}":  # this tree again, with Stylizer options (e.g. '{"warm_start": "local"}')
            runs.append((f"current + {args.variant}", REPO, args.variant))
        if args.decoders:
            runs = [(name + (" + trained decoders" if path == REPO else ""), path, o) for name, path, o in runs]
        results: dict[str, list[dict]] = {name: [] for name, _, _ in runs}
        for _ in range(repeats):
            for name, path, options in runs:  # alternate, one process each: load changes hit all
                extra = {} if options == "{}" else {"options": options}
                if args.decoders and path == REPO:
                    extra["decoders"] = args.decoders
                results[name].append(run_child("decoder", path, args, size, warmup=0 if big else 1, runs=1, **extra))
        print(f"\n## decoder path, {size} px ({args.content} x {args.style}), {args.threads} threads, "
              f"load avg {os.getloadavg()[0]:.2f}" + f" (median of {repeats} processes"
              + (", no warm-up run)" if big else ", each after a warm-up run)"))
        print(f"{'code':<34} {'iterations per level':<22} {'median s':>9} {'CPU s':>7} {'peak RSS MB':>12}  stages (s)")
        rows = {}
        for name, res in results.items():
            r = res[-1]
            walls = [w for x in res for w in x["walls"]]
            med = statistics.median(walls)
            cpu = statistics.median([c for x in res for c in x["cpu"]])
            its = ",".join(str(lv["iterations"]) for lv in r["levels"].values())
            stages = "  ".join(f"{tap} {sum(v for k, v in r['timings'].items() if k.startswith(tap + '/')):.2f}"
                               for tap in r["levels"])
            cuda = f" (CUDA {r['cuda_peak_mb']:.0f})" if "cuda_peak_mb" in r else ""
            rss = max(x["peak_rss_mb"] for x in res)
            print(f"{name:<34} {its:<22} {med:>9.2f} {cpu:>7.1f} {rss:>12.0f}{cuda}  style "
                  f"{r['timings']['style_encode']:.2f}  {stages}")
            rows[name] = {"median_s": med, "cpu_s": cpu, "walls": walls, "peak_rss_mb": rss, "iterations": its,
                          "levels": r["levels"], "timings": r["timings"]}
        if args.baseline != "none" and len(rows) >= 2:
            base, *others = rows.items()
            for name, c in others:
                b = base[1]
                print(f"ratio {name} / baseline: wall {c['median_s'] / b['median_s']:.2f}, "
                      f"CPU {c['cpu_s'] / b['cpu_s']:.2f}")
        report[f"decoder_{size}"] = rows


def part_optimize(args, versions: dict[str, Path], report: dict) -> None:
    out = Path(args.out)
    rows = {}
    for name, path in versions.items():
        tag = "baseline" if path != REPO else "current"
        rows[name] = run_child("optimize", path, args, args.opt_size, save=out / f"optimize_{tag}.png")
    print(f"\n## optimisation path, {args.opt_size} px ({args.content} x {args.style}), {args.threads} threads, "
          f"load avg {os.getloadavg()[0]:.2f}")
    print(f"{'code':<34} {'seconds':>9} {'CPU s':>7} {'final feature loss':>19}  stages (evaluations)")
    for name, r in rows.items():
        stages = ", ".join(f"{h.get('stage', h['tap'])} {h['iterations']}" for h in r["history"])
        print(f"{name:<34} {r['walls'][0]:>9.2f} {r['cpu'][0]:>7.1f} {r['final_loss']:>19.4f}  {stages}")
    if len(rows) == 2:
        (bn, b), (cn, c) = rows.items()
        print(f"speed-up baseline / current: wall {b['walls'][0] / c['walls'][0]:.2f}x, CPU {b['cpu'][0] / c['cpu'][0]:.2f}x; "
              f"final loss current / baseline: {c['final_loss'] / b['final_loss']:.2f}")
    report["optimize"] = rows


PROFILE_PAIRS = [("chelsea", "brush_strokes"), ("astronaut", "mosaic"), ("coffee", "gravel"),
                 ("grace_hopper", "immunohistochemistry")]


def _load_rgb(path_or_name, hw=None):
    """A saved PNG or a sample photo as a (3, H, W) tensor, resized (antialiased) to ``hw`` if given."""
    from PIL import Image
    from torch.nn import functional as F

    from genkit.core.tensors import pil_to_tensor
    from genkit.data.samples import sample_photo

    img = sample_photo(path_or_name) if isinstance(path_or_name, str) else Image.open(path_or_name)
    t = pil_to_tensor(img.convert("RGB"))
    if hw is not None and tuple(t.shape[-2:]) != tuple(hw):
        t = F.interpolate(t[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
    return t


def health_row(out, content_name: str, style_name: str) -> dict:
    """N1-N4 and the channel-mean progress of one output against its content (resized to it) and style."""
    from genkit.metrics.health import failed, health_checks, style_progress

    o = out if not isinstance(out, (str, Path)) else _load_rgb(Path(out))
    c, s = _load_rgb(content_name, o.shape[-2:]), _load_rgb(style_name)
    checks = health_checks(o, c, s)
    return {"progress": style_progress(o, c, s), "failed": failed(checks), "checks": checks}


def part_profile(args, versions: dict[str, Path], report: dict) -> None:
    """The optimisation path's default profile, each version's defaults, on the profile pairs: how far the
    output's channel means move from the content's towards the style's, and N1-N4."""
    out = Path(args.out)
    rows: dict = {}
    print(f"\n## optimisation path, default profile, {args.profile_size} px: channel means moved towards the style's "
          f"(0: the content's, 1: the style's) and N1-N4, load avg {os.getloadavg()[0]:.2f}")
    print(f"{'pair':<34} {'code':<34} {'progress':>9} {'failed':<12} {'seconds':>8}")
    for cname, sname in PROFILE_PAIRS:
        for name, path in versions.items():
            tag = "baseline" if path != REPO else "current"
            png = out / f"profile_{cname}__{sname}_{tag}.png"
            r = run_child("optimize", path, args, args.profile_size, save=png, content=cname, style=sname)
            row = health_row(png, cname, sname)
            row["seconds"] = r["walls"][0]
            rows.setdefault(f"{cname} x {sname}", {})[name] = row
            print(f"{cname + ' x ' + sname:<34} {name:<34} {row['progress']:>9.2f} {','.join(row['failed']) or '-':<12} "
                  f"{row['seconds']:>8.1f}")
    report["profile"] = rows


def part_stopping(args, report: dict) -> None:
    """Early stopping on the benchmark pairs, optimisation path: iterations run and the final similarity per level
    with the default tolerance against running all 5 iterations (tolerance 0). Its levels do not depend on the image
    (each blends the content's own features), so one evaluation of the image is enough here."""
    _stopping(args, report, "stopping", "optimisation path levels", {"optimize": {"steps": 1}})


def part_stopping_decoder(args, report: dict) -> None:
    """Early stopping on the decoder path: a finer level starts from the coarser result carried through the
    decoders, so how far it starts from its fixed point (and how soon it settles) depends on them: ``--decoders``
    (trained), else random ones."""
    import torch

    from genkit.models.reshuffle import ReshuffleDecoders
    from genkit.nn.init import variance_preserving_init

    encoder = _encoder(LEVELS)
    torch.manual_seed(0)
    decoders = _decoders(args.decoders, encoder) if args.decoders else variance_preserving_init(
        ReshuffleDecoders(LEVELS, width=1.0))
    which = f"decoders {args.decoders}" if args.decoders else "RANDOM decoders"
    _stopping(args, report, "stopping_decoder", f"decoder path, {which}", {"decoder": decoders}, encoder)


def _stopping(args, report: dict, key: str, what: str, options: dict, encoder=None) -> None:
    from genkit.data.samples import sample_photo
    from genkit.models.reshuffle import Stylizer

    encoder = encoder or _encoder(LEVELS)
    size = args.search_size
    print(f"\n## early stopping ({size} px, {what}): iterations and final true cosine per level, "
          "default tolerance vs all 5 iterations")
    print(f"{'pair':<34} {'level':<8} {'iterations':>10} {'stopped':<11} {'similarity':>10} {'all 5':>8} {'loss':>8} "
          f"{'seconds':>13}")
    rows, fired, total, worst = {}, 0, 0, 0.0
    for cname, sname in PROFILE_PAIRS + [(args.content, args.style)]:
        runs = {}
        for tol in (None, 0.0):
            st = Stylizer(encoder=encoder, size=size, **options, **({} if tol is None else {"tolerance": tol}))
            t0 = time.perf_counter()
            runs[tol] = (st(sample_photo(cname), sample_photo(sname)), time.perf_counter() - t0)
        (early, t_e), (full, t_f) = runs[None], runs[0.0]
        for a, b in zip(early.levels, full.levels):
            loss = b.mean_similarity - a.mean_similarity
            fired += a.converged
            total += 1
            worst = max(worst, loss)
            rows.setdefault(f"{cname} x {sname}", {})[a.tap] = {
                "iterations": a.iterations, "stop_reason": a.stop_reason, "similarity": a.mean_similarity,
                "similarity_all": b.mean_similarity, "loss": loss}
            print(f"{cname + ' x ' + sname:<34} {a.tap:<8} {a.iterations:>10} {a.stop_reason:<11} "
                  f"{a.mean_similarity:>10.4f} {b.mean_similarity:>8.4f} {loss:>8.4f} {t_e:>6.1f}/{t_f:<6.1f}")
    print(f"early stopping fired on {fired}/{total} levels; largest loss of final similarity {worst:.4f}")
    report[key] = {"pairs": rows, "fired": fired, "levels": total, "largest_loss": worst}


def part_large(args, report: dict) -> None:
    """The decoder path of this tree at ``--large-size``, one process, no warm-up: wall time and peak RSS (the
    child reports each level's end on stderr as it goes)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "decoder", "--size", str(args.large_size),
           "--threads", str(args.threads), "--device", args.device, "--content", args.content, "--style",
           args.style, "--warmup", "0", "--runs", "1", "--progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    print(f"\n## decoder path, {args.large_size} px, this tree ({args.content} x {args.style}), {args.threads} threads, "
          f"load avg {os.getloadavg()[0]:.2f}", flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"large child failed (exit {proc.returncode})")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    its = ",".join(str(lv["iterations"]) for lv in r["levels"].values())
    print(f"wall {r['walls'][0]:.1f} s, CPU {r['cpu'][0]:.1f} s, peak RSS {r['peak_rss_mb'] / 1024:.2f} GB, "
          f"iterations {its}")
    report[f"large_{args.large_size}"] = r


def part_gram(args, report: dict) -> None:
    """How far the voted target's Gram matrix is from the style's, per level: reshuffle vs style-swap."""
    import torch

    from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
    from genkit.models.reshuffle.level import reshuffle_level
    from genkit.models.reshuffle.voting import vote

    encoder = _encoder(LEVELS)
    size = args.sizes[0]
    with torch.no_grad():
        fc = encoder(_prepared(args.content, size), taps=LEVELS)
        fs = encoder(_prepared(args.style, size), taps=LEVELS)

    def gram(f):
        x = f.reshape(f.shape[0], -1).double()
        return x @ x.T / x.shape[1]

    print(f"\n## Gram error of the voted target vs the style ({size} px, {args.content} x {args.style}, "
          "content features of the content image, one level at a time, default settings)")
    print(f"{'level':<9} {'reshuffle':>10} {'style-swap':>11}   (relative Frobenius error ||G(voted)-G(style)|| / ||G(style)||)")
    rows = {}
    for tap in LEVELS:
        level = LevelConfig.default(tap)
        errs = {}
        for name, max_usage in (("reshuffle", "auto"), ("style-swap", None)):
            res = reshuffle_level(fc[tap][0], fs[tap][0], level, ReshuffleConfig(levels=[level], max_usage=max_usage))
            g_s = gram(fs[tap][0])
            voted = vote(fs[tap][0], res.assign, tuple(fc[tap].shape[-2:]), level.patch_size)
            errs[name] = float((gram(voted) - g_s).norm() / g_s.norm())
        rows[tap] = errs
        print(f"{tap:<9} {errs['reshuffle']:>10.1%} {errs['style-swap']:>11.1%}")
    report["gram"] = rows


def part_search(args, report: dict) -> None:
    """One search iteration against exact global search, per level (true cosine, the usage limit applied), on the
    benchmark pairs (the stopping part's five).

    Each level reshuffles the content image's own features. ``global``: every position's exact top-k over all style
    positions, leftovers placed by the dense fill; ``patchmatch``: one iteration of the PatchMatch search started
    from the coarser level's assignment (global there), upsampled, as a fine level above ``max_global_pairs``
    runs, with the default fill. Both lists go through the same greedy assignment and swap refinement, a heuristic:
    the reference is the best list, not the best assignment, so a gap can come out negative."""
    import torch

    from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
    from genkit.models.reshuffle.level import reshuffle_level
    from genkit.models.reshuffle.matching import upsample_assignment

    encoder = _encoder(LEVELS)
    size = args.search_size
    print(f"\n## one search iteration vs exact global search ({size} px, the content's own features, usage limit "
          "applied; true cosine on the full-dimensional features)")
    print(f"{'pair':<36} {'level':<9} {'global':>8} {'patchmatch':>11} {'gap':>8} {'fill share g/pm':>16} "
          f"{'seconds g/pm':>13}")
    rows = {}
    for cname, sname in PROFILE_PAIRS + [(args.content, args.style)]:
        with torch.no_grad():
            fc = encoder(_prepared(cname, size), taps=LEVELS)
            fs = encoder(_prepared(sname, size), taps=LEVELS)
        prev, pair = None, f"{cname} x {sname}"
        for tap in LEVELS:
            out = {}
            for mode in ("global", "local"):
                if mode == "local" and prev is None:
                    continue
                level = LevelConfig.default(tap, iterations=1, search=mode)
                # the reference: exact global top-k, leftovers by the dense fill (no random probes)
                cfg = ReshuffleConfig(levels=[level], **{**json.loads(args.search_options),
                                                         **({"fill_probes": 0} if mode == "global" else {})})
                init = None if mode == "global" else upsample_assignment(prev.assign, prev.stats.content_hw,
                                                                          prev.stats.style_hw, tuple(fc[tap].shape[2:]),
                                                                          tuple(fs[tap].shape[2:]))
                t0 = time.perf_counter()
                res = reshuffle_level(fc[tap][0], fs[tap][0], level, cfg, init_assign=init)
                out[mode] = {"similarity": res.stats.mean_similarity, "fill_share": res.stats.fill_share,
                             "seconds": time.perf_counter() - t0}
                if mode == "global":
                    glob = res
            prev = glob
            g, l = out["global"], out.get("local")
            if l is not None:
                out["gap"] = g["similarity"] - l["similarity"]
                print(f"{pair:<36} {tap:<9} {g['similarity']:>8.4f} {l['similarity']:>11.4f} {out['gap']:>8.4f} "
                      f"{g['fill_share']:>7.2f}/{l['fill_share']:.2f} {g['seconds']:>7.2f}/{l['seconds']:.2f}")
            rows.setdefault(pair, {})[tap] = out
    summary = {}
    for tap in LEVELS[1:]:
        gaps = [levels[tap]["gap"] for levels in rows.values()]
        summary[tap] = {"mean_gap": sum(gaps) / len(gaps), "largest_gap": max(gaps),
                        "within_0.003": sum(gap <= 0.003 for gap in gaps), "pairs": len(gaps)}
        print(f"{tap}: gap mean {summary[tap]['mean_gap']:+.4f}, largest {summary[tap]['largest_gap']:+.4f}, "
              f"within 0.003 on {summary[tap]['within_0.003']}/{len(gaps)} pairs")
    report["search"] = {"pairs": rows, "summary": summary}


def train_decoders(steps: int, image_size: int, width: float, lr: float, seed: int = 0):
    """This tree's level-to-level decoders trained on the sample photos with the experiment's loss."""
    import torch

    from genkit.data.samples import SamplePhotoDataset
    from genkit.models.reshuffle.module import ReshuffleDecoderModule

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ReshuffleDecoderModule(levels=LEVELS, width=width, vgg_weights="random",
                                       optimizer={"_target_": "torch.optim.Adam", "lr": lr})
    opt = model.configure_optimizers()
    data = torch.stack([d["image"] for d in SamplePhotoDataset(image_size)])
    g = torch.Generator().manual_seed(seed)
    losses = None
    for _ in range(steps):
        x = data[torch.randint(0, len(data), (4,), generator=g)]
        if torch.rand(1, generator=g) < 0.5:
            x = x.flip(-1)
        losses = model._losses(x)
        opt.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.decoders.parameters(), 1.0)
        opt.step()
    return model.eval(), {k: float(v.detach()) for k, v in losses.items()}


# name, levels, Stylizer options: the default (the release's profile), 2 levels, genkit 0.3's decoder default
VARIANTS = [("release 3", LEVELS, {}), ("release 2", LEVELS[1:], {}),
            ("0.3 default", LEVELS, {"alpha": "split", "restore_detail": True})]


def part_cascade(args, report: dict) -> None:
    import torch
    from torch.nn import functional as F

    from genkit.data.samples import sample_photo
    from genkit.core.saving import save_image
    from genkit.core.tensors import pil_to_tensor
    from genkit.metrics.style import content_distance, gram_style_distance
    from genkit.models.reshuffle import Stylizer
    from genkit.models.reshuffle.decoders import load_decoders, save_decoders
    from genkit.nn.vgg import STYLE_TAPS

    t0 = time.perf_counter()
    encoder = _encoder(LEVELS)
    if args.cascade_decoders:
        decoders, _ = load_decoders(args.cascade_decoders, encoder=encoder)
        losses, trained = {}, f"loaded from {args.cascade_decoders}"
    else:
        model, losses = train_decoders(args.train_steps, args.train_size, args.train_width, args.train_lr)
        decoders = model.decoders.requires_grad_(False)
        path = save_decoders(Path(args.out) / "cascade_decoders.pt", decoders, model.encoder)
        trained = (f"trained {args.train_steps} steps at {args.train_size} px (width {args.train_width}, lr "
                   f"{args.train_lr}; {time.perf_counter() - t0:.0f} s; saved to {path})")
    metric_encoder = _encoder(STYLE_TAPS)
    # grey textures (their contrast is a third to a half of the photos'), genkit's colourful style samples, the speed
    # benchmark's pair (astronaut x gravel) and the demo's (astronaut x mosaic)
    pairs = [("astronaut", "brick"), ("chelsea", "gravel"), ("coffee", "gravel"), ("astronaut", "brush_strokes"),
             ("chelsea", "mosaic"), ("grace_hopper", "immunohistochemistry"), ("astronaut", "gravel"),
             ("astronaut", "mosaic")]
    print(f"\n## 3 levels vs 2 levels, the same decoders {trained}, stylised at {args.cascade_size} px, "
          f"load avg {os.getloadavg()[0]:.2f}")
    if losses:
        print("final training losses: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()
                                                    if k.endswith(("/level", "/pixel")) or k == "loss"))
    print(f"{'pair':<34} {'variant':<14} {'mean / content (R,G,B)':<22} {'std / content (R,G,B)':<22} "
          f"{'content dist':>13} {'style dist':>11} {'progress':>9} failed")
    tiles, rows = [], {}
    for cname, sname in pairs:
        c_img, s_img = sample_photo(cname), sample_photo(sname)
        side = args.cascade_size
        row = [pil_to_tensor(c_img.resize((side, side))), pil_to_tensor(s_img.resize((side, side)))]
        c0, s0 = row[0], row[1]  # the style's own colour and contrast, for reading the ratios below
        style_mean_r, style_std_r = (s0.mean((1, 2)) / c0.mean((1, 2))).tolist(), (s0.std((1, 2)) / c0.std((1, 2))).tolist()
        print(f"{cname + ' x ' + sname:<34} {'style image':<14} {', '.join(f'{v:.2f}' for v in style_mean_r):<22} "
              f"{', '.join(f'{v:.2f}' for v in style_std_r):<22}")
        # the default (the release's profile), 2 levels, and genkit 0.3's decoder default (split alpha + restore)
        for name, levels, options in VARIANTS:
            res = Stylizer(decoder=decoders, encoder=encoder, size=side, levels=levels, **options)(c_img, s_img)
            x = res.image[None]
            c = F.interpolate(pil_to_tensor(c_img)[None], size=x.shape[-2:], mode="bilinear", antialias=True)
            s = pil_to_tensor(s_img)[None]
            with torch.no_grad():
                cd = float(content_distance(x, c, metric_encoder))
                sd = float(gram_style_distance(x, s, metric_encoder)[0])
            mean_r = (x.mean((0, 2, 3)) / c.mean((0, 2, 3))).tolist()
            std_r = (x.std((0, 2, 3)) / c.std((0, 2, 3))).tolist()
            health = health_row(res.image, cname, sname)
            key = f"{cname} x {sname}"
            rows.setdefault(key, {}).setdefault("style image", {"mean_ratio": style_mean_r, "std_ratio": style_std_r})
            rows[key][name] = {"mean_ratio": mean_r, "std_ratio": std_r, "content_dist": cd, "style_dist": sd,
                               "progress": health["progress"], "failed": health["failed"]}
            print(f"{key:<34} {name:<14} {', '.join(f'{v:.2f}' for v in mean_r):<22} "
                  f"{', '.join(f'{v:.2f}' for v in std_r):<22} {cd:>13.4f} {sd:>11.4f} {health['progress']:>9.2f} "
                  f"{','.join(health['failed']) or '-'}")
            row.append(F.interpolate(res.image[None], size=(side, side), mode="bilinear")[0])
        tiles += row
    for name, _, _ in VARIANTS:
        ok = sum(not r[name]["failed"] for r in rows.values())
        n13 = sum(not set(r[name]["failed"]) & {"N1", "N2", "N3"} for r in rows.values())
        print(f"{name}: N1-N4 hold for {ok}/{len(rows)} pairs, N1-N3 for {n13}/{len(rows)}; channel means moved "
              f"{min(r[name]['progress'] for r in rows.values()):.2f}-{max(r[name]['progress'] for r in rows.values()):.2f} "
              "of the way to the style's")
    from torchvision.utils import make_grid

    grid = Path(args.out) / "cascade_grid.png"
    caption = "content | style | " + " | ".join(name for name, _, _ in VARIANTS)
    save_image(make_grid(torch.stack(tiles).clamp(0, 1), nrow=2 + len(VARIANTS), padding=4, pad_value=1.0), grid,
               metadata={"rows": caption, "random_weights": True})
    print(f"grid: {grid} ({caption})")
    report["cascade"] = {"pairs": rows, "train_losses": losses}


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="decoder,optimize,profile,search,stopping,gram,cascade",
                   help="comma list of decoder, optimize, profile, search, stopping, stopping_decoder, gram, cascade")
    p.add_argument("--decoders", default=None,
                   help="decoder, stopping_decoder: this tree runs these trained decoders (a `genkit stylize --decoder` "
                        "file) instead of random ones; the baseline keeps its own random decoders")
    p.add_argument("--sizes", default="512,1024", help="long sides of the decoder-path runs")
    p.add_argument("--opt-size", type=int, default=256, help="long side of the optimisation-path run")
    p.add_argument("--repeats", type=int, default=3, help="processes per version and size (alternating versions)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--baseline", default="bee7bd7", help="commit to compare with ('none': this tree only)")
    p.add_argument("--content", default="astronaut")
    p.add_argument("--style", default="gravel")
    p.add_argument("--train-steps", type=int, default=150, help="cascade: decoder training steps")
    p.add_argument("--train-size", type=int, default=128)
    p.add_argument("--train-width", type=float, default=0.5)
    p.add_argument("--train-lr", type=float, default=1e-3)
    p.add_argument("--cascade-size", type=int, default=256)
    p.add_argument("--search-size", type=int, default=256, help="search: image size")
    p.add_argument("--profile-size", type=int, default=192, help="profile: image size")
    p.add_argument("--search-options", default="{}", help="search: ReshuffleConfig options as JSON (e.g. sweeps)")
    p.add_argument("--cascade-decoders", default=None, help="cascade: load these decoders instead of training")
    p.add_argument("--out", default="benchmark_out", help="folder for images and the JSON report")
    p.add_argument("--quick", action="store_true", help="256 px decoder path, 128 px optimisation, 30 training steps")
    p.add_argument("--variant", default="{}",
                   help="decoder: also run this tree with these Stylizer options, as JSON (e.g. '{\"warm_start\": \"local\"}')")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--save", default=None, help=argparse.SUPPRESS)
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--large-size", type=int, default=2048, help="large: image size (this tree only)")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.child:  # genkit comes from PYTHONPATH: this tree or the extracted baseline
        out = {"decoder": child_decoder, "optimize": child_optimize}[args.child](args)
        print(json.dumps(out, default=str))
        return 0
    sys.path.insert(0, str(REPO))  # the parts run in this process measure this tree, not an installed genkit
    if args.quick:
        args.sizes, args.opt_size, args.repeats = "256", 128, 1
        args.train_steps, args.train_size, args.cascade_size = 30, 64, 128
    args.sizes = [int(v) for v in str(args.sizes).split(",") if v]
    parts = set(filter(None, args.parts.split(",")))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"# reshuffle benchmark: {args.threads} threads, device {args.device}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("# RANDOM VGG-19 weights (timing and pipeline checks; images are not of real quality)")
    report: dict = {"settings": {k: v for k, v in vars(args).items() if k not in ("child",)}}
    with tempfile.TemporaryDirectory() as tmp:
        versions = {}
        if args.baseline != "none":
            versions[f"{args.baseline} (baseline defaults)"] = extract_baseline(args.baseline, Path(tmp))
        versions["current (release defaults)"] = REPO
        if "decoder" in parts:
            part_decoder(args, versions, report)
        if "optimize" in parts:
            part_optimize(args, versions, report)
        if "profile" in parts:
            part_profile(args, versions, report)
    if "large" in parts:
        part_large(args, report)
    if "gram" in parts:
        part_gram(args, report)
    if "search" in parts:
        part_search(args, report)
    if "stopping" in parts:
        part_stopping(args, report)
    if "stopping_decoder" in parts:
        part_stopping_decoder(args, report)
    if "cascade" in parts:
        part_cascade(args, report)
    with open(Path(args.out) / "stylize_benchmark.json", "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(f"\nreport: {Path(args.out) / 'stylize_benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
