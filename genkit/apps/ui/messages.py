"""Errors as messages in the page: a user's mistake (:class:`~genkit.core.errors.GenkitError`) is shown as its
one line; anything else is logged with its traceback on the server and shown as one line, never a stack trace."""

from __future__ import annotations

import functools
import logging

log = logging.getLogger("genkit.ui")


def shown_errors(fn):
    """Wrap a Gradio callback so that every failure reaches the page as a ``gr.Error`` message."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from genkit.core.errors import GenkitError

        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except GenkitError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"internal error ({type(exc).__name__}: {exc}); the server log has the details",
                           print_exception=False) from None

    return wrapper
