"""Per-browser-session state of the portrait tab and the app's output folder.

Gradio deep-copies a ``gr.State`` per session, so each user's label map, undo history and snapshots are their own.
Everything the app writes goes under one output folder, one sub-folder per session, atomically.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HISTORY = 30  # label maps kept for undo


@dataclass
class PortraitState:
    folder: Path
    photo: str | None = None  # the uploaded photo's path (Gradio's cache, inside the output folder)
    base: np.ndarray | None = None  # the photo's own label map (parsed or uploaded): what the photo shows
    labels: np.ndarray | None = None  # the truth: (H, W) labels of the photo's size
    history: list[np.ndarray] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)  # {"image": path, "labels": array, "caption": str}
    result: str | None = None

    def set_labels(self, labels: np.ndarray) -> None:
        """Replace the label map, keeping the previous one for undo."""
        if self.labels is not None and not np.array_equal(self.labels, labels):
            self.history = (self.history + [self.labels])[-HISTORY:]
        self.labels = labels

    def undo(self) -> bool:
        if not self.history:
            return False
        self.labels = self.history.pop()
        return True


class Outputs:
    """The app's output folder: sessions write only inside it, and it is the only folder the app serves."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def new_session(self) -> Path:
        d = self.root / "sessions" / uuid.uuid4().hex[:12]
        d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, folder: Path, stem: str, ext: str) -> Path:
        """A fresh file name in a session folder: nothing a user downloaded earlier is overwritten."""
        return folder / f"{stem}-{uuid.uuid4().hex[:8]}{ext}"


def ensure_state(state: PortraitState | None, outputs: Outputs) -> PortraitState:
    return state if state is not None else PortraitState(outputs.new_session())
