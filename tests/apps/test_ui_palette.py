"""The label map behind the painted mask (snapping anti-aliased strokes, fill), upload limits, and the command's
safety checks, without a running app."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image, ImageDraw

from genkit.apps.ui.limits import read_label_upload, read_upload
from genkit.apps.ui.palette import flood_fill, nearest_labels, snap_strokes
from genkit.apps.ui.portrait import square_box
from genkit.core.errors import ConfigError, DataError
from genkit.core.saving import save_label_map
from genkit.data.schemas import HELEN11


def antialiased_stroke(size: int, colour, width: int = 9) -> np.ndarray:
    """An RGBA layer with one anti-aliased line (drawn 4x larger, shrunk: soft edges of blended colour and alpha)."""
    big = Image.new("RGBA", (4 * size, 4 * size), (0, 0, 0, 0))
    ImageDraw.Draw(big).line([(20, 2 * size), (4 * size - 20, 2 * size + 30)], fill=(*colour, 255), width=4 * width)
    return np.asarray(big.resize((size, size), Image.LANCZOS))


def test_snapped_strokes_take_the_brush_class_and_leave_faint_edges_alone():
    labels = np.ones((64, 64), dtype=np.int64)  # all skin
    hair = HELEN11.classes.index("hair")
    layer = antialiased_stroke(64, HELEN11.colors[hair])
    alpha = layer[..., 3]
    assert ((alpha > 0) & (alpha < 255)).sum() > 20  # the stroke really has blended edges
    out = snap_strokes(labels, [layer], HELEN11)
    assert set(np.unique(out)) == {1, hair}  # no third class invented at the blended edge
    assert np.array_equal(out == hair, alpha > 127)  # covered at more than half opacity <=> painted
    assert np.array_equal(labels, np.ones((64, 64)))  # the input map is not changed in place


def test_nearest_palette_colour_and_strokes_from_a_canvas_of_another_size():
    blended = (np.array(HELEN11.colors[10]) * 0.8 + np.array(HELEN11.colors[1]) * 0.2).astype(np.uint8)
    assert nearest_labels(blended[None], HELEN11).tolist() == [10]
    layer = np.zeros((32, 32, 4), dtype=np.uint8)
    layer[8:16, 8:16] = (*HELEN11.colors[0], 255)  # background brush (black)
    out = snap_strokes(np.ones((64, 64), dtype=np.int64), [layer], HELEN11)  # canvas half the map's size
    assert (out[16:32, 16:32] == 0).all() and out.sum() == 64 * 64 - 16 * 16


def test_flood_fill_relabels_only_the_clicked_connected_region():
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[2:4, 2:4] = 4
    labels[6:8, 6:8] = 4  # a second, separate left_eye region
    out = flood_fill(labels, x=2, y=3, label=5)
    assert (out[2:4, 2:4] == 5).all() and (out[6:8, 6:8] == 4).all() and (out == 0).sum() == 92
    assert np.array_equal(flood_fill(labels, x=20, y=3, label=5), labels)  # a click outside changes nothing


def test_upload_limits_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(DataError, match=r"^photo notes\.png: cannot be decoded as an image"):
        read_upload(tmp_path / "notes.png")
    Image.new("RGB", (5000, 20)).save(tmp_path / "wide.png")
    with pytest.raises(DataError, match=r"wide\.png is 5000x20 px; this app takes images up to 4096 px"):
        read_upload(tmp_path / "wide.png")
    with pytest.raises(DataError, match="no donor was given"):
        read_upload(None, "donor")
    save_label_map(np.full((20, 30), 12), tmp_path / "bad.png")
    with pytest.raises(DataError, match="label values 12 are outside"):
        read_label_upload(tmp_path / "bad.png", 11, (30, 20))
    save_label_map(np.zeros((20, 30)), tmp_path / "small.png")
    with pytest.raises(DataError, match="is 30x20 px but the photo is 60x40 px"):
        read_label_upload(tmp_path / "small.png", 11, (60, 40))


def test_square_box_is_the_largest_centred_square():
    assert square_box((160, 128)) == (16, 0, 144, 128)
    assert square_box((100, 141)) == (0, 20, 100, 120)


def test_the_command_checks_auth_and_warns_on_an_open_host(caplog):
    pytest.importorskip("gradio")
    from genkit.apps.ui.app import parse_auth, serve

    assert parse_auth("me:se:cret") == ("me", "se:cret") and parse_auth(None) is None
    with pytest.raises(ConfigError, match="USER:PASS"):
        parse_auth("me")

    class App:  # records what launch() got
        def launch(self, **kw):
            self.kw = kw

    app = App()
    app.genkit_outputs = type("O", (), {"root": "/srv/out"})()
    with caplog.at_level(logging.WARNING, logger="genkit.ui"):
        serve(app, host="0.0.0.0", port=1, block=False)
    assert "without --auth" in caplog.text
    assert app.kw["share"] is False and app.kw["allowed_paths"] == ["/srv/out"] and app.kw["server_name"] == "0.0.0.0"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genkit.ui"):
        serve(app, block=False)
    assert caplog.text == "" and app.kw["server_name"] == "127.0.0.1" and app.kw["max_file_size"] == "25mb"


def test_the_command_refuses_bad_options_in_one_line(tmp_path, capsys):
    pytest.importorskip("gradio")
    from genkit.cli import main

    assert main(["ui", "--auth", "me", "--out", str(tmp_path / "o")]) == 2
    assert main(["ui", "--checkpoint", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["genkit: error: --auth takes USER:PASS",
                   f"genkit: error: {tmp_path / 'nope.ckpt'}: portrait checkpoint file does not exist"]
