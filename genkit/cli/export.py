"""``genkit export``: share trained models.

    genkit export pretrained runs/parser/runs/2026-12-07_10-00-00 -o my-parser     # a model folder + card
    genkit export onnx my-parser -o my-parser-onnx                                   # ONNX, checked with onnxruntime
    genkit export push my-parser --repo user/my-parser                               # upload to the hub

A model folder (``config.json``, ``model.safetensors``, ``README.md``) loads wherever a checkpoint does
(``--parser``, ``--decoder``, ``--checkpoint``, ``load_parser``, ``Stylizer``, ``PortraitEditor``), by path or hub id.
"""

from __future__ import annotations

import argparse

from genkit.cli.limits import non_empty_path

SOURCE_HELP = ("a run folder, a checkpoint (parser, decoders, portrait), a BiSeNet file (79999_iter.pth), a model "
               "folder, a hub id (user/name) or bisenet-celebamask")


def register(sub) -> None:
    p = sub.add_parser("export", help="share trained models: model folders (safetensors + card), ONNX, hub upload",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    esub = p.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    pre = esub.add_parser("pretrained", help="a model folder: config.json, model.safetensors and a model card")
    pre.add_argument("source", metavar="RUN_OR_CKPT", help=SOURCE_HELP)
    pre.add_argument("-o", "--out", type=non_empty_path, required=True, metavar="DIR", help="the model folder to write")
    pre.add_argument("--repo", metavar="USER/NAME", help="the hub id the card's loading examples use")
    pre.add_argument("--overwrite", action="store_true",
                     help="replace the model files genkit wrote in an existing folder (other files are never touched)")
    pre.set_defaults(handler=run_pretrained)
    onx = esub.add_parser("onnx", help="the networks as ONNX files, each checked against PyTorch with onnxruntime")
    onx.add_argument("source", metavar="RUN_OR_CKPT", help=SOURCE_HELP)
    onx.add_argument("-o", "--out", type=non_empty_path, required=True, metavar="DIR",
                     help="folder for the .onnx files")
    onx.add_argument("--overwrite", action="store_true",
                     help="replace .onnx files of the same names that genkit wrote (other files are never touched)")
    onx.set_defaults(handler=run_onnx)
    push = esub.add_parser("push", help="upload a model folder to the Hugging Face hub (huggingface_hub)")
    push.add_argument("folder", metavar="DIR", help="a model folder written by `genkit export pretrained`")
    push.add_argument("--repo", required=True, metavar="USER/NAME", help="the hub repository (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--dry-run", action="store_true", help="check and list the payload, upload nothing")
    push.set_defaults(handler=run_push)


def _check_not_inputs(args) -> None:
    """Before any work: the output folder may not be the source (a model folder exported onto itself)."""
    from genkit.core.outputs import check_not_inputs

    check_not_inputs({"source": args.source}, folders={"--out": args.out})


def run_pretrained(args) -> int:
    from genkit.apps.export import export_pretrained

    _check_not_inputs(args)
    out = export_pretrained(args.source, args.out, overwrite=args.overwrite, ref=args.repo)
    print(f"wrote {out} (config.json, model.safetensors, README.md); loads back bit-identically")
    return 0


def run_onnx(args) -> int:
    from genkit.apps.export import export_onnx

    _check_not_inputs(args)
    for r in export_onnx(args.source, args.out, overwrite=args.overwrite):
        labels = ", labels identical" if r.get("labels_identical") else ""
        print(f"wrote {r['file']}: {','.join(r['inputs'])} -> {','.join(r['outputs'])}; onnxruntime vs PyTorch "
              f"max |diff| {r['max_abs_diff']:.2g} (limit {r['tolerance']:.2g}){labels}")
    return 0


def run_push(args) -> int:
    from genkit.apps.export import push

    payload = push(args.folder, args.repo, private=args.private, dry_run=args.dry_run)
    for name, size in payload["files"].items():
        print(f"{name}\t{size} bytes")
    print(f"{'would upload' if args.dry_run else 'uploaded'} a {payload['kind']} to {args.repo}"
          + (f": {payload['url']}" if "url" in payload else ""))
    return 0
