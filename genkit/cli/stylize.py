"""``genkit stylize CONTENT STYLE -o OUT (--decoder CKPT | --optimize)``: deep feature reshuffle style transfer.

CONTENT and/or STYLE may be folders: then every content is stylised with every style and OUT is a folder of
``CONTENT__STYLE.png`` files. Every output carries PNG metadata: the settings, the weights used (hashes, or
that they were random) and the per-level usage statistics of the assignment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genkit.cli.limits import (
    add_size_ceiling,
    add_threads_option,
    non_empty_path,
    non_negative_float,
    positive_float,
)
from genkit.cli.reading import add_reading_options, reading_policy


def _alphas(text: str):
    if text.strip().lower() == "split":
        return "split"
    return _floats(text)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _dims(text: str) -> list[int | None]:
    out = []
    for v in text.split(","):
        if v.lower() in ("none", "off", "0"):
            out.append(None)
        else:
            try:
                out.append(int(v))
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected integers or 'none', got {text!r}") from None
    return out


def _max_usage(text: str):
    if text.lower() == "auto":
        return "auto"
    if text.lower() in ("none", "off", "unlimited"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-usage takes 'auto', 'none' or an integer, got {text!r}") from None


def register(sub) -> None:
    from genkit.cli import add_device_option

    p = sub.add_parser("stylize", help="style transfer by deep feature reshuffle",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", type=non_empty_path, help="content image or folder of images")
    p.add_argument("style", type=non_empty_path, help="style image or folder of images")
    p.add_argument("-o", "--out", type=non_empty_path, required=True,
                   help="output image (single pair) or folder (batch mode)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--decoder", metavar="CKPT", help="decoder checkpoint, model folder or hub id (user/name) (fast "
                     "path; train with `genkit-train experiment=reshuffle_decoders`)")
    how.add_argument("--optimize", action="store_true", help="reconstruct by image optimisation (slow, no decoder)")
    _add_transfer_options(p.add_argument_group("transfer"))
    o = p.add_argument_group("optimisation (--optimize)")
    o.add_argument("--steps", type=int, default=50,
                   help="at most this many optimiser evaluations of the output image (fewer once the loss stops "
                        "falling by 2%% per 10; L-BFGS needs 2 for its first step)")
    o.add_argument("--level-steps", type=int, default=0,
                   help="also solve an image at every earlier level, this many evaluations, and take the next "
                        "level's content from it (default 0: every level uses the content's features)")
    o.add_argument("--coarse-steps", type=int, default=0,
                   help="a half-resolution solve of this many evaluations before each full-resolution one")
    o.add_argument("--opt-targets", choices=("finest", "all"), default="finest",
                   help="the final solve matches the finest level's target (as the release decodes only the finest "
                        "blend), or every level's (genkit 0.3)")
    o.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="image optimiser")
    o.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: 1.0 for lbfgs, 0.02 for adam)")
    o.add_argument("--gram-weight", type=non_negative_float, default=0.0, help="weight of an extra Gram-matrix style term")
    r = p.add_argument_group("runtime")
    add_device_option(r)
    add_threads_option(r)
    r.add_argument("--allow-random", action="store_true",
                   help="run with RANDOM VGG weights if the real file is missing (outputs are marked)")
    r.add_argument("--vgg-weights", default=None, help="a VGG-19 weights file, or 'random'")
    r.add_argument("--vgg-variant", choices=("torchvision", "caffe"), default=None,
                   help="the VGG-19 encoder: torchvision's, or the Caffe VGG-19 of the paper's release (default: "
                        "the one the --decoder checkpoint was trained for, else torchvision)")
    r.add_argument("--skip-errors", action="store_true",
                   help="batch mode: skip unreadable images (counted) instead of stopping")
    r.add_argument("--skip-existing", action="store_true", help="batch mode: keep outputs that already exist")
    add_reading_options(p)
    add_size_ceiling(r, "--size", "--style-size")
    p.set_defaults(handler=run)


def _add_transfer_options(g) -> None:
    g.add_argument("--levels", type=lambda s: s.split(","), default=None,
                   help="coarse-to-fine VGG taps (default relu4_1,relu3_1,relu2_1, or the decoder's levels)")
    g.add_argument("--alpha", type=_alphas, default=None,
                   help="content weight per level (one value or one per level; default 0.6 at every level, as the "
                        "release), or 'split': 0.6 at the last level while the earlier ones split one 0.6 "
                        "(0.775,0.775,0.6 for 3 levels; genkit 0.3's decoder default)")
    g.add_argument("--content-share", choices=("release", "per_level"), default="release",
                   help="optimisation path: 'release' blends each level at the product of the alphas so far, so "
                        "the finest target keeps the release's content share (0.6^3); 'per_level' blends each level "
                        "at its own alpha (genkit 0.3)")
    g.add_argument("--size", type=int, default=512,
                   help="long side of the output in px, with the content's aspect ratio (0: the content's exact "
                        "size; default 512); processed at the nearest multiples of the deepest level's stride (8 px by "
                        "default) and resized back")
    g.add_argument("--style-size", type=int, default=None,
                   help="long side of the style image as processed, which sets the patch scale (default: --size)")
    g.add_argument("--max-usage", type=_max_usage, default="auto",
                   help="uses allowed per style patch: auto (ceil(slack*Nc/Ns)), an integer, or none (style-swap)")
    g.add_argument("--slack", type=float, default=1.0, help="multiplies the auto usage limit (>= 1)")
    g.add_argument("--iterations", type=_ints, default=None,
                   help="at most this many match-vote-blend iterations per level (default 5, as the release)")
    g.add_argument("--tolerance", type=non_negative_float, default=0.002,
                   help="a level stops early once the matching has settled: see --stop-on (0: always run "
                        "--iterations)")
    g.add_argument("--stop-on", choices=("similarity", "changed", "blend"), default="similarity",
                   help="early stopping: the mean matched similarity improves by less than --tolerance (default), "
                        "the share of changed matches is below it, or the blend's relative change is below it")
    g.add_argument("--warm-start", choices=("none", "local", "all"), default="none",
                   help="start a finer level's first target from the coarser level's assignment (its vote blended "
                        "with the content): at the levels that refine it by local search (local), at every finer "
                        "level (all), or at none (default: each level first matches its content alone). Faster and "
                        "more stylised, keeps less of the content's structure")
    g.add_argument("--knn", type=int, default=24, help="PatchMatch: candidates kept per position for the solver")
    g.add_argument("--sweeps", type=int, default=2, help="PatchMatch: propagation + random-search sweeps per iteration")
    g.add_argument("--patch-size", type=_ints, default=None, help="patch size per level (default 3 at relu4_1, 5 below)")
    g.add_argument("--pca-dims", type=_dims, default=None,
                   help="channel PCA dims per level ('none' = off; default 80/40/20 at relu4_1/3_1/2_1)")
    g.add_argument("--patch-dims", type=_dims, default=None,
                   help="PCA of whole patch vectors per level ('none' = exact; default none/64/64); smaller is faster")
    g.add_argument("--top-k", type=int, default=32, help="candidates per position in the global search")
    g.add_argument("--restore-detail", dest="restore_detail", action="store_true", default=False,
                   help="decoder path: add back what the next-level decoders lose of the content (not in the "
                        "release; a fix for weak decoders)")
    g.add_argument("--no-restore-detail", dest="restore_detail", action="store_false",
                   help="decoder path: do not add back the content's detail (the default)")
    g.add_argument("--preserve-color", choices=("none", "luminance", "histogram"), default="none",
                   help="keep the content's colours: luminance-only transfer, or style colours matched to content")
    g.add_argument("--content-mask", type=non_empty_path,
                   help="label map of the content (semantic transfer; needs --style-mask)")
    g.add_argument("--style-mask", type=non_empty_path,
                   help="label map of the style; content label l takes style only from style label l")
    g.add_argument("--seed", type=int, default=0, help="random seed (PCA directions, candidate sampling)")


def _inputs(path: str, what: str) -> tuple[list[Path], bool]:
    from genkit.core.errors import DataError
    from genkit.core.reading import check_file, list_images

    p = Path(path)
    if p.is_dir():
        return list_images(p), True
    if not p.exists():
        raise DataError(p, f"{what} image does not exist")
    return [check_file(p, f"{what} image")], False


def _check_mask_files(args, batch: bool) -> None:
    """Before any work (the encoder takes seconds to build): masks come in pairs, for a single content/style pair,
    and name files that can be read."""
    from genkit.core.errors import ConfigError
    from genkit.core.reading import check_file

    if not (args.content_mask or args.style_mask):
        return
    if batch:
        raise ConfigError("--content-mask/--style-mask work for a single content/style pair, not folders")
    if not (args.content_mask and args.style_mask):
        raise ConfigError("semantic masks need both --content-mask and --style-mask")
    check_file(args.content_mask, "--content-mask")
    check_file(args.style_mask, "--style-mask")


def _output_is_folder(out: Path, batch: bool) -> bool:
    """Check ``-o`` before any work: a folder (batch mode, an existing folder, or a name without extension) or an
    image file whose extension names its format."""
    from genkit.core.errors import ConfigError
    from genkit.core.outputs import check_output_dir, check_output_file
    from genkit.core.saving import IMAGE_FORMATS

    if batch:
        if out.suffix.lower() in IMAGE_FORMATS and not out.is_dir():
            raise ConfigError(f"{out}: batch mode writes a folder of images, but --out names an image file")
        check_output_dir(out, "--out")
        return True
    if out.is_dir() or not out.suffix:
        check_output_dir(out, "--out")
        return True
    check_output_file(out, "--out", IMAGE_FORMATS, f"the format follows the extension: use one of "
                      f"{', '.join(IMAGE_FORMATS)} (or a folder)")
    return False


def output_names(files: list[Path]) -> dict[Path, str]:
    """The name each input contributes to output file names: its stem, or its full file name when another input
    shares the stem (``a.jpg`` and ``a.png`` would otherwise overwrite each other's results)."""
    from collections import Counter

    stems = Counter(f.stem for f in files)
    return {f: f.name if stems[f.stem] > 1 else f.stem for f in files}


def _output_for(out: Path, content: str, style: str, to_folder: bool) -> Path:
    return out / f"{content}__{style}.png" if to_folder else out


def _decoder_levels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    from genkit.models.reshuffle.decoders import read_checkpoint

    return read_checkpoint(path)["genkit"].get("levels")


def _config(args):
    from genkit.models.reshuffle.config import build_config

    return build_config(levels=args.levels or _decoder_levels(args.decoder), alpha=args.alpha,
                        iterations=args.iterations, patch_size=args.patch_size,
                        pca_dims="default" if args.pca_dims is None else args.pca_dims,
                        patch_dims="default" if args.patch_dims is None else args.patch_dims, max_usage=args.max_usage,
                        slack=args.slack, top_k=args.top_k, seed=args.seed, tolerance=args.tolerance,
                        stop_on=args.stop_on, content_share=args.content_share, knn=args.knn, sweeps=args.sweeps,
                        warm_start=args.warm_start,
                        preserve_color=None if args.preserve_color == "none" else args.preserve_color)


def _check_inputs(contents, styles, config, args, reading) -> None:
    """Fail fast on a bad image, before the networks are built (single pair)."""
    from genkit.models.reshuffle.api import prepare_input

    for path, size, option in ((contents[0], args.size, "--size"), (styles[0], args.style_size or args.size,
                                                                    "--style-size")):
        prepare_input(path, str(path), size or None, config, reading, option=option,  # checks the processed size
                      ceiling=_ceiling(args))


def _ceiling(args) -> int | None:
    """The --size ceiling a too-small image's suggestion must respect (None: --allow-large is given)."""
    return None if args.allow_large else args.size_ceiling[0]


def _stylizer(args, config, reading, device):
    from genkit.models.reshuffle.api import Stylizer
    from genkit.models.reshuffle.optimize import OptimizeSettings

    opt = None
    if args.optimize:
        opt = OptimizeSettings(steps=args.steps, optimizer=args.optimizer, lr=args.lr, gram_weight=args.gram_weight,
                               level_steps=args.level_steps, coarse_steps=args.coarse_steps,
                               targets=args.opt_targets)
    st = Stylizer(decoder=args.decoder, optimize=opt or False, size=args.size or None, style_size=args.style_size,
                  device=device, allow_random=args.allow_random, vgg_weights=args.vgg_weights,
                  reading=reading, config=config, restore_detail=args.restore_detail,
                  vgg_variant=args.vgg_variant)
    st.size_options = ("--size", "--style-size")  # a too-small image's error names the flag to change
    st.size_ceiling = _ceiling(args)  # ... and --allow-large, when the size it suggests is past the ceiling
    return st


def run(args) -> int:
    contents, c_dir = _inputs(args.content, "content")  # every input path first: before torch, before any model
    styles, s_dir = _inputs(args.style, "style")
    batch = c_dir or s_dir
    _check_mask_files(args, batch)
    import torch

    from genkit.core.device import resolve_device

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    to_folder = _output_is_folder(out, batch)
    _check_not_inputs(args, out, to_folder)
    reading = reading_policy(args)
    config = _config(args)
    if not batch:
        _check_inputs(contents, styles, config, args, reading)
    st = _stylizer(args, config, reading, device)
    written, skipped = _stylize_pairs(st, contents, styles, out, to_folder, batch, args, reading)
    _report(written, skipped, out, batch)
    return 0


def _stylize_pairs(st, contents, styles, out, to_folder, batch, args, reading):
    """Stylise every pair (style-major: each style encoded once); returns the written and the skipped pairs."""
    import logging

    from genkit.core.errors import DataError

    log = logging.getLogger("genkit.stylize")
    pairs = [(c, s, j) for j, s in enumerate(styles) for c in contents]
    c_names, s_names = output_names(contents), output_names(styles)
    written, skipped = [], []
    bar = None
    if batch:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc="stylize", unit="image")
    try:
        for c, s, j in pairs:
            dest = _output_for(out, c_names[c], s_names[s], to_folder)
            if args.skip_existing and dest.exists():
                skipped.append((c, s, "exists"))
            else:
                try:
                    res = st(c, s, args.content_mask, args.style_mask, style_key=("cli", j))
                except DataError as exc:
                    if not (batch and args.skip_errors):
                        raise
                    log.warning("skipping %s x %s: %s", c.name, s.name, exc)
                    skipped.append((c, s, str(exc)))
                    res = None
                if res is not None:
                    meta = res.metadata()
                    meta["command"] = "genkit stylize"
                    meta["content"], meta["style"] = str(c), str(s)
                    meta["image_reading"] = reading.record()
                    from genkit.core.saving import save_image

                    save_image(res.image, dest, metadata=meta)
                    written.append((dest, res))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return written, skipped


def _report(written, skipped, out, batch) -> None:
    converted = {name: note for _, res in written for name, note in res.input_conversions.items()}
    if not batch:
        for name, note in converted.items():  # what reading did: mode conversion, EXIF rotation, first frame only
            print(f"read {name}: {note}")
    for dest, res in written[:1] if not batch else []:
        for lv in res.levels:
            d = lv.as_dict()
            print(f"{lv.tap}: {d['distinct_used']}/{lv.n_style} style patches used "
                  f"(max usage {d['max_usage']}, limit {d['usage_limit']}), mean similarity {d['mean_similarity']:.3f}, "
                  f"{d['iterations']} iteration(s){' (stopped: ' + d['stop_reason'] + ')' if d['converged'] else ''}, "
                  f"content share {d['content_share']:.3f}, filled {d['fill_share']:.0%}")
    random_note = " (RANDOM VGG weights: not meaningful for quality)" if any(r.random_weights for _, r in written) else ""
    where = out if batch else (written[0][0] if written else out)
    print(f"wrote {len(written)} image(s) to {where}{random_note}")
    if batch and converted:
        print(f"{len(converted)} input(s) converted on reading (input_conversions in the outputs' metadata): "
              + "; ".join(f"{Path(n).name}: {c}" for n, c in list(converted.items())[:3])
              + (" ..." if len(converted) > 3 else ""))
    if skipped:
        print(f"skipped {len(skipped)} pair(s): " + "; ".join(f"{c.name} x {s.name}: {why}" for c, s, why in skipped[:5])
              + (" ..." if len(skipped) > 5 else ""))
def _check_not_inputs(args, out: Path, to_folder: bool) -> None:
    """Before any work: ``-o`` may not be an input file, nor (batch mode) the content or style folder."""
    from genkit.core.outputs import check_not_inputs

    inputs = {"content": args.content, "style": args.style, "--content-mask": args.content_mask,
              "--style-mask": args.style_mask, "--decoder": args.decoder}
    check_not_inputs(inputs, **{"folders" if to_folder else "files": {"--out": out}})
