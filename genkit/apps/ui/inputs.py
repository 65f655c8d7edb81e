"""Image uploads as files that genkit reads itself (a broken or oversized file gets genkit's one-line message, not
Gradio's decoder error), each with a preview and, optionally, bundled samples."""

from __future__ import annotations

from genkit.apps.ui.limits import read_upload
from genkit.apps.ui.messages import shown_errors


def preview(path, what: str = "image"):
    """The uploaded image for its preview (``None`` once the upload is cleared)."""
    return None if path is None else read_upload(path, what)


def image_upload(label: str, elem_id: str, samples: list[str] | None = None, own_preview: bool = True):
    """A file input for one image and its preview image (returned as ``(file, preview)``). With ``own_preview``
    the preview follows the upload by itself; otherwise the caller's event fills it."""
    import gradio as gr

    file = gr.File(label=label, file_types=["image"], elem_id=elem_id, height=90)
    shown = gr.Image(label=f"{label}: preview", interactive=False, elem_id=f"{elem_id}-preview", height=220,
                     format="png")
    if samples:
        gr.Examples(samples, inputs=[file], label=f"Sample {label.lower()}s")
    if own_preview:
        file.change(shown_errors(lambda path: preview(path, label.lower())), [file], [shown],
                    api_visibility="private", api_name=f"ui_preview_{elem_id}", queue=False)
    return file, shown
