"""``genkit ui`` in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright with the system
browser; no browser download) uploads a photo, paints a stroke on the mask, runs the edit and finds the result
changed where it painted; bad uploads show a message and the page keeps working; the style tab stylises.
Screenshots of both tabs go to the test's folder (and to ``$GENKIT_UI_SCREENSHOTS`` when set, for the docs)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genkit.apps.ui.palette import nearest_labels
from genkit.data.schemas import HELEN11

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# CI installs chromium (.ci/run), so there a missing browser fails the test instead of skipping it
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                 reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)")]


@pytest.fixture(scope="module")
def page(ui_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1700})
        pg.set_default_timeout(60_000)
        pg.goto(ui_server["url"])
        pg.wait_for_selector("#photo")
        yield pg
        browser.close()


def fetch(page, url: str) -> Image.Image:
    return Image.open(io.BytesIO(page.request.get(url).body()))


def result_image(page, previous: str | None = None) -> tuple[str, np.ndarray]:
    """Wait for the result image (a new one when ``previous`` is given); its URL and pixels."""
    page.wait_for_function("prev => { const i = document.querySelector('#result img'); "
                           "return i && i.src && i.src !== prev; }", arg=previous)
    src = page.get_attribute("#result img", "src")
    return src, np.asarray(fetch(page, src).convert("RGB"), dtype=np.int16)


def downloads(page, previous: str | None = None) -> list[str]:
    page.wait_for_function("prev => { const a = document.querySelector('#downloads a'); "
                           "return a && a.href !== prev; }", arg=previous)
    return [a.get_attribute("href") for a in page.query_selector_all("#downloads a")]


def label_map(page, url: str, path: Path) -> np.ndarray:
    from genkit.core.reading import read_label_map

    path.write_bytes(page.request.get(url).body())
    return read_label_map(path, 11)


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    page.wait_for_timeout(1500)  # the painter redraws after the event that changed the label map
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("GENKIT_UI_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["GENKIT_UI_SCREENSHOTS"]) / name)
    return path


def paint_stroke(page) -> None:
    """Drag the hair-coloured brush across the middle of the face on the mask canvas."""
    page.click("#painter button[aria-label=Brush]")
    box = page.query_selector("#painter canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 90, cy + 10)
    page.mouse.down()
    for i in range(1, 19):
        page.mouse.move(cx - 90 + 10 * i, cy + 10, steps=2)
    page.mouse.up()


def test_upload_paint_and_edit_in_the_browser(page, ui_models, tmp_path):
    page.set_input_files("#photo input[type=file]", str(ui_models["faces"] / "images" / "synth_00000.png"))
    page.wait_for_selector("#portrait-status:has-text('parsed by')")
    page.click("#edit")
    first_src, before = result_image(page)
    first_files = downloads(page)
    paint_stroke(page)
    page.click("#edit")
    _, after = result_image(page, first_src)
    files = downloads(page, first_files[0])
    assert len(files) == 3  # image, label map, codes
    old, new = label_map(page, first_files[1], tmp_path / "old.png"), label_map(page, files[1], tmp_path / "new.png")
    painted = new != old
    assert new.shape == (128, 128) and painted.sum() > 100  # the stroke reached the label map ...
    assert (new[painted] == 10).mean() > 0.95  # ... snapped to the brush's class (hair), not a blend
    change = np.abs(after - before).sum(-1)
    assert after.shape == before.shape == (128, 128, 3)
    assert change[painted].mean() > 10 and change[painted].mean() > 1.5 * change[~painted].mean()
    save_screenshot(page, tmp_path, "ui-portrait.png")


def test_stylise_in_the_browser(page, ui_server, tmp_path):
    page.click("#tab-style-button")
    samples = ui_server["out"] / "samples"
    page.set_input_files("#content input[type=file]", str(samples / "chelsea.png"))
    page.set_input_files("#style input[type=file]", str(samples / "mosaic.png"))
    page.fill("#size input[type=number]", "64")
    page.press("#size input[type=number]", "Enter")
    page.click("#stylise")
    page.wait_for_selector("#usage table")
    src = page.get_attribute("#stylised img", "src")
    out = fetch(page, src)
    assert out.size == Image.open(samples / "chelsea.png").size  # the content's size
    assert np.asarray(out.convert("L"), dtype=np.float32).std() > 5  # a picture, not a flat field
    assert "relu4_1" in page.inner_text("#usage")
    save_screenshot(page, tmp_path, "ui-style.png")


def test_two_browser_sessions_keep_their_own_masks(page, ui_server, ui_models, tmp_path):
    faces = ui_models["faces"] / "images"
    other = page.context.browser.new_context(viewport={"width": 1400, "height": 1700}).new_page()
    other.set_default_timeout(60_000)
    for pg, name in ((page, "synth_00002.png"), (other, "synth_00003.png")):
        pg.goto(ui_server["url"])
        pg.set_input_files("#photo input[type=file]", str(faces / name))
        pg.wait_for_selector("#portrait-status:has-text('parsed by')")
    mine = page.get_attribute("#fill img", "src")
    theirs = other.get_attribute("#fill img", "src")
    box = other.query_selector("#fill img").bounding_box()
    other.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # fill the face with background
    other.wait_for_function("prev => document.querySelector('#fill img').src !== prev", arg=theirs)
    filled = np.asarray(fetch(other, other.get_attribute("#fill img", "src")).convert("RGB"))
    assert (filled != np.asarray(fetch(other, theirs).convert("RGB"))).any()
    page.wait_for_timeout(1000)
    assert page.get_attribute("#fill img", "src") == mine  # the other session's fill did not reach this one
    page.click("#edit")
    result_image(page)
    own = label_map(page, downloads(page)[1], tmp_path / "own.png")  # the label map this session's edit used
    shown = nearest_labels(np.asarray(fetch(page, mine).convert("RGB")), HELEN11)  # its view before the other's fill
    assert (own > 0).sum() > 500 and (own == shown).mean() > 0.98
    other.close()


def test_bad_uploads_show_a_message_and_the_page_keeps_working(page, ui_server, ui_models, tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all")
    Image.new("RGB", (4200, 16)).save(tmp_path / "huge.png")
    for path, message in ((tmp_path / "notes.png", "notes.png: cannot be decoded as an image"),
                          (tmp_path / "huge.png", "up to 4096 px on a side")):
        page.goto(ui_server["url"])  # a fresh page: the photo field is empty again
        page.set_input_files("#photo input[type=file]", str(path))
        page.get_by_text(message).first.wait_for(state="visible")
        assert "Traceback" not in page.inner_text("body")
    page.goto(ui_server["url"])
    page.set_input_files("#photo input[type=file]", str(ui_models["faces"] / "images" / "synth_00001.png"))
    page.wait_for_selector("#portrait-status:has-text('parsed by')")
