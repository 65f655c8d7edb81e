"""``genkit edit``: portrait editing with a trained mask-guided GAN.

    genkit edit --checkpoint last.ckpt --target a.png --mask a_mask.png -o recon.png
    genkit edit --checkpoint last.ckpt --target a.png --mask a_mask.png --mouth b.png:b_mask.png --hair c.png \\
        --parser parser.ckpt -o out.png
    genkit edit --checkpoint last.ckpt --target a.png --mask a_mask.png --edited-mask a_bigger_eyes.png -o out.png
    genkit edit --checkpoint vae.ckpt --target a.png --mask a_mask.png --sample mouth -n 4 -o mouths.png

A component source is ``IMG`` or ``IMG:MASK``; photos without a mask are parsed with ``--parser``. Outputs are
written atomically as PNG with the edit's metadata (operation, sources, checkpoint, random-weight provenance);
``--save-codes`` also writes the component codes that were used (a torch file, loadable with weights_only).
"""

from __future__ import annotations

from pathlib import Path

from genkit.cli.reading import add_reading_options, reading_policy

COMPONENT_FLAGS = {"left_eye": "--left-eye", "right_eye": "--right-eye", "eyes": "--eyes", "mouth": "--mouth",
                   "skin": "--skin", "hair": "--hair"}


def register(sub) -> None:
    from genkit.cli import add_device_option

    p = sub.add_parser("edit", help="edit portraits: reconstruct, transfer components, regenerate from an edited "
                                    "mask, sample component appearances")
    p.add_argument("--checkpoint", required=True, help="portrait checkpoint (.ckpt from genkit-train) or an export")
    p.add_argument("--target", required=True, help="target photo (supplies layout and background)")
    p.add_argument("--mask", help="label map of the target (8-bit PNG, model schema); parsed with --parser if absent")
    for name, flag in COMPONENT_FLAGS.items():
        p.add_argument(flag, dest=f"src_{name}", metavar="IMG[:MASK]",
                       help=f"take the {name.replace('_', ' ')} from this face")
    p.add_argument("--edited-mask", help="draw the face for this edited label map (appearance from the target)")
    p.add_argument("--sample", metavar="COMPONENT", help="draw -n appearances of this component from the prior "
                                                         "(VAE-trained models)")
    p.add_argument("-n", "--num", type=int, default=4, help="number of samples with --sample")
    p.add_argument("--seed", type=int, default=0, help="random seed of --sample")
    p.add_argument("--temperature", type=float, default=1.0, help="prior scale with --sample")
    p.add_argument("--parser", help="face-parser checkpoint, for photos given without a mask")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator weights instead of the EMA ones")
    add_device_option(p)
    p.add_argument("--save-codes", metavar="PATH", help="also write the component codes used (torch file)")
    p.add_argument("--save-mask", action="store_true", help="also write the label map used, as OUT_mask.png")
    p.add_argument("-o", "--out", required=True,
                   help="output image; the format follows the extension (png, jpg, webp, tif, bmp; metadata in the "
                        "PNG or a NAME.EXT.json sidecar). With --sample: OUT_0.png, OUT_1.png, ...")
    add_reading_options(p, "photos")
    p.set_defaults(handler=_edit)


def split_source(text: str) -> tuple[str, str | None]:
    """``IMG`` or ``IMG:MASK``. A ':' splits only where both sides are image file names, so paths with drive
    letters or colons (``C:/faces/b.png``) still work."""
    from genkit.io import IMAGE_EXTENSIONS

    for i in range(len(text) - 1, 0, -1):
        if text[i] == ":":
            head, tail = text[:i], text[i + 1:]
            if Path(head).suffix.lower() in IMAGE_EXTENSIONS and Path(tail).suffix.lower() in IMAGE_EXTENSIONS:
                return head, tail
    return text, None


def _edit(args) -> int:
    from genkit.device import resolve_device
    from genkit.errors import ConfigError
    from genkit.io import IMAGE_FORMATS, atomic_torch_save, check_output_file, save_label_map
    from genkit.models.portrait.editor import PortraitEditor

    if args.sample and args.edited_mask:
        raise ConfigError("--sample and --edited-mask cannot be combined")
    out = Path(args.out)
    check_output_file(out, "--out", IMAGE_FORMATS)  # before any work: the format follows the extension
    if args.save_codes:
        check_output_file(args.save_codes, "--save-codes")
    editor = PortraitEditor.from_checkpoint(args.checkpoint, parser=args.parser, device=resolve_device(args.device),
                                            use_ema=not args.no_ema)
    editor.reading = reading_policy(args)
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
        if args.edited_mask:
            result = editor.regenerate(args.target, args.mask, args.edited_mask, components)
            meta["edited_mask"] = args.edited_mask
        elif components:
            result = editor.transfer(args.target, args.mask, components)
        else:
            result = editor.reconstruct(args.target, args.mask)
        results, paths = [result], [out]
    meta.update(image_reading=editor.reading.record())
    if editor.input_conversions:
        meta["input_conversions"] = dict(editor.input_conversions)

    for i, (res, path) in enumerate(zip(results, paths)):
        res.save(path, metadata=meta)
        print(f"wrote {path} ({res.operation}{', ' + '; '.join(res.notes) if res.notes else ''})")
    if args.save_mask:
        mask_path = out.with_name(f"{out.stem}_mask.png")
        save_label_map(results[0].mask, mask_path)
        print(f"wrote {mask_path}")
    if args.save_codes:
        atomic_torch_save({"codes": [r.codes for r in results], "sources": [r.sources for r in results],
                           "operation": results[0].operation}, args.save_codes)
        print(f"wrote {args.save_codes}")
    if meta.get("random_weights") or meta.get("training", {}).get("random_weights"):
        print("note: RANDOM pretrained weights were used by this model's training or this edit (see the metadata)")
    if meta.get("training", {}).get("synthetic_data"):
        print("note: this model was trained on SYNTHETIC faces (smoke/demo quality only)")
    return 0
