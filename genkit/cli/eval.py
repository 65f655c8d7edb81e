"""``genkit eval fid|kid|lpips|stats|cache``: metrics between image folders (and FID statistics files).

    genkit eval fid  DIR_OR_NPZ DIR_OR_NPZ   Fréchet Inception Distance (statistics of folders are cached)
    genkit eval kid  DIR DIR                 Kernel Inception Distance (mean and std over subsets)
    genkit eval lpips DIR DIR                mean LPIPS of images paired by file name
    genkit eval stats DIR -o ref.npz         reference statistics in pytorch-fid's .npz format
    genkit eval protocols DIR DIR            FID under torch-fidelity, clean-fid and pytorch-fid side by side
    genkit eval prdc REAL FAKE               precision, recall, density, coverage (k-NN, k=3)
    genkit eval cache list|clear [DIR...]    the statistics cache's entries; remove all or some
    genkit eval diversity DIR                LPIPS diversity of samples (NAME_0.png, NAME_1.png, ... per condition)
    genkit eval mask-consistency DIR MASKS --parser CKPT   parser mIoU of generated images against their masks

Results print as a table; ``--json`` prints JSON instead (``--json FILE`` writes it to FILE as well as the
table). The JSON records the protocol: weights sha256 or RANDOM, resize mode, sample count, image sizes.
"""

from __future__ import annotations

import json
import sys
import warnings

from genkit.cli.limits import non_empty_path
from genkit.cli.reading import add_reading_options, reading_policy


def _common(p, weights_help: str) -> None:
    from genkit.cli import add_device_option

    p.add_argument("--weights", metavar="PATH", help=weights_help)
    p.add_argument("--allow-random", action="store_true",
                   help="run with RANDOM weights when the pretrained file is missing (numbers are then meaningless; "
                        "the output says RANDOM)")
    p.add_argument("--batch-size", type=int, default=50, metavar="N", help="images per forward pass (default 50)")
    add_device_option(p)
    p.add_argument("--num-workers", type=int, default=None, metavar="N",
                   help="image-decoding worker processes (default: 0 on CPU, up to 8 on GPU)")
    p.add_argument("--skip-errors", action="store_true",
                   help="skip unreadable images (listed in the result and its protocol) instead of stopping")
    _json_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_reading_options(p)


def _json_options(p) -> None:
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the result as JSON (or, with FILE, also write it there)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (--json FILE, -o); without it one is refused")


_PROTOCOL_NAMES = ("torch-fidelity", "clean-fid", "clean-fid-legacy-tf", "clean-fid-legacy-pytorch", "pytorch-fid")


def _protocol_option(p) -> None:
    p.add_argument("--protocol", choices=_PROTOCOL_NAMES, default=None,
                   help="whose pipeline to reproduce: reading, resize, quantisation, Inception weights file and "
                        "matrix square root (default torch-fidelity; .npz inputs: the protocol they record)")


def register(sub) -> None:
    p = sub.add_parser("eval", help="metrics between image folders: FID, KID, LPIPS; FID reference statistics")
    esub = p.add_subparsers(dest="eval_command", metavar="METRIC", required=True)
    inc_help = inc_help_text()

    f = esub.add_parser("fid", help="Fréchet Inception Distance between two folders or .npz statistics files")
    f.add_argument("input1", metavar="DIR_OR_NPZ", help="first image folder or .npz statistics")
    f.add_argument("input2", metavar="DIR_OR_NPZ", help="second image folder or .npz statistics")
    _common(f, inc_help)
    f.add_argument("--no-cache", action="store_true", help="do not read or write the statistics cache")
    _protocol_option(f)
    f.set_defaults(handler=_fid)

    k = esub.add_parser("kid", help="Kernel Inception Distance between two folders")
    k.add_argument("input1", metavar="DIR", help="first image folder")
    k.add_argument("input2", metavar="DIR", help="second image folder")
    _common(k, inc_help)
    k.add_argument("--kid-subsets", type=int, default=100, metavar="N", help="number of subsets (default 100)")
    k.add_argument("--kid-subset-size", type=int, default=1000, metavar="N", help="images per subset (default 1000)")
    k.add_argument("--seed", type=int, default=2020, help="subset sampling seed (default 2020, as torch-fidelity)")
    _protocol_option(k)
    k.set_defaults(handler=_kid)

    lp = esub.add_parser("lpips", help="mean LPIPS between images of two folders paired by file name")
    lp.add_argument("input1", metavar="DIR", help="first image folder")
    lp.add_argument("input2", metavar="DIR", help="second image folder (same file names and sizes)")
    _common(lp, "LPIPS trunk weights file (torchvision AlexNet / VGG-16 state dict); default: genkit's registry")
    lp.add_argument("--net", choices=("alex", "vgg"), default="alex", help="LPIPS trunk (default alex)")
    lp.set_defaults(handler=_lpips)

    s = esub.add_parser("stats", help="FID reference statistics of a folder, as a pytorch-fid .npz")
    s.add_argument("input", metavar="DIR", help="image folder")
    s.add_argument("-o", "--output", type=non_empty_path, required=True, metavar="FILE.npz",
                   help="statistics file to write")
    _common(s, inc_help)
    s.add_argument("--no-cache", action="store_true", help="do not read or write the statistics cache")
    _protocol_option(s)
    s.set_defaults(handler=_stats)
    register_protocol_commands(esub)
    c = esub.add_parser("cache", help="the FID statistics cache: list its entries, or clear them")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cl = csub.add_parser("list", help="entries (folder, samples, size, last use), least recently used first")
    cl.add_argument("--json", action="store_true", help="print JSON instead of the table")
    cl.set_defaults(handler=_cache_list)
    cc = csub.add_parser("clear", help="remove every entry, or only those of the folders given")
    cc.add_argument("folders", nargs="*", metavar="DIR", help="folders whose entries to remove (default: all)")
    cc.set_defaults(handler=_cache_clear)
    register_portrait_metrics(esub)


def register_protocol_commands(esub) -> None:
    """``protocols`` (FID under every protocol) and ``prdc`` (precision/recall/density/coverage)."""
    pr = esub.add_parser("protocols", help="FID of two folders under torch-fidelity, clean-fid and pytorch-fid, "
                                           "side by side, with what differs between the protocols")
    pr.add_argument("input1", metavar="DIR_OR_NPZ", help="first image folder")
    pr.add_argument("input2", metavar="DIR_OR_NPZ", help="second image folder")
    _common(pr, "not accepted: every protocol reads its own weights file from the registry")
    pr.add_argument("--no-cache", action="store_true", help="do not read or write the statistics cache")
    pr.add_argument("--all", action="store_true", help="also clean-fid's legacy_tensorflow and legacy_pytorch modes")
    pr.set_defaults(handler=_protocols)

    m = esub.add_parser("prdc", help="precision and recall (k-NN, Kynkaanniemi 2019) and density and coverage "
                                     "(Naeem 2020) of generated images against real ones")
    m.add_argument("input1", metavar="REAL_DIR", help="real (reference) images")
    m.add_argument("input2", metavar="FAKE_DIR", help="generated images")
    _common(m, inc_help_text())
    m.add_argument("--k", type=int, default=3, help="nearest neighbours (default 3, as both papers)")
    m.add_argument("--no-cache", action="store_true", help="do not read or write the statistics cache")
    _protocol_option(m)
    m.set_defaults(handler=_prdc)


def inc_help_text() -> str:
    return ("Inception weights file of the protocol (default: the registry's file for it; torch-fidelity: "
            "weights-inception-2015-12-05-6726825d.pth)")


def register_portrait_metrics(esub) -> None:
    """``diversity`` and ``mask-consistency``: the portrait model's sampling diversity and layout faithfulness."""
    from genkit.cli import add_device_option

    d = esub.add_parser("diversity", help="LPIPS diversity: mean pairwise LPIPS among samples drawn for the same "
                                          "condition (files NAME_0.png, NAME_1.png, ... as `genkit edit --sample` "
                                          "writes them, grouped by NAME)")
    d.add_argument("input", metavar="DIR", help="folder of samples NAME_0.png, NAME_1.png, ... (grouped by NAME)")
    _common(d, "LPIPS trunk weights file (torchvision AlexNet / VGG-16 state dict); default: genkit's registry")
    d.add_argument("--net", choices=("alex", "vgg"), default="alex", help="LPIPS trunk (default alex)")
    d.set_defaults(handler=_diversity)

    m = esub.add_parser("mask-consistency", help="mIoU and pixel accuracy of a face parser on generated images "
                                                 "against the masks they were drawn for (paired by file name)")
    m.add_argument("input", metavar="DIR", help="generated images")
    m.add_argument("masks", metavar="MASK_DIR", help="their label maps (8-bit PNGs, NAME.png), e.g. --save-mask output")
    m.add_argument("--parser", required=True,
                   help="face parser: bisenet-celebamask (pretrained), a parser checkpoint (genkit-train "
                        "experiment=parser_*) or a BiSeNet 79999_iter.pth file")
    m.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per forward pass (default 16)")
    add_device_option(m)
    _json_options(m)
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(handler=_mask_consistency)



def _check(args) -> None:
    """Options and output paths, checked before any network is built or image read."""
    from genkit.core.errors import ConfigError
    from genkit.core.outputs import check_output_file

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    if args.num_workers is not None and args.num_workers < 0:
        raise ConfigError("--num-workers must be >= 0")
    _check_outputs(args)


def _check_outputs(args) -> None:
    """No output (--json FILE, --output) may replace an input file or land in an input image folder, nor replace an
    existing file without --overwrite."""
    from genkit.core.outputs import check_not_inputs, check_output_file

    inputs = [(k, getattr(args, k, None)) for k in ("input1", "input2", "input", "masks")]
    check_not_inputs(inputs + [("--weights", getattr(args, "weights", None)), ("--parser", getattr(args, "parser", None))],
                     files=[("--json", None if args.json == "-" else args.json), ("--output", getattr(args, "output", None))])
    if args.json not in (None, "-"):
        check_output_file(args.json, "--json", overwrite=args.overwrite)
    if getattr(args, "output", None) is not None:
        check_output_file(args.output, "--output", (".npz",),
                          "statistics are written in pytorch-fid's .npz format; name the file *.npz",
                          overwrite=args.overwrite)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _report(args, title: str, values: dict, result: dict) -> int:
    """Table on stdout (unless ``--json`` alone), JSON on stdout or to a file."""
    from genkit.core.files import atomic_write_json
    from genkit.metrics import keys

    protocol = result.get(keys.KEY_PROTOCOL, {})
    weights = protocol.get(keys.KEY_WEIGHTS, "unknown")
    random = weights == keys.RANDOM_WEIGHTS
    payload = dict(result)
    payload["random_weights"] = random
    if args.json == "-":
        json.dump(payload, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        rows = [(name, _fmt(v)) for name, v in values.items()]
        if protocol.get(keys.KEY_FID_PROTOCOL):
            rows.append(("protocol", protocol[keys.KEY_FID_PROTOCOL]))
        rows.append(("weights", "RANDOM (numbers are NOT meaningful)" if random else str(weights)))
        if protocol.get(keys.KEY_RESIZE):
            rows.append(("resize", protocol[keys.KEY_RESIZE]))
        for side in ("input1", "input2"):
            rec = protocol.get(side)
            if not rec:
                continue
            desc = f"{rec.get('path')} [{rec.get('kind', 'folder')}]"
            n = rec.get(keys.KEY_NUM_SAMPLES)
            desc += f", {n if n is not None else '?'} samples"
            sizes = rec.get(keys.KEY_IMAGE_SIZES)
            if sizes:
                desc += ", sizes " + ", ".join(f"{k} ({c})" for k, c in sizes.items())
                if rec.get(keys.KEY_MIXED_SIZES):
                    desc += " MIXED"
            if rec.get("stats_cache"):
                desc += f", stats cache: {rec['stats_cache']}"
            if rec.get("conversions"):
                desc += f", {sum(rec['conversions'].values())} converted to RGB"
            if rec.get("skipped"):
                desc += f", {len(rec['skipped'])} SKIPPED (unreadable)"
            rows.append((side, desc))
        reading = protocol.get("image_reading")
        if reading:
            rows.append(("reading", f"{reading['profile']}, transparency {reading['transparency']}"
                                    + (", strict modes" if reading.get("strict_modes") else "")))
        if protocol.get("conversions"):
            rows.append(("converted", ", ".join(f"{k} ({c})" for k, c in protocol["conversions"].items())))
        for note in protocol.get(keys.KEY_WARNINGS, []):
            rows.append(("warning", note))
        if protocol.get(keys.KEY_NUM_SAMPLES) is not None:
            rows.append(("pairs", str(protocol[keys.KEY_NUM_SAMPLES])))
            sizes = protocol.get(keys.KEY_IMAGE_SIZES) or {}
            rows.append(("image sizes", ", ".join(f"{k} ({c})" for k, c in sizes.items())))
        width = max(len(r[0]) for r in rows)
        print(title)
        for name, v in rows:
            print(f"  {name:<{width}}  {v}")
        if args.json:
            atomic_write_json(args.json, payload)
            print(f"  (JSON written to {args.json})")
    if random:
        print("genkit: warning: RANDOM weights were used; these numbers are not meaningful", file=sys.stderr)
    skipped = [s for side in ("input1", "input2") for s in (protocol.get(side) or {}).get("skipped", [])]
    skipped += protocol.get("skipped", [])
    if skipped:
        print(f"genkit: warning: skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5])
              + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
    for note in protocol.get(keys.KEY_WARNINGS, []):
        print(f"genkit: warning: {note}", file=sys.stderr)
    return 0


def _shared(args) -> dict:
    """The options every metric function takes the same way."""
    return dict(weights_path=args.weights, allow_random=args.allow_random, batch_size=args.batch_size,
                device=args.device, reading=reading_policy(args, "torch-fidelity"), skip_errors=args.skip_errors,
                progress=not args.no_progress)


def _fid(args) -> int:
    from genkit.metrics import keys
    from genkit.metrics.fid import SmallSampleWarning, fid_between

    _check(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)  # recorded in the protocol, printed by _report
        result = fid_between(args.input1, args.input2, num_workers=args.num_workers, use_cache=not args.no_cache,
                             protocol=args.protocol, **_shared(args))
    return _report(args, "FID", {"fid": result[keys.KEY_FID]}, result)


def _kid(args) -> int:
    from genkit.metrics import keys
    from genkit.metrics.kid import kid_between

    _check(args)
    result = kid_between(args.input1, args.input2, subsets=args.kid_subsets, subset_size=args.kid_subset_size,
                         seed=args.seed, num_workers=args.num_workers, protocol=args.protocol, **_shared(args))
    return _report(args, "KID", {"kid_mean": result[keys.KEY_KID_MEAN], "kid_std": result[keys.KEY_KID_STD]}, result)


def _lpips(args) -> int:
    from genkit.metrics import keys
    from genkit.metrics.lpips import lpips_between

    _check(args)
    result = lpips_between(args.input1, args.input2, net=args.net, **_shared(args))
    return _report(args, f"LPIPS ({args.net})",
                   {"lpips": result[keys.KEY_LPIPS], "lpips_std": result[keys.KEY_LPIPS_STD]}, result)


def _stats(args) -> int:
    from genkit.metrics.fid import save_folder_stats

    _check(args)
    result = save_folder_stats(args.input, args.output, num_workers=args.num_workers, use_cache=not args.no_cache,
                               protocol=args.protocol, **_shared(args))
    return _report(args, "FID statistics", {"output": result["output"]}, result)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _entries_word(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def _cache_list(args) -> int:
    import time

    from genkit.metrics.stats_cache import ENV_CACHE_MAX, stats_cache_dir, cache_entries, cache_max_bytes

    entries, cap = cache_entries(), cache_max_bytes()
    total = sum(e.size for e in entries)
    if args.json:
        payload = {"cache_dir": str(stats_cache_dir()), "max_bytes": cap, "total_bytes": total, "entries": [
            {"file": e.path.name, "folder": e.folder, "num_samples": e.num_samples, "bytes": e.size,
             "representation": e.representation, "weights": e.weights, "last_used": e.last_used}
            for e in entries]}
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"FID statistics cache {stats_cache_dir()}: {_entries_word(len(entries))}, {_size(total)} of {_size(cap)} "
          f"(cap: {ENV_CACHE_MAX}); least recently used first")
    if not entries:
        print("  (empty)")
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        what = (f"{e.folder}, {e.num_samples} samples" if not e.legacy
                else f"{e.path.name} (old format or unreadable: never read again; never refreshed, so evicted early)")
        print(f"  {_size(e.size):>11}  {used}  {what}")
    return 0


def _cache_clear(args) -> int:
    from genkit.metrics.stats_cache import stats_cache_dir, clear_cache

    removed = clear_cache(args.folders or None)
    print(f"removed {_entries_word(len(removed))} ({_size(sum(e.size for e in removed))}) from {stats_cache_dir()}")
    return 0


def sample_groups(folder) -> dict[str, list]:
    """Images of ``folder`` grouped by name without a trailing ``_<number>`` (``a_0.png``, ``a_1.png`` -> ``a``)."""
    import re

    from genkit.metrics.folders import folder_files

    groups: dict[str, list] = {}
    for f in folder_files(folder):
        match = re.fullmatch(r"(.+)_(\d+)", f.stem)
        groups.setdefault(match.group(1) if match else f.stem, []).append(f)
    return groups


def _diversity(args) -> int:
    import torch

    from genkit.core.errors import DataError
    from genkit.metrics import keys
    from genkit.metrics.folders import read_uint8
    from genkit.core.device import resolve_device
    from genkit.metrics.lpips import build_lpips, lpips_diversity

    _check(args)
    groups = {k: v for k, v in sample_groups(args.input).items() if len(v) >= 2}
    if not groups:
        raise DataError(args.input, "no condition has two or more samples (expected NAME_0.png, NAME_1.png, ...)")
    model = build_lpips(args.net, args.weights, args.allow_random, device=resolve_device(args.device))
    scores = {}
    for name, files in groups.items():
        images = [read_uint8(f, reading_policy(args, "torch-fidelity")) for f in files]
        if len({tuple(t.shape) for t in images}) > 1:
            raise DataError(files[0], f"the samples of {name!r} differ in size; diversity compares equal sizes")
        x = torch.stack(images).float().to(next(model.parameters()).device) / 127.5 - 1.0
        scores[name] = lpips_diversity(x, model, args.batch_size)
    values = torch.tensor(list(scores.values()), dtype=torch.float64)
    protocol = dict(model.protocol, metric="LPIPS diversity (mean pairwise LPIPS per condition, averaged)",
                    input1={"path": str(args.input), "kind": "folder",
                            keys.KEY_NUM_SAMPLES: sum(len(v) for v in groups.values())},
                    conditions=len(groups), samples_per_condition=sorted({len(v) for v in groups.values()}))
    result = {keys.KEY_DIVERSITY: float(values.mean()), "per_condition": scores, keys.KEY_PROTOCOL: protocol}
    return _report(args, f"LPIPS diversity ({args.net})",
                   {"lpips_diversity": float(values.mean()), "conditions": len(groups)}, result)


def _mask_consistency(args) -> int:
    import torch
    from tqdm.auto import tqdm

    from genkit.core.errors import ConfigError, DataError
    from genkit.core.reading import read_label_map
    from genkit.metrics import keys
    from genkit.metrics.folders import paired_files, read_uint8
    from genkit.core.device import resolve_device
    from genkit.metrics.mask_consistency import MaskConsistency
    from genkit.models.parsing.checkpoint import load_parser_with_info

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    _check_outputs(args)
    device = resolve_device(args.device)
    net, info = load_parser_with_info(args.parser)
    metric = MaskConsistency(net.to(device), info.schema.num_classes, input_range="unit",
                             parse_size=info.image_size).to(device)
    pairs = paired_files(args.input, args.masks)
    for i in tqdm(range(0, len(pairs), args.batch_size), desc="parsing", unit="batch", disable=args.no_progress,
                  leave=False):
        chunk = pairs[i:i + args.batch_size]
        images = [read_uint8(a) for a, _ in chunk]
        masks = [torch.from_numpy(read_label_map(b, info.schema.num_classes)) for _, b in chunk]
        for (a, b), x, m in zip(chunk, images, masks):
            if tuple(x.shape[1:]) != tuple(m.shape):
                raise DataError(b, f"mask is {m.shape[1]}x{m.shape[0]} but its image {a.name} is "
                                   f"{x.shape[2]}x{x.shape[1]}")
        if len({tuple(m.shape) for m in masks}) > 1:
            for x, m in zip(images, masks):
                metric.update(x[None].float().to(device) / 255.0, m[None].to(device))
        else:
            metric.update(torch.stack(images).float().to(device) / 255.0, torch.stack(masks).to(device))
    scores = metric.compute()
    per_class = {c: float(v) for c, v in zip(info.schema.classes, scores["iou_per_class"].tolist())}
    protocol = {"metric": "mask consistency (parser mIoU / pixel accuracy vs the target masks)",
                keys.KEY_WEIGHTS: f"parser {args.parser}", "parser_schema": info.schema.name,
                "parse_size": info.image_size, keys.KEY_NUM_SAMPLES: len(pairs),
                "input1": {"path": str(args.input), "kind": "folder"}, "input2": {"path": str(args.masks),
                                                                                  "kind": "folder"}}
    result = {"mask_miou": float(scores["miou"]), "mask_pixel_acc": float(scores["pixel_acc"]),
              "iou_per_class": per_class, keys.KEY_PROTOCOL: protocol}
    return _report(args, "mask consistency", {"mask_miou": result["mask_miou"],
                                              "mask_pixel_acc": result["mask_pixel_acc"]}, result)


def _protocols(args) -> int:
    from genkit.core.errors import ConfigError
    from genkit.metrics import protocols

    _check(args)
    if args.weights:
        raise ConfigError("--weights: `eval protocols` runs every protocol on its own weights file from the registry")
    names = tuple(protocols.PROTOCOLS) if args.all else protocols.MAIN
    shared = _shared(args)
    shared.pop("weights_path")
    rows = protocols.compare_protocols(args.input1, args.input2, names, num_workers=args.num_workers,
                                       use_cache=not args.no_cache, **shared)
    if args.json == "-":
        json.dump(rows, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
        return 0
    print(protocols_table(rows))
    if args.json:
        from genkit.core.files import atomic_write_json

        atomic_write_json(args.json, rows)
        print(f"  (JSON written to {args.json})")
    if any((r["record"] or {}).get("weights") == "RANDOM" for r in rows):
        print("genkit: warning: RANDOM weights were used; these numbers are not meaningful", file=sys.stderr)
    return 0 if any(r["fid"] is not None for r in rows) else 2


def protocols_table(rows: list[dict]) -> str:
    """The side-by-side text of :func:`genkit.metrics.protocols.compare_protocols` rows."""
    from genkit.metrics import protocols

    width = max(len(r["protocol"]) for r in rows)
    lines = ["FID by protocol"]
    for r in rows:
        value = f"{r['fid']:.6g}" if r["fid"] is not None else f"unavailable ({r['error']})"
        weights = (r["record"] or {}).get("weights")
        lines.append(f"  {r['protocol']:<{width}}  {value}" + ("  [RANDOM weights]" if weights == "RANDOM" else ""))
    lines.append("what differs:")
    for r in rows[1:]:
        spec = protocols.get_protocol(r["protocol"])
        diff = "; ".join(f"{field.replace('_', ' ')}: {getattr(spec, field)}" for field in r["differences"])
        lines.append(f"  {r['protocol']} vs {r['differs_from']}: {diff or 'nothing'}")
    return "\n".join(lines)


def _prdc(args) -> int:
    from genkit.metrics import keys
    from genkit.metrics.manifold import NAMES, prdc_between

    _check(args)
    result = prdc_between(args.input1, args.input2, k=args.k, protocol=args.protocol, num_workers=args.num_workers,
                          use_cache=not args.no_cache, **_shared(args))
    return _report(args, f"precision / recall / density / coverage (k={args.k}; input1 real, input2 fake)",
                   {name: result[name] for name in NAMES}, {**result, keys.KEY_PROTOCOL: result[keys.KEY_PROTOCOL]})
