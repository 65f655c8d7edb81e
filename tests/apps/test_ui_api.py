"""``genkit ui`` through its named API endpoints with gradio_client: parse, edit, transfer, stylise; two clients
at once; bad uploads answered with a message while the app keeps running; only the output folder is served."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from genkit.core.reading import read_label_map
from genkit.core.saving import save_label_map


@pytest.fixture(scope="module")
def face(ui_models, tmp_path_factory):
    """A synthetic face (128 px), its label map, an edited label map with a stroke of hair across the face, and
    a second face as the donor."""
    d = tmp_path_factory.mktemp("face")
    faces = ui_models["faces"]
    photo, mask = faces / "images" / "synth_00000.png", faces / "masks" / "synth_00000.png"
    labels = read_label_map(mask, 11)
    edited = labels.copy()
    stroke = np.zeros_like(labels, dtype=bool)
    stroke[60:72, 36:92] = True  # a 12 px band across the middle of the face
    edited[stroke] = 10  # hair
    save_label_map(edited, d / "edited.png")
    return {"photo": photo, "mask": mask, "labels": labels, "edited": d / "edited.png", "stroke": stroke,
            "donor": faces / "images" / "synth_00001.png", "donor_mask": faces / "masks" / "synth_00001.png"}


def call_edit(client, photo, mask=None, edited=None, donor=None, donor_mask=None, components="", alpha=1.0):
    from gradio_client import handle_file

    f = lambda p: None if p is None else handle_file(str(p))
    return client.predict(f(photo), f(mask), f(edited), f(donor), f(donor_mask), components, alpha,
                          api_name="/edit")


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_info_lists_the_named_endpoints(ui_server):
    info = json.load(urllib.request.urlopen(ui_server["url"] + "/gradio_api/info"))
    assert {"/parse", "/edit", "/sample", "/stylize"} <= set(info["named_endpoints"])
    assert not any(name.startswith("/ui_") for name in info["named_endpoints"])  # the page's own events


def test_parse_returns_a_label_map_of_a_non_square_photos_size(ui_client, ui_models, face, tmp_path):
    from gradio_client import handle_file

    from genkit.data.transforms import resize_labels
    from genkit.models.parsing import load_parser
    from genkit.models.parsing.inference import predict_labels

    wide = Image.new("RGB", (160, 128), (40, 60, 80))
    wide.paste(Image.open(face["photo"]), (16, 0))
    wide.save(tmp_path / "wide.png")
    label_file, preview = ui_client.predict(handle_file(str(tmp_path / "wide.png")), api_name="/parse")
    labels = read_label_map(label_file, 11)
    assert labels.shape == (128, 160)
    assert labels[:, :16].max() == 0 and labels[:, 144:].max() == 0  # outside the centred square: background
    direct = predict_labels(load_parser(ui_models["parser"]), Image.open(face["photo"]).resize((32, 32)))
    assert np.array_equal(labels[:, 16:144], resize_labels(direct, 128))  # the parser's reading of the square
    assert len(np.unique(labels)) >= 2
    assert np.asarray(Image.open(preview)).shape[:2] == (128, 160)


def test_edit_with_a_painted_stroke_changes_that_region_and_keeps_the_photo_elsewhere(ui_client, face):
    image, mask_file, info = call_edit(ui_client, face["photo"], face["mask"], face["edited"])
    plain, _, _ = call_edit(ui_client, face["photo"], face["mask"])
    photo, out, base = pixels(face["photo"]), pixels(image), pixels(plain)
    assert out.shape == photo.shape
    returned = read_label_map(mask_file, 11)
    assert np.array_equal(returned, read_label_map(face["edited"], 11))  # a valid label map of the photo's size
    stroke = face["stroke"]
    changed = np.abs(out - base).sum(-1)
    rest_of_face = (face["labels"] > 0) & ~stroke
    # the painted band changed most (a 3-step model redraws the whole face a little for any mask change)
    assert changed[stroke].mean() > 10 and changed[stroke].mean() > 1.5 * changed[rest_of_face].mean()
    from scipy.ndimage import distance_transform_edt

    far = distance_transform_edt((face["labels"] == 0) & ~stroke) > 12  # well beyond the grown, feathered face
    assert far.sum() > 2000
    assert np.array_equal(out[far], photo[far])  # the photo's own pixels outside the edit region
    assert info["mask_consistency"] is not None and 0.0 <= info["mask_consistency"] <= 1.0


def test_component_transfer_alpha_blends_between_the_targets_and_the_donors_codes(ui_client, face):
    own, _, _ = call_edit(ui_client, face["photo"], face["mask"])
    kw = dict(donor=face["donor"], donor_mask=face["donor_mask"], components="mouth,hair")
    none, _, _ = call_edit(ui_client, face["photo"], face["mask"], alpha=0.0, **kw)
    half, _, _ = call_edit(ui_client, face["photo"], face["mask"], alpha=0.5, **kw)
    full, _, _ = call_edit(ui_client, face["photo"], face["mask"], alpha=1.0, **kw)
    a, b, c, d = (pixels(p) for p in (own, none, half, full))
    assert np.abs(a - b).max() <= 1  # alpha 0: the target's own codes
    # the edit is local: alpha 0.5 renders the same regions as alpha 1 with codes half-way, so it is nearer the
    # full transfer than the untouched photo is, and still differs from it
    assert 0 < np.abs(c - d).mean() < np.abs(a - d).mean()


def test_two_clients_at_once_get_their_own_results(ui_server, face):
    from gradio_client import Client

    first = call_edit(Client(ui_server["url"], verbose=False), face["photo"], face["mask"])[0]
    second = call_edit(Client(ui_server["url"], verbose=False), face["donor"], face["donor_mask"])[0]
    results = {}

    def run(key, photo, mask):
        results[key] = call_edit(Client(ui_server["url"], verbose=False), photo, mask)[0]

    threads = [threading.Thread(target=run, args=("a", face["photo"], face["mask"])),
               threading.Thread(target=run, args=("b", face["donor"], face["donor_mask"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert np.array_equal(pixels(results["a"]), pixels(first))
    assert np.array_equal(pixels(results["b"]), pixels(second))
    assert not np.array_equal(pixels(results["a"]), pixels(results["b"]))


def test_stylize_returns_an_image_of_the_contents_size_with_usage_figures(ui_client, tmp_path):
    from gradio_client import handle_file

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (72, 104, 3), dtype=np.uint8)).save(tmp_path / "content.png")
    Image.fromarray(np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)).save(
        tmp_path / "style.png")
    image, info = ui_client.predict(handle_file(str(tmp_path / "content.png")),
                                    handle_file(str(tmp_path / "style.png")), "style-swap", "0.5", 64,
                                    api_name="/stylize")
    assert Image.open(image).size == (104, 72)
    levels = info["levels"]
    assert [lv["level"] for lv in levels] == ["relu4_1", "relu3_1", "relu2_1"]
    assert all(lv["distinct_used"] >= 1 and lv["usage_limit"] is None for lv in levels)  # style-swap: no limit
    assert any("RANDOM VGG" in n for n in info["notes"])


def test_bad_uploads_give_a_message_and_the_app_keeps_answering(ui_client, face, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    (tmp_path / "notes.png").write_text("not an image at all")
    Image.new("RGB", (4200, 16)).save(tmp_path / "huge.png")
    save_label_map(np.zeros((64, 64), dtype=np.uint8), tmp_path / "small_mask.png")
    cases = [((handle_file(str(tmp_path / "notes.png")),), "/parse", "cannot be decoded as an image"),
             ((handle_file(str(tmp_path / "huge.png")),), "/parse", "up to 4096 px on a side"),
             ((handle_file(str(face["photo"])), handle_file(str(tmp_path / "small_mask.png")), None, None, None,
               "", 1.0), "/edit", "a label map must have its photo's size")]
    for args, endpoint, message in cases:
        with pytest.raises(AppError, match=message) as err:
            ui_client.predict(*args, api_name=endpoint)
        assert "Traceback" not in str(err.value)
    label_file, _ = ui_client.predict(handle_file(str(face["photo"])), api_name="/parse")
    assert read_label_map(label_file, 11).shape == (128, 128)


def test_only_the_output_folder_is_served(ui_server):
    base = ui_server["url"] + "/gradio_api/file="
    for path in ("/etc/passwd", str(ui_server["cwd"] / "private.txt"), "private.txt"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + path)
        assert err.value.code in (403, 404)
    sample = ui_server["out"] / "samples" / "astronaut.png"
    assert urllib.request.urlopen(base + str(sample)).status == 200


def test_round_trip_from_a_users_non_square_photo(ui_client, face, tmp_path):
    """Upload, parse, paint the hair away, take the mouth from a donor, download image and mask."""
    from gradio_client import handle_file

    wide = Image.new("RGB", (160, 128), (40, 60, 80))
    wide.paste(Image.open(face["photo"]), (16, 0))
    wide.save(tmp_path / "mine.png")
    label_file, _ = ui_client.predict(handle_file(str(tmp_path / "mine.png")), api_name="/parse")
    labels = read_label_map(label_file, 11)
    labels[16:40, 40:120] = 10  # make sure there is hair to paint away
    save_label_map(labels, tmp_path / "mine_mask.png")
    no_hair = np.where(labels == 10, 0, labels)
    save_label_map(no_hair, tmp_path / "no_hair.png")
    image, mask_file, _ = call_edit(ui_client, tmp_path / "mine.png", tmp_path / "mine_mask.png",
                                       tmp_path / "no_hair.png", face["donor"], face["donor_mask"], "mouth", 1.0)
    out, photo = pixels(image), pixels(tmp_path / "mine.png")
    mask = read_label_map(mask_file, 11)
    assert out.shape == photo.shape == (128, 160, 3) and mask.shape == (128, 160)  # the photo's size
    assert np.array_equal(mask, no_hair) and not (mask == 10).any()
    assert np.array_equal(out[:, :16], photo[:, :16]) and np.array_equal(out[:, 144:], photo[:, 144:])
    assert np.abs(out[16:40, 40:120] - photo[16:40, 40:120]).mean() > 5  # the hair region was redrawn


def test_sampling_with_a_plain_autoencoder_model_says_what_it_needs(ui_client, face):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="variational"):
        ui_client.predict(handle_file(str(face["photo"])), handle_file(str(face["mask"])), "mouth", 2, 0,
                          api_name="/sample")
