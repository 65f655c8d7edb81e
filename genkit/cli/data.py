"""``genkit data synth|prepare|check``"""

from __future__ import annotations

from genkit.cli.limits import add_size_ceiling, non_empty_path
from genkit.cli.reading import add_reading_options, reading_policy

PREPARE_DATASETS = ("celebamask-hq",)
OVERWRITE_HELP = ("replace a dataset genkit wrote in --out as a whole (without it such a folder is refused; files "
                  "genkit did not write are never replaced)")
CHECK_SOURCES = ("folder", "helen", "celebamask", "celebamask_raw")  # genkit.data.sources.FACE_SOURCES on disk


def register(sub) -> None:
    p = sub.add_parser("data", help="dataset tools: synthetic faces, dataset preparation, checking a dataset")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = dsub.add_parser("synth", help="write synthetic faces in the generic folder layout (images/, masks/, schema)")
    s.add_argument("--out", type=non_empty_path, required=True, help="output folder")
    s.add_argument("-n", type=int, default=100, help="number of faces")
    s.add_argument("--size", type=int, default=128, help="side of the square images in pixels")
    s.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same faces)")
    s.add_argument("--overwrite", action="store_true",
                   help=OVERWRITE_HELP)
    add_size_ceiling(s, "--size")
    s.set_defaults(handler=_synth)

    pr = dsub.add_parser("prepare", help="turn a downloaded dataset into label maps + official splits",
                         description="celebamask-hq: merge the per-part masks of CelebAMask-HQ as distributed "
                         "(--src holds CelebA-HQ-img/, CelebAMask-HQ-mask-anno/, CelebA-HQ-to-CelebA-mapping.txt) "
                         "into OUT/masks/{id}.png (19 classes), copy the photos to OUT/images/, and write "
                         "OUT/schema.json, OUT/splits/{train,val,test}.txt and OUT/prepare.json. --src is only read.")
    pr.add_argument("dataset", choices=PREPARE_DATASETS, help="which dataset layout --src holds")
    pr.add_argument("--src", required=True, help="the unpacked dataset folder (never modified)")
    pr.add_argument("--out", type=non_empty_path, required=True, help="output folder (outside --src)")
    pr.add_argument("--size", type=int, default=None,
                    help="also resize photos (bicubic) and masks (nearest) to SIZE x SIZE (default: keep)")
    pr.add_argument("--on-bad-file", choices=("error", "skip"), default="error",
                    help="stop at the first bad file (default) or skip and report bad images")
    pr.add_argument("--workers", type=int, default=0, help="worker processes (0: none)")
    pr.add_argument("--overwrite", action="store_true",
                    help=OVERWRITE_HELP)
    pr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_reading_options(pr, "photos")
    add_size_ceiling(pr, "--size")
    pr.set_defaults(handler=_prepare)

    c = dsub.add_parser("check", help="decode and validate every sample of an image+mask dataset",
                        description="Reads every image and label map of the chosen splits the way training "
                        "would and reports bad files. Exit code 1 if any file is bad.")
    c.add_argument("source", choices=CHECK_SOURCES, help="the dataset layout under --root")
    c.add_argument("--root", required=True, help="dataset folder")
    c.add_argument("--split", choices=("train", "val", "test", "all"), default="all", help="which split to check")
    c.add_argument("--target-schema", default="helen11", help="label schema the masks are mapped to (as in training)")
    c.add_argument("--on-bad-file", choices=("error", "skip"), default="skip",
                   help="skip (default): report every bad file; error: stop at the first")
    c.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of samples in the validation split (datasets without official splits)")
    c.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of samples in the test split (datasets without official splits)")
    c.add_argument("--seed", type=int, default=0, help="seed of the split (datasets without official splits)")
    add_reading_options(c, "photos")
    c.set_defaults(handler=_check)


def _synth(args) -> int:
    from genkit.data.synthetic import write_synthetic_folder
    from genkit.core.errors import ConfigError

    from genkit.core.files import replaced_entries
    from genkit.core.outputs import check_dataset_output, check_output_dir

    if args.n < 1 or args.size < 16:
        raise ConfigError("need -n >= 1 and --size >= 16")
    check_output_dir(args.out, "--out")
    replaced = check_dataset_output(args.out, args.overwrite)
    with replaced_entries(args.out, replaced) as staging:  # the old dataset stays whole until the new one is
        write_synthetic_folder(staging, args.n, args.size, args.seed)
    print(f"wrote {args.n} synthetic faces to {args.out} (images/, masks/, schema.json)"
          + ("; replaced the dataset that was there" if replaced else ""))
    return 0


def _prepare(args) -> int:
    from genkit.data.celebamask import prepare_celebamask
    from genkit.core.errors import ConfigError

    from genkit.core.files import replaced_entries
    from genkit.core.outputs import check_dataset_output, check_not_inputs, check_output_dir

    if args.workers < 0:
        raise ConfigError("--workers must be >= 0")
    check_output_dir(args.out, "--out")
    check_not_inputs({"--src": args.src}, folders={"--out": args.out})
    replaced = check_dataset_output(args.out, args.overwrite, {"--src": args.src})
    with replaced_entries(args.out, replaced) as staging:  # the old dataset stays whole until the new one is
        report = prepare_celebamask(args.src, staging, size=args.size, on_bad_file=args.on_bad_file,
                                    workers=args.workers, progress=not args.no_progress, reading=reading_policy(args))
    report.out = args.out
    print(report.summary())
    return 0


def _check(args) -> int:
    from types import SimpleNamespace

    from tqdm import tqdm

    from genkit.data.datasets import AllSamplesBadError
    from genkit.data.schemas import get_schema
    from genkit.data.sources import build_face_dataset
    from genkit.data.transforms import PairedTransform

    target = get_schema(args.target_schema)
    hp = SimpleNamespace(source=args.source, root=args.root, strict_modes=args.strict_modes, transparency=args.transparency,
                         on_bad_file=args.on_bad_file, val_fraction=args.val_fraction,
                         test_fraction=args.test_fraction, seed=args.seed, image_size=64, n_synthetic=0)
    splits = ("train", "val", "test") if args.split == "all" else (args.split,)
    bad: set[str] = set()
    for split in splits:
        try:
            ds = build_face_dataset(hp, split, PairedTransform(64, target), target)
        except AllSamplesBadError as exc:  # training refuses such a split; a check reports it like the others
            good, skipped = 0, exc.skipped
        else:
            # skip mode validated everything while building; error mode reads every sample now
            if args.on_bad_file == "error":
                with tqdm(total=len(ds), desc=f"check {split}", unit="img", leave=False, disable=None) as bar:
                    for i in range(len(ds)):  # the bar shows on a terminal only, and is cleared on error
                        ds.load(i)
                        bar.update()
            good, skipped = len(ds), getattr(ds, "skipped", [])
        bad.update(problem for _, problem in skipped)  # a file outside every split is reported by each split
        print(f"{split}: {good} good samples" + (f", {len(skipped)} bad" if skipped else ""))
        for _, problem in skipped:
            print(f"  bad: {problem}")
    return 1 if bad else 0
