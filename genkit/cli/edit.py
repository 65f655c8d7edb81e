"""``genkit edit``: portrait editing with a trained mask-guided GAN.

    genkit edit --checkpoint last.ckpt --target a.png --mask a_mask.png --mouth b.png:b_mask.png -o out.png
    genkit edit --checkpoint last.ckpt --target a.png --mask a_mask.png --hair c.png --parser parser.ckpt -o out.png
    genkit edit --checkpoint last.ckpt --target a.png --mask a_mask.png --edited-mask a_painted.png -o out.png
    genkit edit --checkpoint vae.ckpt --target a.png --mask a_mask.png --sample mouth -n 4 -o mouths.png
    genkit edit --checkpoint last.ckpt --target photo.jpg --detect --parser parser.ckpt --hair c.png -o out.png
    genkit edit --checkpoint last.ckpt --target faces/ --donors donors/ --transfer mouth,hair -o edits/

Photos may have any size and aspect ratio; the output has the target photo's size. A mask is an 8-bit label map or
a colour-coded mask in the schema's palette (the previews/ that `genkit parse --size photo` writes, painted over in
any image editor), at the photo's size. Only what the edit changes is regenerated (the transferred components'
regions, the pixels whose label the edited mask changes), grown by --grow and blended over --feather pixels;
everywhere else the output is the target photo's own pixels (--region face redraws the whole head). Backdrop the
edit uncovers (hair removed) takes the photo's own backdrop colour and texture (--fill generator: the generator's
fill as drawn); the metadata's `fill` says how it was filled. A component
source is IMG or IMG:MASK; photos without a mask are parsed with --parser. --detect finds the largest face of a
photo, edits an aligned crop and pastes it back. A folder --target (images/ + masks/ as written by `genkit parse` /
`genkit data synth`, or plain images to parse) with --donors writes every target x donor transfer and a grid.
Outputs are written atomically with the edit's metadata (operation, sources, checkpoint, generator weights used,
random-weight provenance); --save-codes also writes the component codes used (a torch file, loadable with
weights_only), --save-mask the label map used at the output's size (it goes back in as --mask with the output as
--target). No two outputs may be one file, nor an output an input; options that contradict each other are refused,
and so are options only another mode reads (-n/--seed/--temperature without --sample, --face-scale without --detect,
--transfer without --donors, --region face with --sample or --donors) rather than ignored.
"""

from __future__ import annotations

from pathlib import Path

from genkit.cli.limits import non_empty_path, non_negative_float, positive_float
from genkit.cli.reading import add_reading_options, reading_policy

COMPONENT_FLAGS = {"left_eye": "--left-eye", "right_eye": "--right-eye", "eyes": "--eyes", "mouth": "--mouth",
                   "skin": "--skin", "hair": "--hair"}


def register(sub) -> None:
    from genkit.cli import add_device_option

    import argparse

    p = sub.add_parser("edit", help="edit portraits: reconstruct, transfer components, regenerate from an edited "
                                    "mask, sample component appearances",
                       description=__doc__.replace("``", "`"), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="portrait checkpoint (.ckpt from genkit-train), an export, or a "
                   "model folder / hub id (user/name)")
    p.add_argument("--target", required=True,
                   help="target photo (supplies layout and background), or a folder of faces with --donors")
    p.add_argument("--mask", help="label map of the target at the photo's size (8-bit label PNG, or a colour-coded "
                                  "mask in the schema's palette); parsed with --parser if absent")
    for name, flag in COMPONENT_FLAGS.items():
        p.add_argument(flag, dest=f"src_{name}", metavar="IMG[:MASK]",
                       help=f"take the {name.replace('_', ' ')} from this face")
    p.add_argument("--edited-mask", help="draw the face for this edited label map (labels or colours, the photo's "
                                         "size; appearance from the target)")
    p.add_argument("--region", choices=("edit", "face"),
                   help="what is regenerated: edit (default: only what the edit changes) or face (the whole head)")
    p.add_argument("--grow", type=float, default=2.0,
                   help="margin regenerated around the changed pixels, in px at 256 px of the face (default 2)")
    p.add_argument("--feather", type=float, default=5.0,
                   help="blend band beyond that margin, in px at 256 px of the face (default 5)")
    p.add_argument("--fill", choices=("backdrop", "generator"), default="backdrop",
                   help="the backdrop an edit uncovers (hair removed, a face made smaller): backdrop (default: "
                        "continued from the photo's own visible backdrop, its colour interpolated inwards and its "
                        "texture quilted from it) or generator (the generator's fill as drawn)")
    p.add_argument("--sample", metavar="COMPONENT", help="draw -n appearances of this component from the prior "
                                                         "(VAE-trained models)")
    p.add_argument("-n", "--num", type=int, help="number of samples with --sample (default 4)")
    p.add_argument("--seed", type=int, help="random seed of --sample (default 0)")
    p.add_argument("--temperature", type=non_negative_float, help="prior scale with --sample (default 1)")
    p.add_argument("--parser", help="face-parser checkpoint, model folder or hub id, for photos given without a mask")
    p.add_argument("--detect", action="store_true",
                   help="detect the largest face in a photo of any size, edit it and paste it back into the photo "
                        "(needs --parser and facenet-pytorch)")
    p.add_argument("--face-scale", type=positive_float,
                   help="with --detect: >1 includes more around the face (default 1)")
    p.add_argument("--donors", metavar="DIR", help="with a folder --target: a folder of donor faces (every target x "
                                                   "every donor; outputs and grid.png in the -o folder)")
    p.add_argument("--transfer", metavar="COMPONENTS",
                   help="with --donors: comma-separated components to take from each donor (left_eye, right_eye, "
                        "eyes, mouth, skin, hair, all; default all)")
    p.add_argument("--generator", choices=("auto", "ema", "raw"),
                   help="generator weights: auto (default: the better of raw and EMA by the run's validation), ema "
                        "or raw")
    p.add_argument("--no-ema", action="store_true", help="same as --generator raw")
    add_device_option(p)
    p.add_argument("--save-codes", metavar="PATH", help="also write the component codes used (torch file)")
    p.add_argument("--save-mask", action="store_true",
                   help="also write the label map used, as OUT_mask.png at the output's size (give it back as --mask "
                        "with the output as --target)")
    p.add_argument("-o", "--out", type=non_empty_path, required=True,
                   help="output image; the format follows the extension (png, jpg, webp, tif, bmp; metadata in the "
                        "PNG or a NAME.EXT.json sidecar). With --sample: OUT_0.png, OUT_1.png, ...; with --donors: "
                        "a folder")
    add_reading_options(p, "photos")
    p.set_defaults(handler=_edit)


def split_source(text: str) -> tuple[str, str | None]:
    """``IMG`` or ``IMG:MASK``. A ':' splits only where both sides are image file names, so paths with drive
    letters or colons (``C:/faces/b.png``) still work."""
    from genkit.core.reading import IMAGE_EXTENSIONS

    for i in range(len(text) - 1, 0, -1):
        if text[i] == ":":
            head, tail = text[:i], text[i + 1:]
            if Path(head).suffix.lower() in IMAGE_EXTENSIONS and Path(tail).suffix.lower() in IMAGE_EXTENSIONS:
                return head, tail
    return text, None


def _edit(args) -> int:
    from genkit.core.checkpoints import atomic_torch_save
    from genkit.core.device import resolve_device
    from genkit.core.saving import save_label_map
    from genkit.models.portrait.editor import PortraitEditor

    folder_mode = Path(args.target).is_dir()
    _check_options(args, folder_mode)
    _fill_mode_defaults(args)
    out = Path(args.out)
    _check_outputs(args, out, folder_mode)
    weights = "raw" if args.no_ema else (args.generator or "auto")
    editor = PortraitEditor.from_checkpoint(args.checkpoint, parser=args.parser, device=resolve_device(args.device),
                                            weights=weights, grow=args.grow, feather=args.feather,
                                            fill=args.fill)
    editor.reading = reading_policy(args)
    print(f"generator weights: {editor.weights} ({editor.weights_reason})")
    if folder_mode:
        return _edit_folders(args, editor, out)
    components = {}
    for name in COMPONENT_FLAGS:
        value = getattr(args, f"src_{name}")
        if value:
            components[name] = split_source(value)
    meta = {**editor.metadata(), "target": args.target, "target_mask": args.mask or "parsed",
            "components": {k: f"{v[0]}:{v[1]}" if v[1] else v[0] for k, v in components.items()}}

    if args.sample:
        results = editor.sample(args.target, args.mask, args.sample, n=args.num, seed=args.seed,
                                temperature=args.temperature)
        paths = [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(len(results))]
        meta.update(sampled=args.sample, seed=args.seed, temperature=args.temperature)
    else:
        results, paths = [_one_edit(args, editor, components, meta)], [out]
    meta.update(image_reading=editor.reading.record())
    if editor.input_conversions:
        meta["input_conversions"] = dict(editor.input_conversions)

    for i, (res, path) in enumerate(zip(results, paths)):
        res.save(path, metadata=meta)
        print(f"wrote {path} ({res.operation}{', ' + '; '.join(res.notes[1:]) if res.notes[1:] else ''})")
    if args.save_mask:
        mask_path = out.with_name(f"{out.stem}_mask.png")
        save_label_map(results[0].labels, mask_path)  # the label map drawn, at the output's size
        print(f"wrote {mask_path}")
    if args.save_codes:
        atomic_torch_save({"codes": [r.codes for r in results], "sources": [r.sources for r in results],
                           "operation": results[0].operation}, args.save_codes)
        print(f"wrote {args.save_codes}")
    _provenance_notes(meta)
    return 0


def _one_edit(args, editor, components: dict, meta: dict):
    """The single edit the options ask for (detect + edit, regenerate, transfer or reconstruct); notes it in
    ``meta``."""
    from genkit.core.errors import ConfigError

    meta.update(region=args.region, grow=args.grow, feather=args.feather)
    if args.detect:
        from genkit.models.parsing.detect import MTCNNDetector

        if args.face_scale <= 0:
            raise ConfigError("--face-scale must be positive")
        meta["detected"] = True
        return editor.edit_photo(args.target, MTCNNDetector(device=args.device), components, args.face_scale)
    if args.edited_mask:
        meta["edited_mask"] = args.edited_mask
        return editor.regenerate(args.target, args.mask, args.edited_mask, components, region=args.region)
    if components:
        return editor.transfer(args.target, args.mask, components, region=args.region)
    return editor.reconstruct(args.target, args.mask, region=args.region)


def _provenance_notes(meta: dict) -> None:
    if meta.get("random_weights") or meta.get("training", {}).get("random_weights"):
        print("note: RANDOM pretrained weights were used by this model's training or this edit (see the metadata)")
    if meta.get("training", {}).get("synthetic_data"):
        print("note: this model was trained on SYNTHETIC faces (smoke/demo quality only)")


def face_folder(folder: Path) -> list[tuple[Path, Path | None]]:
    """``(image, mask or None)`` of a folder: ``images/`` + ``masks/`` (masks optional), or plain images."""
    from genkit.core.reading import list_images

    images = folder / "images"
    if not images.is_dir():
        return [(p, None) for p in list_images(folder)]
    masks = folder / "masks"
    return [(p, (masks / f"{p.stem}.png") if (masks / f"{p.stem}.png").exists() else None)
            for p in list_images(images)]


def _edit_folders(args, editor, out: Path) -> int:
    import torch
    from tqdm import tqdm

    from genkit.core.saving import save_image

    components = [c.strip() for c in args.transfer.split(",") if c.strip()]
    components = list(editor.components) if components == ["all"] else components
    targets, donors = face_folder(Path(args.target)), face_folder(Path(args.donors))
    grid, rows = [], []
    meta = {**editor.metadata(), "targets": args.target, "donors": args.donors, "transferred": components}
    for t_img, t_mask in tqdm(targets, desc="editing", unit="target", disable=len(targets) < 2):
        row = editor.transfer_grid([(t_img, t_mask)], [(d, m) for d, m in donors], components)[0]
        for (d_img, _), res in zip(donors, row):
            res.save(out / f"{t_img.stem}__{d_img.stem}.png", metadata={**meta, "target": str(t_img),
                                                                        "donor": str(d_img)})
        rows.append((t_img, row))
    size = editor.image_size
    first = [torch.ones(3, size, size)] + [_tile(editor, d, size) for d, _ in donors]
    grid.append(first)
    for t_img, row in rows:
        grid.append([_tile(editor, t_img, size)] + [_resized(r.image, size) for r in row])
    from torchvision.utils import make_grid

    image = make_grid(torch.stack([t for r in grid for t in r]), nrow=len(donors) + 1, padding=2, pad_value=1.0)
    path = save_image(image, out / "grid.png", metadata={**meta, "layout": "first row: donors; each row: target, "
                                                                           "then the target with each donor's "
                                                                           f"{'+'.join(components)}"})
    print(f"wrote {len(targets) * len(donors)} edits and {path} ({len(targets)} targets x {len(donors)} donors, "
          f"{', '.join(components)})")
    _provenance_notes(meta)
    return 0


def _resized(image, size: int):
    import torch

    if image.shape[-1] == size:
        return image
    return torch.nn.functional.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False)[0].clamp(0, 1)


def _tile(editor, path: Path, size: int):
    image, _ = editor._load_image(path)
    return _resized(image, size)


# options only one mode reads (default None, so a given one is told from the default): dest -> (the flag, the option
# that mode needs, the default it takes there)
MODE_OPTIONS = {"num": ("-n/--num", "--sample", 4), "seed": ("--seed", "--sample", 0),
                "temperature": ("--temperature", "--sample", 1.0), "face_scale": ("--face-scale", "--detect", 1.0),
                "transfer": ("--transfer", "--donors", "all")}


def _fill_mode_defaults(args) -> None:
    """The defaults of the mode-only options (and --region), once :func:`_check_options` has seen what was given."""
    for dest, (_, _, default) in MODE_OPTIONS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    args.region = args.region or "edit"


def _check_options(args, folder_mode: bool) -> None:
    """Refuse, before any work, options that contradict each other or that the chosen edit would ignore (the
    metadata would claim what was not done): one line naming both."""
    from genkit.core.errors import ConfigError

    given = [flag for name, flag in COMPONENT_FLAGS.items() if getattr(args, f"src_{name}")]
    for dest, (flag, needs, _) in MODE_OPTIONS.items():
        if getattr(args, dest) is not None and not getattr(args, needs[2:]):
            raise ConfigError(f"{flag} only applies with {needs}; without {needs} it would be ignored (add {needs} "
                              f"or drop {flag.split('/')[-1]})")
    if args.region == "face" and (args.sample or args.donors):
        raise ConfigError(f"--region face cannot be combined with {'--sample' if args.sample else '--donors'} (it "
                          "regenerates only the sampled or transferred components); drop --region face")
    besides = (["--edited-mask"] if args.edited_mask else []) + given
    if args.sample and besides:
        raise ConfigError(f"--sample cannot be combined with {besides[0]}: sampling draws one component from the "
                          "prior for the target's own mask and components; edit first, then sample on the output")
    for part in ("--left-eye", "--right-eye"):
        if args.src_eyes and part in given:
            raise ConfigError(f"--eyes and {part} contradict each other (--eyes sets both eyes); give one of them")
    if args.no_ema and args.generator not in (None, "raw"):
        raise ConfigError(f"--no-ema and --generator {args.generator} contradict each other (--no-ema is "
                          "--generator raw); give one of them")
    if folder_mode and not args.donors:
        raise ConfigError(f"{args.target}: --target is a directory; editing a folder of targets needs --donors DIR")
    if args.donors and not folder_mode:
        raise ConfigError("--donors needs a folder --target (every target x every donor)")
    if folder_mode and (given or args.edited_mask or args.sample or args.mask):
        raise ConfigError("with --donors, choose the components with --transfer (not --mouth/--hair/..., --mask, "
                          "--edited-mask or --sample)")
    if folder_mode and (args.save_mask or args.save_codes):
        raise ConfigError(f"{'--save-mask' if args.save_mask else '--save-codes'} writes one edit's label map or "
                          "codes; it cannot be combined with --donors (each output's metadata names its sources)")
    if folder_mode and Path(args.out).suffix:
        raise ConfigError(f"with --donors, --out is a folder (got {Path(args.out).name})")
    if args.detect and (folder_mode or args.mask or args.edited_mask or args.sample):
        raise ConfigError("--detect edits one photo: it cannot be combined with --mask, --edited-mask, --sample or "
                          "folders (the aligned face is parsed with --parser)")
    if args.detect and args.save_mask:
        raise ConfigError("--save-mask cannot be combined with --detect (the aligned face is warped back into the "
                          "photo, its label map is not); `genkit parse --size photo` writes the output's label map")
    if args.detect and args.region == "face":
        raise ConfigError("--region face cannot be combined with --detect (the detected face is edited with "
                          "--region edit)")


def _outputs(args, out: Path) -> list[tuple[str, Path]]:
    """Every file one edit writes, labelled by the option that names it (metadata sidecars included)."""
    from genkit.core.metadata import sidecar_path

    images = ([("--out", out.with_name(f"{out.stem}_{i}{out.suffix}")) for i in range(max(args.num, 1))]
              if args.sample else [("--out", out)])
    files = images + [(f"{label} (its metadata sidecar)", sidecar_path(p)) for label, p in images
                      if p.suffix.lower() != ".png"]
    if args.save_mask:
        files.append(("--save-mask", out.with_name(f"{out.stem}_mask.png")))
    return files + [("--save-codes", Path(args.save_codes))] if args.save_codes else files


def _folder_outputs(args, out: Path) -> list[tuple[str, Path]]:
    """Every file a folder edit writes: one per target x donor, and the grid."""
    donors = face_folder(Path(args.donors))
    files = [(f"--out ({t.name} x {d.name})", out / f"{t.stem}__{d.stem}.png")
             for t, _ in face_folder(Path(args.target)) for d, _ in donors]
    return files + [("--out (the grid)", out / "grid.png")]


def _check_outputs(args, out: Path, folder_mode: bool) -> None:
    """Refuse, before any work, an unwritable output, one that would replace an input (the image, --save-mask,
    --save-codes, the --sample files) or another output, or a folder output that is a folder of inputs."""
    from genkit.core.outputs import check_distinct_outputs, check_not_inputs, check_output_dir, check_output_file
    from genkit.core.saving import IMAGE_FORMATS

    if folder_mode:
        check_output_dir(out, "--out")
    else:
        check_output_file(out, "--out", IMAGE_FORMATS)  # the format follows the extension
    if args.save_codes:
        check_output_file(args.save_codes, "--save-codes")
    inputs = [("--target", args.target), ("--mask", args.mask), ("--edited-mask", args.edited_mask),
              ("--checkpoint", args.checkpoint), ("--parser", args.parser), ("--donors", args.donors)]
    for name, flag in COMPONENT_FLAGS.items():
        if getattr(args, f"src_{name}"):
            inputs += [(flag, p) for p in split_source(getattr(args, f"src_{name}"))]
    if folder_mode:
        inputs += [(label, Path(folder) / sub) for label, folder in inputs[-1:] + inputs[:1] if folder
                   for sub in ("images", "masks") if (Path(folder) / sub).is_dir()]
        check_not_inputs(inputs, folders=[("--out", out)])
        return check_distinct_outputs(_folder_outputs(args, out))
    files = _outputs(args, out)
    check_not_inputs(inputs, files=files)
    check_distinct_outputs(files)
