"""``genkit parse PHOTO(S)|DIR --parser NAME|CKPT -o OUT``: face-parsing masks for your own photos.

    genkit parse photo.jpg --parser parser.ckpt --size photo -o parsed/     # masks at the photo's own size
    genkit parse photos/ --parser bisenet-celebamask --schema helen11 -o parsed/
    genkit parse group.jpg --parser parser.ckpt --detect --size 256 -o parsed/

The parser is genkit's own (a checkpoint of ``genkit-train experiment=parser_*``) or a pretrained one by name:
``bisenet-celebamask`` (the community BiSeNet trained on CelebAMask-HQ, ``79999_iter.pth``; 19 classes, see
``genkit weights list``). Writes the generic folder layout the portrait model reads (``OUT/images/NAME.png``,
``OUT/masks/NAME.png``, ``OUT/schema.json``) plus colour previews (``OUT/previews/NAME.png``; ``genkit edit`` reads
them as masks too, also after painting them in an image editor). With ``--size photo`` the photo is kept whole, at
any size and aspect ratio, and its mask has the photo's size (the photo is parsed at the parser's size). With a
number (default: the parser's training size) each photo is centre-cropped to a square and resized to it, or, with
``--detect``, the largest face is detected and aligned first (needs ``pip install facenet-pytorch --no-deps``).
"""

from __future__ import annotations

from pathlib import Path

from genkit.cli.limits import (
    add_size_ceiling,
    add_threads_option,
    non_empty_path,
    positive_float,
)
from genkit.cli.reading import add_reading_options, reading_policy


def register(sub) -> None:
    from genkit.cli import add_device_option

    import argparse

    p = sub.add_parser("parse", help="face-parsing masks for photos (images/ + masks/ + schema.json + previews/)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="PHOTO|DIR", help="photos and/or folders of photos")
    p.add_argument("--parser", "--checkpoint", dest="parser", required=True, metavar="NAME|CKPT",
                   help="a pretrained parser (bisenet-celebamask) or a parser file: a checkpoint of "
                        "experiment=parser_*, or a BiSeNet 79999_iter.pth; or a model folder / hub id (user/name) "
                        "from `genkit export pretrained`")
    p.add_argument("-o", "--out", type=non_empty_path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset already in --out as a whole (without it such a folder is refused)")
    p.add_argument("--size", type=_size, default=None, metavar="N|photo",
                   help="'photo': keep each photo whole, masks at the photo's size; N: centre-crop to an N px square "
                        "(default: the parser's training size, 512 for bisenet-celebamask; genkit parsers need a "
                        "multiple of 2**depth)")
    p.add_argument("--detect", action="store_true",
                   help="detect and align the largest face first (facenet-pytorch MTCNN)")
    p.add_argument("--face-scale", type=positive_float, default=1.0, help="with --detect: >1 includes more around the face")
    p.add_argument("--schema", default=None,
                   help="required output schema (e.g. helen11); a parser of another schema is mapped through a "
                        "declared table (celebamask19 or bisenet19 -> helen11) or refused")
    p.add_argument("--skip-errors", action="store_true",
                   help="skip photos that cannot be read or have no detected face (reported at the end)")
    add_device_option(p)
    add_threads_option(p, "torch's default; 1 is often faster on a busy machine")
    add_reading_options(p, "photos")
    add_size_ceiling(p, "--size")
    p.set_defaults(handler=_parse)


def _size(text: str) -> int | str:
    import argparse

    if text == "photo":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'photo', got {text!r}") from None


def parse_whole_photo(net, photo, size: int, device):
    """(H, W) labels of a photo of any size: padded to a square (edge pixels repeated), parsed at ``size`` px,
    the labels brought back to the photo's size (nearest) and the padding cut off."""
    import numpy as np
    from PIL import Image

    from genkit.data.transforms import resize_image, resize_labels
    from genkit.models.parsing.inference import predict_labels

    arr = np.asarray(photo)
    h, w = arr.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    square = np.pad(arr, ((top, side - h - top), (left, side - w - left), (0, 0)), mode="edge")
    labels = predict_labels(net, resize_image(Image.fromarray(square), size), device)
    return resize_labels(labels, side)[top:top + h, left:left + w]


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Photo files from files and folders; missing paths and duplicate names are errors."""
    from genkit.core.errors import ConfigError, DataError
    from genkit.core.reading import list_images

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


def _parse(args) -> int:
    from genkit.core.files import replaced_entries
    from genkit.core.outputs import check_output_dir

    out = check_output_dir(args.out, "--out")  # before any work
    replaced = _check_not_inputs(args, out)
    with replaced_entries(out, replaced) as staging:  # a dataset already there is replaced only as a whole
        return _parse_into(args, out, staging)


def _parse_into(args, out: Path, dest: Path) -> int:
    from PIL import Image
    from tqdm import tqdm

    from genkit.data.schemas import save_schema
    from genkit.core.device import resolve_device
    from genkit.core.errors import ConfigError, DataError, GenkitError
    from genkit.core.reading import conversion_note, read_image
    from genkit.core.saving import save_image, save_label_map

    reading = reading_policy(args)
    device = resolve_device(args.device)
    if args.threads:  # >= 0 (the option's type); 0: torch's default
        import torch

        torch.set_num_threads(args.threads)
    # a parser of another schema than --schema comes back mapped onto it (summed class probabilities)
    net, info = _load_parser(args.parser, args.schema)
    schema = net.schema
    whole = args.size == "photo"
    if whole and args.detect:
        raise ConfigError("--size photo keeps the photo whole; --detect writes aligned face crops: give --detect a "
                          "number of pixels (--size 256), or leave --detect out")
    size = info.image_size if (args.size is None or whole) else args.size
    if size < net.multiple or size % net.multiple:
        raise ConfigError(f"--size {size}: must be a positive multiple of {net.multiple} for this parser; "
                          f"it was trained at {info.image_size}")
    if args.face_scale <= 0:
        raise ConfigError("--face-scale must be positive")
    files = collect_inputs(args.inputs)
    detector = None
    if args.detect:
        from genkit.models.parsing.detect import MTCNNDetector

        detector = MTCNNDetector(device=device)
    net = net.to(device)
    parser_sha256 = info.network.get("sha256")  # pretrained files: which one parsed
    save_schema(schema, dest / "schema.json")

    written, skipped = 0, []
    bar = tqdm(files, desc="parsing", unit="photo", disable=len(files) < 2)
    for path in bar:
        try:
            photo = read_image(path, reading)
            crop, how, labels = _parse_one(net, photo, path, size, whole, detector, args.face_scale, device)
        except GenkitError as exc:
            if not args.skip_errors:
                raise
            skipped.append(f"{path}: {exc.problem if isinstance(exc, DataError) else exc}")
            continue
        meta = {"source": str(path), "source_size": list(photo.size), "parser": str(args.parser),
                "parser_schema": info.schema.name, "schema": schema.name, "size": "photo" if whole else size,
                "aligned": detector is not None, **how, "image_reading": reading.record()}
        if parser_sha256:
            meta["parser_sha256"] = parser_sha256
        if conversion_note(photo):
            meta["conversion"] = conversion_note(photo)
        save_image(crop, dest / "images" / f"{path.stem}.png", metadata=meta)
        save_label_map(labels, dest / "masks" / f"{path.stem}.png")
        save_image(Image.fromarray(schema.colorize(labels)), dest / "previews" / f"{path.stem}.png")
        written += 1
    if written == 0:
        raise DataError(None, "no photo could be parsed:\n  " + "\n  ".join(skipped))
    print(f"parsed {written} photo(s) into {out} (images/, masks/, previews/, schema.json; schema {schema.name})")
    if skipped:
        print(f"skipped {len(skipped)}:\n  " + "\n  ".join(skipped))
    return 0


def _check_not_inputs(args, out: Path) -> list[str]:
    """Before any work: no output replaces an input photo or folder, and a dataset already in ``out`` is refused
    unless ``--overwrite``; returns the dataset entries that will be replaced."""
    from genkit.core.outputs import check_dataset_output, check_not_inputs

    inputs = [("input", p) for p in args.inputs] + [("--parser", args.parser)]
    names = [f.stem for f in collect_inputs(args.inputs)]
    sub = ("images", "masks", "previews")
    check_not_inputs(inputs, files=[("--out", out / d / f"{n}.png") for d in sub for n in names],
                     folders=[("--out", out)] + [("--out", out / d) for d in sub])
    return check_dataset_output(out, args.overwrite, inputs)


def _parse_one(net, photo, path, size: int, whole: bool, detector, face_scale: float, device):
    """The image written, how it was cut from the photo, and its labels: the whole photo (``whole``), the aligned
    face (``detector``) or the centred square, at ``size`` px."""
    from genkit.data.transforms import center_crop_resize
    from genkit.models.parsing.inference import predict_labels

    if whole:
        return photo, {"whole_photo": True}, parse_whole_photo(net, photo, size, device)
    if detector is not None:
        from genkit.models.parsing.detect import detect_and_align

        crop, how = detect_and_align(photo, detector, size, path, face_scale)
    else:
        crop, box = center_crop_resize(photo, size)
        how = {"crop_box": list(box)}
    return crop, how, predict_labels(net, crop, device)


def _load_parser(name: str, schema: str | None):
    """The parser and its info; a missing pretrained file says how to install it (``parse`` has no random mode)."""
    from genkit.core.errors import WeightsUnavailableError
    from genkit.models.parsing.checkpoint import load_parser_with_info

    try:
        return load_parser_with_info(name, expected_schema=schema)
    except WeightsUnavailableError as exc:
        lines = [line for line in str(exc).splitlines() if "allow-random" not in line and "RANDOM" not in line]
        raise WeightsUnavailableError("\n".join(lines)) from None
