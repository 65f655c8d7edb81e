"""``genkit ui``: a local web app to edit portraits and stylise images (needs ``pip install genkit[ui]``).

    genkit ui --checkpoint portrait.ckpt --parser parser.ckpt --allow-random
    genkit ui --decoder decoders.ckpt --host 0.0.0.0 --auth me:secret

It listens on 127.0.0.1 (this machine only) unless --host says otherwise, never opens a public share link unless
--share is given, and serves only files in its --out folder. Named API endpoints (/parse, /edit, /sample,
/stylize) work with gradio_client (see docs/ui.md).
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from genkit.cli import add_device_option
    from genkit.cli.limits import non_empty_path

    p = sub.add_parser("ui", help="edit portraits and stylise images in the browser (a local web app)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="portrait checkpoint (.ckpt from genkit-train) or export, for editing")
    p.add_argument("--parser", metavar="NAME|CKPT", help="face parser: bisenet-celebamask or a parser checkpoint")
    p.add_argument("--decoder", metavar="CKPT", help="style decoder checkpoint (fast path; default: optimisation)")
    p.add_argument("--steps", type=int, default=30, help="optimisation steps without --decoder")
    p.add_argument("--allow-random", action="store_true",
                   help="run style transfer with RANDOM VGG weights if the real file is missing (results are marked)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--auth", metavar="USER:PASS", help="require this login")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--concurrency", type=int, default=1, help="heavy calls run at once; more users wait in a queue")
    p.add_argument("--out", type=non_empty_path, default="genkit-ui", help="output folder: uploads, results, downloads")
    add_device_option(p)
    p.set_defaults(handler=_ui)


def _ui(args) -> int:
    from genkit.core.device import resolve_device
    from genkit.core.errors import ConfigError

    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError("genkit ui needs Gradio: pip install 'genkit[ui]'") from None
    from genkit.apps.ui.app import build_app, parse_auth, serve
    from genkit.apps.ui.portrait import PortraitService
    from genkit.apps.ui.style import StyleService

    if args.concurrency < 1:
        raise ConfigError("--concurrency must be >= 1")
    auth = parse_auth(args.auth)
    device = str(resolve_device(args.device))
    portrait = PortraitService.load(args.checkpoint, args.parser, device)
    style = StyleService(args.decoder, args.allow_random, device, steps=args.steps)
    app = build_app(portrait, style, args.out, args.concurrency)
    print(f"genkit ui: http://{args.host}:{args.port} (outputs in {app.genkit_outputs.root}; Ctrl+C stops)",
          flush=True)
    serve(app, args.host, args.port, auth, share=args.share)
    return 0
