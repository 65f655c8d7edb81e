"""``genkit demo``: the main job on the embedded defaults (see :mod:`genkit.apps.demo.pipeline`)."""

from __future__ import annotations


def register(sub) -> None:
    from genkit.cli.limits import add_threads_option, non_empty_path

    p = sub.add_parser("demo", help="stylise sample photos, train + edit a small portrait model, compute metrics, "
                                    "write an HTML report (runs offline)")
    p.add_argument("--out", type=non_empty_path, default="outputs/demo",
                   help="output folder (report.html, images, runs/)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and budgets: the same report in about 30 s (rougher images; used by the tests)")
    p.add_argument("--no-random", dest="allow_random", action="store_false",
                   help="refuse to run with random weights when the pretrained files are missing")
    p.add_argument("--seed", type=int, default=0, help="random seed of every part of the demo")
    add_threads_option(p, "the cores that the load average leaves free")
    p.set_defaults(handler=_demo)


def _demo(args) -> int:
    from pathlib import Path

    from genkit.apps.demo.pipeline import DemoSettings, run_demo

    settings = DemoSettings(out=Path(args.out), allow_random=args.allow_random, quick=args.quick, seed=args.seed,
                            threads=args.threads)
    report = run_demo(settings)
    print(f"\ngenkit demo: report written to {report.resolve()}")
    print(f"  open it in a browser: file://{report.resolve()}")
    from genkit.core import weights

    if weights.used_random_weights():
        print("  NOTE: random pretrained-network weights were used (files missing); see `genkit weights list`.")
    return 0
