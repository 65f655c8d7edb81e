"""``genkit parse PHOTO(S)|DIR --checkpoint CKPT -o OUT``: face-parsing masks for your own photos.

Writes the generic folder layout the portrait model reads (``OUT/images/NAME.png``, ``OUT/masks/NAME.png``,
``OUT/schema.json``) plus colour previews (``OUT/previews/NAME.png``). Each photo is centre-cropped to a square
and resized (default: the parser's training size), or, with ``--detect``, the largest face is detected and
aligned first (needs ``pip install facenet-pytorch --no-deps``).
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from genkit.cli import add_device_option

    p = sub.add_parser("parse", help="face-parsing masks for photos (images/ + masks/ + schema.json + previews/)",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("inputs", nargs="+", metavar="PHOTO|DIR", help="photos and/or folders of photos")
    p.add_argument("--checkpoint", required=True, help="a parser checkpoint (experiment=parser_*)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=None,
                   help="output side in pixels (default: the parser's training size; must be divisible by 2**depth)")
    p.add_argument("--detect", action="store_true",
                   help="detect and align the largest face first (facenet-pytorch MTCNN)")
    p.add_argument("--face-scale", type=float, default=1.0, help="with --detect: >1 includes more around the face")
    p.add_argument("--schema", default=None,
                   help="required output schema (e.g. helen11); a parser of another schema is mapped through a "
                        "declared table (celebamask19 -> helen11) or refused")
    p.add_argument("--convert-modes", action="store_true",
                   help="convert grayscale / RGBA / palette / 16-bit photos to RGB instead of refusing them")
    p.add_argument("--skip-errors", action="store_true",
                   help="skip photos that cannot be read or have no detected face (reported at the end)")
    add_device_option(p)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for inference (default: torch's choice; 1 is often faster on a busy machine)")
    p.set_defaults(handler=_parse)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Photo files from files and folders; missing paths and duplicate names are errors."""
    from genkit.errors import ConfigError, DataError
    from genkit.io import list_images

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(path, "does not exist")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen and seen[f.stem].resolve() != f.resolve():
            raise ConfigError(f"two inputs would both be written as {f.stem}.png: {seen[f.stem]} and {f}; "
                              "rename one or parse them into different folders")
        seen[f.stem] = f
    return list(dict.fromkeys(seen.values()))


def output_mapping(found, required):
    """``(schema to write, mapping or None)`` for a parser of schema ``found`` when ``required`` is asked for."""
    from genkit.data.schemas import get_schema
    from genkit.data.sources import KNOWN_MAPPINGS
    from genkit.models.parsing.checkpoint import check_schema

    if required is None:
        return found, None
    target = get_schema(required)
    if target.classes == found.classes:
        return found, None
    for m in KNOWN_MAPPINGS:
        if m.source.classes == found.classes and m.target.classes == target.classes:
            return target, m
    check_schema(found, target, "--checkpoint")  # raises the standard CheckpointError
    raise AssertionError("unreachable")


def check_existing_schema(out: Path, schema) -> None:
    from genkit.data.datasets import find_schema_file
    from genkit.data.schemas import load_schema
    from genkit.errors import ConfigError, DataError

    try:
        existing_file = find_schema_file(out)
    except DataError:
        return
    existing = load_schema(existing_file)
    if existing.classes != schema.classes:
        raise ConfigError(f"{out} already holds masks of schema {existing.name!r} ({existing.num_classes} classes) "
                          f"but this parser writes {schema.name!r} ({schema.num_classes} classes); choose another "
                          "output folder")


def _parse(args) -> int:
    from PIL import Image
    from tqdm import tqdm

    from genkit.data.schemas import save_schema
    from genkit.device import resolve_device
    from genkit.errors import ConfigError, DataError, GenkitError
    from genkit.io import read_image, save_image, save_label_map
    from genkit.models.parsing.checkpoint import load_parser_with_info
    from genkit.models.parsing.inference import center_crop_resize, predict_labels

    device = resolve_device(args.device)
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise ConfigError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    net, info = load_parser_with_info(args.checkpoint)
    schema, mapping = output_mapping(info.schema, args.schema)
    size = args.size if args.size is not None else info.image_size
    if size < net.multiple or size % net.multiple:
        raise ConfigError(f"--size {size}: must be a positive multiple of {net.multiple} for this parser "
                          f"(depth {net.depth}); it was trained at {info.image_size}")
    if args.face_scale <= 0:
        raise ConfigError("--face-scale must be positive")
    files = collect_inputs(args.inputs)
    out = Path(args.out)
    check_existing_schema(out, schema)
    detector = None
    if args.detect:
        from genkit.models.parsing.detect import MTCNNDetector

        detector = MTCNNDetector(device=device)
    net = net.to(device)
    save_schema(schema, out / "schema.json")

    written, skipped = 0, []
    bar = tqdm(files, desc="parsing", unit="photo", disable=len(files) < 2)
    for path in bar:
        try:
            photo = read_image(path, convert_modes=args.convert_modes)
            if detector is not None:
                from genkit.models.parsing.detect import detect_and_align

                crop, how = detect_and_align(photo, detector, size, path, args.face_scale)
            else:
                crop, how = center_crop_resize(photo, size)
            labels = predict_labels(net, crop, device)
        except GenkitError as exc:
            if not args.skip_errors:
                raise
            skipped.append(f"{path}: {exc.problem if isinstance(exc, DataError) else exc}")
            continue
        if mapping is not None:
            labels = mapping.apply(labels)
        meta = {"source": str(path), "source_size": list(photo.size), "checkpoint": str(args.checkpoint),
                "parser_schema": info.schema.name, "schema": schema.name, "size": size,
                "aligned": detector is not None, **how}
        save_image(crop, out / "images" / f"{path.stem}.png", metadata=meta)
        save_label_map(labels, out / "masks" / f"{path.stem}.png")
        save_image(Image.fromarray(schema.colorize(labels)), out / "previews" / f"{path.stem}.png")
        written += 1
    if written == 0:
        raise DataError(None, "no photo could be parsed:\n  " + "\n  ".join(skipped))
    print(f"parsed {written} photo(s) into {out} (images/, masks/, previews/, schema.json; schema {schema.name})")
    if skipped:
        print(f"skipped {len(skipped)}:\n  " + "\n  ".join(skipped))
    return 0
