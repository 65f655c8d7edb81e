"""``genkit weights list|import``"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("weights", help="pretrained weights: status, import local files")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    p_list = wsub.add_parser("list", help="show each registered file, its status and cache path")
    p_list.set_defaults(handler=_list)
    p_imp = wsub.add_parser("import", help="check a local file's hash and install it in the cache")
    p_imp.add_argument("name", help="registry name (see `genkit weights list`), e.g. vgg19")
    p_imp.add_argument("file", help="the downloaded weights file")
    p_imp.set_defaults(handler=_import)


def _list(args) -> int:
    from genkit.core import weights

    print(f"cache: {weights.cache_dir()}")
    width = max(15, *(len(name) for name in weights.REGISTRY))
    print(f"{'name':<{width}} {'status':<14} {'file':<45} description")
    for name, e in weights.REGISTRY.items():
        print(f"{name:<{width}} {weights.status(name):<14} {e.file_name:<45} {e.description}")
        print(f"{'':<{width}} {'':<14} from {e.source()}")
    return 0


def _import(args) -> int:
    from genkit.core import weights

    dest = weights.import_weights(args.name, args.file)
    print(f"installed {args.name} -> {dest}")
    return 0
