"""Shared fixtures of the portrait tests: the tiny (untrained) portrait model, built in one place. Its widths live
in tests/fixtures/tiny_portrait.py (tests elsewhere and the benchmark use them too); the real photo with a hand-made
label map in tests/fixtures/portrait_photos.py."""

from __future__ import annotations

import pytest

from fixtures.tiny_portrait import tiny_generator


@pytest.fixture(scope="module")
def tiny_editor(tmp_path_factory):
    """A PortraitEditor on an UNTRAINED tiny 64 px generator (what the photo-keeping guarantees must survive)."""
    from genkit.models.portrait.checkpoint import export_generator
    from genkit.models.portrait.editor import PortraitEditor

    path = export_generator(tiny_generator(64), tmp_path_factory.mktemp("gen") / "gen.pt", ema=False)
    return PortraitEditor.from_checkpoint(path)
