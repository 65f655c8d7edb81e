"""The app's layout (two tabs and the API endpoints), its bundled samples, and serving it safely."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from genkit.apps.ui.limits import MAX_UPLOAD_MB
from genkit.apps.ui.portrait import PortraitService
from genkit.apps.ui.session import Outputs
from genkit.apps.ui.style import StyleService

log = logging.getLogger("genkit.ui")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
PORTRAIT_SAMPLES = ("astronaut", "grace_hopper")
CONTENT_SAMPLES = ("chelsea", "coffee", "astronaut")
STYLE_SAMPLES = ("brush_strokes", "mosaic")


def write_samples(outputs: Outputs) -> dict[str, list[str]]:
    """The bundled sample photos as files in the output folder (the only folder the app serves)."""
    from genkit.core.saving import save_image
    from genkit.data.samples import sample_photo

    folder = outputs.root / "samples"
    paths = {}
    for name in {*PORTRAIT_SAMPLES, *CONTENT_SAMPLES, *STYLE_SAMPLES}:
        path = folder / f"{name}.png"
        if not path.exists():
            save_image(sample_photo(name), path)
        paths[name] = str(path)
    return {"portrait": [paths[n] for n in PORTRAIT_SAMPLES], "content": [paths[n] for n in CONTENT_SAMPLES],
            "style": [paths[n] for n in STYLE_SAMPLES]}


def build_app(portrait: PortraitService, style: StyleService, out_dir: str | Path, concurrency: int = 1):
    """The Gradio app: a portrait tab, a style tab and the named endpoints; heavy calls share one queue with
    ``concurrency`` workers (a second user waits rather than doubling memory)."""
    outputs = Outputs(out_dir)
    os.environ["GRADIO_TEMP_DIR"] = str(outputs.root / "uploads")  # uploads stay inside the output folder
    import gradio as gr

    from genkit.apps.ui import api, portrait_tab, style_tab

    samples = write_samples(outputs)
    p_tab, s_tab = portrait_tab.PortraitTab(portrait, outputs), style_tab.StyleTab(style, outputs)
    with gr.Blocks(title="genkit", analytics_enabled=False) as app:
        gr.Markdown("## genkit: portrait editing and style transfer")
        with gr.Tabs():
            with gr.Tab("Portrait editing", id="portrait", elem_id="tab-portrait"):
                portrait_tab.build(p_tab, samples["portrait"])
            with gr.Tab("Style transfer", id="style", elem_id="tab-style"):
                style_tab.build(s_tab, samples["content"], samples["style"])
        api.build(api.Api(portrait, s_tab, outputs))
    app.queue(default_concurrency_limit=concurrency)
    app.genkit_outputs = outputs
    return app


def parse_auth(text: str | None) -> tuple[str, str] | None:
    from genkit.core.errors import ConfigError

    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth takes USER:PASS")
    return user, password


def serve(app, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          share: bool = False, block: bool = True):
    """Launch on ``host:port``; only the app's output folder is served. ``show_error``: an upload Gradio itself
    cannot read is reported by its message (genkit's own errors are page messages already)."""
    if host not in LOCAL_HOSTS and auth is None:
        log.warning("genkit ui: listening on %s without --auth: anyone who can reach this machine can use the "
                    "app and its models", host)
    return app.launch(server_name=host, server_port=port, auth=auth, share=share, inbrowser=False,
                      allowed_paths=[str(app.genkit_outputs.root)], max_file_size=f"{MAX_UPLOAD_MB}mb",
                      show_error=True, quiet=True, prevent_thread_lock=not block, footer_links=["api"],
                      ssr_mode=False, mcp_server=False)
