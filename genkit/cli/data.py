"""``genkit data synth|prepare``"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("data", help="dataset tools: synthetic faces, dataset preparation")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = dsub.add_parser("synth", help="write synthetic faces in the generic folder layout (images/, masks/, schema)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("-n", type=int, default=100, help="number of faces")
    s.add_argument("--size", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(handler=_synth)


def _synth(args) -> int:
    from genkit.data.synthetic import write_synthetic_folder
    from genkit.errors import ConfigError

    if args.n < 1 or args.size < 16:
        raise ConfigError("need -n >= 1 and --size >= 16")
    out = write_synthetic_folder(args.out, args.n, args.size, args.seed)
    print(f"wrote {args.n} synthetic faces to {out} (images/, masks/, schema.json)")
    return 0
