"""The style tab: content and style (samples included), reshuffle / style-swap / Gram, alpha (one value or one
per level), optional semantic masks, progress while it runs, the output with its patch-usage figures."""

from __future__ import annotations

from genkit.apps.ui.inputs import image_upload
from genkit.apps.ui.limits import read_label_upload, read_upload
from genkit.apps.ui.messages import shown_errors
from genkit.apps.ui.session import Outputs
from genkit.apps.ui.style import (
    METHOD_HELP,
    METHODS,
    StyleService,
    parse_alphas,
    usage_table,
)
from genkit.core.saving import save_image


class StyleTab:
    def __init__(self, service: StyleService, outputs: Outputs):
        self.service, self.outputs = service, outputs
        self.folder = None

    def run(self, content, style, method, alpha, size, content_mask=None, style_mask=None, progress=None):
        """Stylise; returns the output file, the per-level usage figures and the notes."""
        if progress is not None:
            progress(0.05, desc="reading the images")
        c_img, s_img = read_upload(content, "content"), read_upload(style, "style")
        masks = [None, None]
        if content_mask is not None or style_mask is not None:
            from genkit.core.errors import ConfigError

            if content_mask is None or style_mask is None:
                raise ConfigError("semantic transfer needs both a content mask and a style mask")
            masks = [read_label_upload(content_mask, 256, c_img.size, "content mask"),
                     read_label_upload(style_mask, 256, s_img.size, "style mask")]
        if progress is not None:
            progress(0.2, desc=f"stylising ({self.service.path}, {method})")
        out = self.service(c_img, s_img, method, parse_alphas(alpha), int(size), *masks)
        if progress is not None:
            progress(0.95, desc="writing the result")
        self.folder = self.folder or self.outputs.new_session()
        path = save_image(out.image, self.outputs.path(self.folder, "stylised", ".png"),
                          metadata={"operation": "genkit ui stylize", "method": method, "alpha": alpha,
                                    "size": int(size), "levels": out.levels, "notes": out.notes})
        return str(path), out.levels, out.notes


def build(tab: StyleTab, contents: list[str], styles: list[str]) -> None:
    import gradio as gr

    gr.Markdown(f"> reconstruction: **{tab.service.path}**" + ("" if tab.service.decoder else
                " (image optimisation: slow on a CPU; start with `--decoder CKPT` for the fast path)"))
    with gr.Row():
        with gr.Column():
            content, _ = image_upload("Content", "content", contents)
        with gr.Column():
            style, _ = image_upload("Style", "style", styles)
        with gr.Column():
            output = gr.Image(label="Stylised (the content's size)", interactive=False, format="png",
                              elem_id="stylised", height=400)
            notes = gr.Markdown(elem_id="style-notes")
    usage = gr.Markdown(elem_id="usage")
    with gr.Row():
        method = gr.Radio(list(METHODS), value=METHODS[0], label="Method",
                          info="; ".join(f"{k}: {v}" for k, v in METHOD_HELP.items()))
        alpha = gr.Textbox(value="", label="alpha (content weight)", placeholder="default, or 0.6, or 0.8,0.7,0.6",
                           info="one value, or one per level from coarse to fine")
        size = gr.Slider(64, 1024, value=256, step=32, label="Long side (px)", elem_id="size")
    with gr.Accordion("Semantic masks (optional label maps, content label l takes style from style label l)",
                      open=False):
        with gr.Row():
            content_mask = gr.File(label="Content mask (8-bit PNG)", file_types=[".png"])
            style_mask = gr.File(label="Style mask (8-bit PNG)", file_types=[".png"])
    run_btn = gr.Button("Stylise", variant="primary", elem_id="stylise")

    def run(content, style, method, alpha, size, content_mask, style_mask, progress=gr.Progress()):
        path, levels, notes = tab.run(content, style, method, alpha, size, content_mask, style_mask, progress)
        return path, usage_table(levels), "\n".join(f"- {n}" for n in notes)

    run_btn.click(shown_errors(run), [content, style, method, alpha, size, content_mask, style_mask],
                  [output, usage, notes], api_visibility="private", api_name="ui_stylize", concurrency_id="heavy")
