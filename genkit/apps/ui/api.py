"""Named API endpoints for ``gradio_client``: ``/parse``, ``/edit``, ``/sample`` and ``/stylize``.

They take and return files (label maps as 8-bit PNGs of label values, images as PNG), hold no state between
calls, and share the tabs' services and the heavy-call queue.
"""

from __future__ import annotations

from genkit.apps.ui.limits import read_label_upload, read_upload
from genkit.apps.ui.messages import shown_errors
from genkit.apps.ui.portrait import PortraitService
from genkit.apps.ui.session import Outputs
from genkit.apps.ui.style_tab import StyleTab
from genkit.core.saving import save_image, save_label_map


class Api:
    def __init__(self, portrait: PortraitService, style: StyleTab, outputs: Outputs):
        self.portrait, self.style, self.outputs = portrait, style, outputs
        self.folder = outputs.new_session()

    def _labels(self, path, size, what):
        return None if path is None else read_label_upload(path, self.portrait.schema.num_classes, size, what)

    def parse(self, photo):
        img = read_upload(photo, "photo")
        labels = self.portrait.parse(img)
        path = save_label_map(labels, self.outputs.path(self.folder, "parsed", ".png"))
        return str(path), self.portrait.schema.colorize(labels)

    def edit(self, photo, mask, edited_mask, donor, donor_mask, components, alpha):
        img = read_upload(photo, "photo")
        labels = self._labels(mask, img.size, "mask")
        labels = self.portrait.parse(img) if labels is None else labels
        edited = self._labels(edited_mask, img.size, "edited mask")
        names = [c.strip() for c in (components or "").split(",") if c.strip()]
        d_img = read_upload(donor, "donor") if donor is not None else None
        if names and d_img is None:
            from genkit.core.errors import ConfigError

            raise ConfigError("components were named but no donor photo was given")
        d_labels = self._labels(donor_mask, d_img.size, "donor mask") if d_img is not None else None
        out = self.portrait.edit(img, labels, edited, d_img, d_labels, names, float(alpha))
        image = save_image(out.image, self.outputs.path(self.folder, "edited", ".png"),
                           metadata={"operation": "genkit ui /edit", "notes": out.notes})
        mask_path = save_label_map(out.labels, self.outputs.path(self.folder, "edited_mask", ".png"))
        return str(image), str(mask_path), {"notes": out.notes, "mask_consistency": out.agreement}

    def sample(self, photo, mask, component, n, seed):
        img = read_upload(photo, "photo")
        labels = self._labels(mask, img.size, "mask")
        labels = self.portrait.parse(img) if labels is None else labels
        return [str(save_image(im, self.outputs.path(self.folder, f"sample_{component}", ".png")))
                for im in self.portrait.sample(img, labels, component, int(n), int(seed))]

    def stylize(self, content, style, method, alpha, size):
        path, levels, notes = self.style.run(content, style, method, alpha, size)
        return path, {"levels": levels, "notes": notes}


def build(api: Api) -> None:
    """Hidden components wired to the named endpoints (inside the open ``gr.Blocks``)."""
    import gradio as gr

    with gr.Column(visible=False):
        # files, not gr.Image: a broken upload reaches genkit's reader and its one-line message
        photo, donor = gr.File(label="photo"), gr.File(label="donor")
        mask, edited_mask, donor_mask = gr.File(), gr.File(), gr.File()
        components, alpha = gr.Textbox(label="components"), gr.Number(value=1.0, label="alpha")
        label_map, preview = gr.File(label="label_map"), gr.Image(format="png", label="preview")
        image, edited_labels, info = gr.Image(type="filepath", format="png"), gr.File(), gr.JSON()
        component, n, seed = gr.Textbox(label="component"), gr.Number(value=4, precision=0), gr.Number(value=0)
        samples = gr.Gallery(format="png")
        content, style = gr.File(label="content"), gr.File(label="style")
        method, style_alpha = gr.Textbox(value="reshuffle", label="method"), gr.Textbox(value="", label="alpha")
        size = gr.Number(value=256, precision=0, label="size")
        stylised, levels = gr.Image(type="filepath", format="png"), gr.JSON()
        buttons = [gr.Button() for _ in range(4)]
    buttons[0].click(shown_errors(api.parse), [photo], [label_map, preview], api_name="parse",
                     concurrency_id="heavy")
    buttons[1].click(shown_errors(api.edit), [photo, mask, edited_mask, donor, donor_mask, components, alpha],
                     [image, edited_labels, info], api_name="edit", concurrency_id="heavy")
    buttons[2].click(shown_errors(api.sample), [photo, mask, component, n, seed], [samples], api_name="sample",
                     concurrency_id="heavy")
    buttons[3].click(shown_errors(api.stylize), [content, style, method, style_alpha, size], [stylised, levels],
                     api_name="stylize", concurrency_id="heavy")
