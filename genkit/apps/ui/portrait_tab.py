"""The portrait tab: photo and label map, the palette-restricted mask painter, fill and undo, component transfer
from a donor with an alpha between codes, VAE samples, the result, snapshots and downloads."""

import numpy as np
from PIL import Image

from genkit.apps.ui import palette
from genkit.apps.ui.inputs import image_upload
from genkit.apps.ui.limits import read_label_upload, read_upload
from genkit.apps.ui.messages import shown_errors
from genkit.apps.ui.portrait import PortraitService
from genkit.apps.ui.session import Outputs, PortraitState, ensure_state
from genkit.core.errors import ConfigError
from genkit.core.saving import save_image, save_label_map

REGION_TINT = np.array([255, 0, 255], dtype=np.float32)


def editor_value(labels: np.ndarray, schema) -> dict:
    """The ImageEditor's value for a label map: its colours as the background, no strokes."""
    colours = schema.colorize(labels)
    opaque = np.concatenate([colours, np.full(colours.shape[:2] + (1,), 255, np.uint8)], -1)
    # the composite as RGBA: other bytes than the RGB background, so Gradio caches them as two files (one file
    # written twice while the page reads it breaks the download, and the editor never redraws)
    return {"background": colours, "layers": [], "composite": opaque}


def painted_labels(state: PortraitState, painted: dict | None, schema) -> np.ndarray:
    """The session's label map with the canvas strokes snapped onto it."""
    if state.labels is None:
        raise ConfigError("load a photo first (upload one or pick a sample)")
    layers = (painted or {}).get("layers") or []
    return palette.snap_strokes(state.labels, [np.asarray(x) for x in layers if x is not None], schema)


def with_region(image: Image.Image, region: np.ndarray) -> Image.Image:
    """The result with the edit region tinted (where the generated face was pasted)."""
    arr = np.asarray(image, dtype=np.float32).copy()
    arr[region] = 0.6 * arr[region] + 0.4 * REGION_TINT
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


class PortraitTab:
    """Callbacks bound to one :class:`PortraitService` and the app's :class:`Outputs`."""

    def __init__(self, service: PortraitService, outputs: Outputs):
        self.service, self.outputs = service, outputs

    @property
    def schema(self):
        return self.service.schema

    def load(self, photo, label_file, state):
        """A photo (+ optional label map) -> the session's label map, shown in the painter."""
        state = ensure_state(state, self.outputs)
        if photo is None:  # the upload was cleared
            state.photo = state.base = state.labels = None
            return state, None, "", None
        img = read_upload(photo, "photo")
        if label_file is not None:
            labels = read_label_upload(label_file, self.schema.num_classes, img.size)
            how = "label map uploaded"
        else:
            labels = self.service.parse(img)
            how = f"parsed by {self.service.parser_name}"
        state.photo, state.base, state.labels = str(photo), labels, labels
        state.history, state.result = [], None
        return state, self.schema.colorize(labels), f"{img.width}x{img.height} px photo, {how}", img

    def apply(self, painted, state):
        state = ensure_state(state, self.outputs)
        state.set_labels(painted_labels(state, painted, self.schema))
        return state, self.schema.colorize(state.labels)

    def undo(self, state):
        state = ensure_state(state, self.outputs)
        if not state.undo():
            raise ConfigError("nothing to undo")
        return state, self.schema.colorize(state.labels)

    def fill(self, fill_class, state, evt):
        state = ensure_state(state, self.outputs)
        if state.labels is None:
            raise ConfigError("load a photo first")
        x, y = evt.index
        state.set_labels(palette.flood_fill(state.labels, x, y, self.schema.index(fill_class)))
        return state, self.schema.colorize(state.labels)

    def edit(self, donor, components, alpha, show_region, state):
        """Edit for the session's label map (the page applies the canvas strokes first)."""
        state = ensure_state(state, self.outputs)
        if state.labels is None:
            raise ConfigError("load a photo first (upload one or pick a sample)")
        edited = state.labels
        photo = read_upload(state.photo, "photo")
        donor_img = read_upload(donor, "donor") if donor is not None and components else None
        if components and donor_img is None:
            raise ConfigError("choose a donor photo for the ticked components")
        out = self.service.edit(photo, state.base, edited, donor_img, components=list(components or []),
                                alpha=float(alpha))
        files = self._write(state, out)
        shown = with_region(out.image, out.region) if show_region else out.image
        state.snapshots = (state.snapshots + [{"image": files[0], "labels": out.labels}])[-12:]
        return (state, shown, self.readout(out), [s["image"] for s in state.snapshots], files,
                self.schema.colorize(state.labels))

    def _write(self, state: PortraitState, out) -> list[str]:
        from genkit.core.checkpoints import atomic_torch_save

        image = self.outputs.path(state.folder, "edited", ".png")
        save_image(out.image, image, metadata={"operation": "genkit ui edit", "notes": out.notes,
                                               **(self.service.editor.metadata() if self.service.editor else {})})
        mask = save_label_map(out.labels, self.outputs.path(state.folder, "edited_mask", ".png"))
        codes = self.outputs.path(state.folder, "codes", ".pt")
        atomic_torch_save({"codes": {k: v.clone() for k, v in out.codes.items()}}, codes)
        state.result = str(image)
        return [str(image), str(mask), str(codes)]

    def readout(self, out) -> str:
        lines = [f"- {n}" for n in out.notes]
        if out.agreement is not None:
            lines.insert(0, f"**mask consistency:** the parser reads the result as the edited mask on "
                            f"{100 * out.agreement:.1f}% of the face pixels")
        return "\n".join(lines)

    def restore(self, state, evt):
        state = ensure_state(state, self.outputs)
        snap = state.snapshots[evt.index]
        state.set_labels(snap["labels"])
        return state, snap["image"], self.schema.colorize(state.labels)

    def painter(self, state):
        """The painter showing the session's label map, strokes cleared (a separate event: Gradio's editor
        does not redraw a value set by the same event that read its strokes)."""
        if state is None or state.labels is None:
            return None
        return editor_value(state.labels, self.schema)

    def sample(self, component, n, seed, state):
        state = ensure_state(state, self.outputs)
        if state.labels is None:
            raise ConfigError("load a photo first")
        photo = read_upload(state.photo, "photo")
        images = self.service.sample(photo, state.labels, component, int(n), int(seed))
        return [save_image(im, self.outputs.path(state.folder, f"sample_{component}", ".png")).as_posix()
                for im in images]


def build(tab: PortraitTab, samples: list[str]) -> None:
    """The tab's components and events (inside an open ``gr.Tab``)."""
    _wire(tab, _layout(tab, samples))


def _layout(tab: PortraitTab, samples: list[str]) -> dict:
    """The tab's components, by name."""
    import gradio as gr

    schema = tab.schema
    state = gr.State(None)
    gr.Markdown("\n".join(f"- **note:** {b}" for b in tab.service.banners()), elem_id="portrait-banners")
    with gr.Row():
        with gr.Column():
            photo, photo_view = image_upload("Photo", "photo", samples, own_preview=False)
            label_file = gr.File(label=f"Label map (optional: an 8-bit PNG of {schema.name} labels)",
                                 file_types=[".png"], elem_id="label-file")
            load_btn = gr.Button("Parse / load mask", elem_id="load")
            status = gr.Markdown(elem_id="portrait-status")
        with gr.Column():
            colours = [palette.hex_colour(c) for c in schema.colors]
            painter = gr.ImageEditor(label="Mask (paint with the schema's colours; black paints background)",
                                     type="numpy", image_mode="RGBA", format="png", sources=[], transforms=(),
                                     brush=gr.Brush(colors=colours, color_mode="fixed", default_size=12,
                                                    default_color=colours[-1]),
                                     eraser=gr.Eraser(default_size=12), layers=False, elem_id="painter")
            gr.HTML(palette.legend_markdown(schema), elem_id="legend")
            with gr.Row():
                apply_btn = gr.Button("Apply strokes", elem_id="apply")
                undo_btn = gr.Button("Undo", elem_id="undo")
            fill_class = gr.Dropdown(list(schema.classes), value=schema.classes[0], label="Fill with")
            fill_view = gr.Image(label="Label map (click a region to fill it)", interactive=False, elem_id="fill")
    with gr.Row():
        with gr.Column():
            donor, _ = image_upload("Donor", "donor", samples)
            comps = list(tab.service.editor.components) if tab.service.editor else []
            components = gr.CheckboxGroup(comps, label="Take from the donor", elem_id="components")
            alpha = gr.Slider(0, 1, value=1, step=0.05, label="alpha: 0 keeps the target's code, 1 takes the donor's")
            show_region = gr.Checkbox(label="Show the edit region", value=False)
            edit_btn = gr.Button("Edit", variant="primary", elem_id="edit")
        with gr.Column():
            result = gr.Image(label="Result (the photo's size)", interactive=False, format="png", elem_id="result")
            readout = gr.Markdown(elem_id="readout")
            snapshots = gr.Gallery(label="Snapshots (click one to go back)", columns=6, height=150,
                                   object_fit="contain", elem_id="snapshots")
            files = gr.File(label="Downloads: image, label map, codes", file_count="multiple", elem_id="downloads")
    with gr.Accordion("Sample a component (VAE models)", open=False,
                      visible=bool(tab.service.editor and tab.service.editor.variational)):
        with gr.Row():
            comp = gr.Dropdown(comps, value=comps[0] if comps else None, label="Component")
            n = gr.Slider(1, 8, value=4, step=1, label="Samples")
            seed = gr.Number(value=0, precision=0, label="Seed")
        sample_btn = gr.Button("Sample")
        samples_out = gr.Gallery(label="Samples", columns=4)
    return dict(state=state, photo=photo, photo_view=photo_view, label_file=label_file, load_btn=load_btn,
                status=status, painter=painter, apply_btn=apply_btn, undo_btn=undo_btn, fill_class=fill_class,
                fill_view=fill_view, donor=donor, components=components, alpha=alpha, show_region=show_region,
                edit_btn=edit_btn, result=result, readout=readout, snapshots=snapshots, files=files, comp=comp,
                n=n, seed=seed, sample_btn=sample_btn, samples_out=samples_out)


def _wire(tab: PortraitTab, c: dict) -> None:
    """The tab's events: every callback reports failures as page messages."""
    import gradio as gr

    state, painter, fill_view, result = c["state"], c["painter"], c["fill_view"], c["result"]
    private = dict(api_visibility="private")

    def redraw(event) -> None:
        event.then(tab.painter, [state], [painter], queue=False, **private)

    shown = [state, fill_view]
    load = dict(fn=shown_errors(tab.load), inputs=[c["photo"], c["label_file"], state],
                outputs=[*shown, c["status"], c["photo_view"]], api_name="ui_load", **private)
    redraw(c["photo"].change(**load))
    redraw(c["load_btn"].click(**load))
    # after reading the strokes the painter keeps them (the label-map view shows them snapped): Gradio 6.31's
    # editor did not finish redrawing a canvas that holds strokes in our headless-Chromium test
    c["apply_btn"].click(shown_errors(tab.apply), [painter, state], shown, api_name="ui_apply", **private)
    redraw(c["undo_btn"].click(shown_errors(tab.undo), [state], shown, api_name="ui_undo", **private))

    def fill(fill_class, state, evt: gr.SelectData):
        return tab.fill(fill_class, state, evt)

    def restore(state, evt: gr.SelectData):
        return tab.restore(state, evt)

    redraw(fill_view.select(shown_errors(fill), [c["fill_class"], state], shown, api_name="ui_fill", **private))
    redraw(c["snapshots"].select(shown_errors(restore), [state], [state, result, fill_view], api_name="ui_restore",
                                 **private))
    # the strokes are snapped onto the label map first; the edit then reads the session's label map
    applied = c["edit_btn"].click(shown_errors(tab.apply), [painter, state], shown, api_name="ui_apply_before_edit",
                                  **private)
    applied.success(shown_errors(tab.edit), [c["donor"], c["components"], c["alpha"], c["show_region"], state],
                    [state, result, c["readout"], c["snapshots"], c["files"], fill_view], api_name="ui_edit",
                    concurrency_id="heavy", **private)
    c["sample_btn"].click(shown_errors(tab.sample), [c["comp"], c["n"], c["seed"], state], [c["samples_out"]],
                          api_name="ui_sample", concurrency_id="heavy", **private)
