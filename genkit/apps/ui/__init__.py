"""``genkit ui``: edit portraits and stylise images in the browser (Gradio; ``pip install genkit[ui]``).

Modules, one job each: :mod:`~genkit.apps.ui.app` (layout, samples, serving), :mod:`~genkit.apps.ui.portrait_tab`
and :mod:`~genkit.apps.ui.style_tab` (the two tabs), :mod:`~genkit.apps.ui.api` (the named ``gradio_client``
endpoints), :mod:`~genkit.apps.ui.portrait` and :mod:`~genkit.apps.ui.style` (the models, without Gradio),
:mod:`~genkit.apps.ui.palette` (the label map behind the painted mask), :mod:`~genkit.apps.ui.session`
(per-session state, the output folder), :mod:`~genkit.apps.ui.limits` (what uploads may be) and
:mod:`~genkit.apps.ui.messages` (errors as page messages). Gradio is imported only when the app is built.
"""
