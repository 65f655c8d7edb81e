"""The backdrop an edit uncovers (hair removed) takes the photo's own backdrop colour and texture, at the photo's
resolution, whatever the generator draws there: real photos (skimage's astronaut, and her head on skimage's brick
wall) with a hand-made label map, edited by an UNTRAINED tiny generator whose plain fill is far off."""

import numpy as np
import pytest
import torch
from fixtures.portrait_photos import BG, HAIR, MOUTH, astronaut
from PIL import Image
from scipy.ndimage import distance_transform_edt

from genkit.core.errors import ConfigError
from genkit.models.portrait import backdrop
from genkit.models.portrait.editor import PortraitEditor
from genkit.models.portrait.evaluation import fill_statistics

pytestmark = pytest.mark.usefixtures("one_thread")


def small(photo: np.ndarray, labels: np.ndarray, factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its labels at 1/factor of their size (the tests stay fast)."""
    h, w = labels.shape
    img = np.asarray(Image.fromarray(photo).resize((w // factor, h // factor), Image.BICUBIC))
    lab = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((w // factor, h // factor), Image.NEAREST))
    return img, lab.astype(np.int64)


def on_bricks(photo: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The head on skimage's brick wall (a textured backdrop), tinted brown."""
    from skimage import data

    h, w = labels.shape
    brick = np.asarray(Image.fromarray(data.brick()).resize((w, h), Image.BICUBIC)).astype(np.float32)
    brick = np.stack([brick * 1.0, brick * 0.75, brick * 0.6], -1).clip(0, 255).astype(np.uint8)
    return np.where((labels != BG)[..., None], photo, brick)


def as_tensor(photo: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(photo, dtype=np.float32) / 255).permute(2, 0, 1)


def hair_removed(editor: PortraitEditor, photo: np.ndarray, labels: np.ndarray):
    res = editor.regenerate(photo, labels, np.where(labels == HAIR, BG, labels))
    dist = distance_transform_edt(labels != HAIR)
    ring = torch.from_numpy((labels == BG) & (dist > 4) & (dist <= 16))
    stats = fill_statistics(res.image[None], torch.from_numpy(labels == HAIR), ring)
    return res, stats


@pytest.fixture(scope="module")
def editors(tiny_editor):
    return {fill: PortraitEditor(tiny_editor.generator, fill=fill) for fill in ("backdrop", "generator")}


@pytest.mark.parametrize("backdrop_kind", ["studio", "bricks"])
def test_hair_removal_takes_the_backdrop_colour_and_texture(editors, backdrop_kind):
    photo, labels = small(*astronaut())  # 256 px; the model works at 64
    photo = on_bricks(photo, labels) if backdrop_kind == "bricks" else photo
    res, stats = hair_removed(editors["backdrop"], photo, labels)
    assert res.fill == "backdrop"
    assert stats["colour_gap"] <= 0.05
    assert 0.5 <= stats["texture_ratio"] <= 2.0
    plain, before = hair_removed(editors["generator"], photo, labels)  # the generator's own fill misses both
    assert plain.fill == "generator"
    assert before["colour_gap"] > 0.05 or not 0.5 <= before["texture_ratio"] <= 2.0
    original = as_tensor(photo)
    away = res.alpha[0] == 0
    assert torch.equal(res.image[:, away], original[:, away])  # the photo, bit for bit, outside the edit
    assert float(res.alpha[0][torch.from_numpy(labels == HAIR)].min()) == 1.0


def test_a_non_square_photo_is_filled_at_its_size(editors):
    photo, labels = small(*astronaut((0, 0, 512, 384)))  # 256 x 192
    photo = on_bricks(photo, labels)
    res, stats = hair_removed(editors["backdrop"], photo, labels)
    assert res.image.shape == (3, 192, 256)
    assert stats["colour_gap"] <= 0.05 and 0.5 <= stats["texture_ratio"] <= 2.0
    original = as_tensor(photo)
    away = res.alpha[0] == 0
    assert away.float().mean() > 0.5 and torch.equal(res.image[:, away], original[:, away])


def test_an_edit_that_uncovers_nothing_is_unchanged(editors):
    photo, labels = small(*astronaut())
    code = torch.randn(editors["backdrop"].generator.embedding.latent_dim, generator=torch.Generator().manual_seed(3))
    a = editors["backdrop"].transfer(photo, labels, {"mouth": code})
    b = editors["generator"].transfer(photo, labels, {"mouth": code})
    assert torch.equal(a.image, b.image) and a.fill == b.fill == ""
    grown = labels.copy()
    grown[(labels == BG) & (distance_transform_edt(labels != MOUTH) < 3)] = MOUTH  # covers, uncovers nothing
    c = editors["backdrop"].regenerate(photo, labels, grown)
    d = editors["generator"].regenerate(photo, labels, grown)
    assert torch.equal(c.image, d.image) and c.fill == ""
    same = editors["backdrop"].reconstruct(photo, labels)
    assert torch.equal(same.image, as_tensor(photo))


def test_an_unknown_fill_is_refused(tiny_editor):
    with pytest.raises(ConfigError, match="fill must be one of backdrop, generator"):
        PortraitEditor(tiny_editor.generator, fill="magic")


# ----------------------------------------------------------------------------------- the image operations
def test_the_membrane_is_harmonic_and_keeps_the_known_values():
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    plane = np.stack([0.01 * xx + 0.02 * yy, 0.5 - 0.01 * yy])  # a linear function is harmonic
    unknown = np.zeros((40, 50), dtype=bool)
    unknown[8:30, 10:44] = True
    known = ~unknown
    known[:, :3] = False  # neither known nor unknown: a free boundary, not a constraint
    out = backdrop.membrane(np.where(known, plane, 9.0), unknown, known)
    assert np.abs(out[:, unknown] - plane[:, unknown]).max() < 1e-4
    assert np.array_equal(out[:, known], plane[:, known])
    lonely = np.zeros_like(unknown)
    lonely[2:5, 2:5] = True  # touches no known pixel: no correction there
    assert np.all(backdrop.membrane(plane, lonely, np.zeros_like(known)) == 0)


def test_the_fill_continues_a_texture_and_leaves_everything_else():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    stripes = 0.5 + 0.2 * np.sign(np.sin(xx / 3.0 + yy / 7.0))  # a strong periodic texture
    photo = torch.from_numpy(np.stack([stripes, stripes * 0.8, stripes * 0.6]) + rng.normal(0, 0.02, (3, 96, 96)))
    photo = photo.float().clamp(0, 1)[None]
    target = torch.zeros(96, 96, dtype=torch.bool)
    target[30:66, 25:70] = True
    generated = torch.full_like(photo, 0.9)  # a flat, wrongly coloured fill
    out = backdrop.fill_uncovered(generated, photo, target, ~target, sigma=2.0)
    assert torch.equal(out[..., ~target], generated[..., ~target])
    ring = torch.from_numpy(distance_transform_edt(~target.numpy()) <= 12) & ~target
    stats = fill_statistics(out.where(target, photo), target, ring)
    assert stats["colour_gap"] <= 0.05 and 0.5 <= stats["texture_ratio"] <= 2.0
    flat = fill_statistics(generated.where(target, photo), target, ring)
    assert flat["colour_gap"] > 0.05 and flat["texture_ratio"] < 0.5


def test_genkit_edit_fill_option_and_metadata(tmp_path):
    from fixtures.tiny_portrait import tiny_generator

    from genkit.cli import main as cli_main
    from genkit.core.metadata import read_metadata
    from genkit.models.portrait.checkpoint import export_generator

    photo, labels = small(*astronaut(), factor=4)  # 128 px
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(labels.astype(np.uint8)).save(tmp_path / "a_mask.png")
    Image.fromarray(np.where(labels == HAIR, BG, labels).astype(np.uint8)).save(tmp_path / "bald.png")
    gen = export_generator(tiny_generator(64), tmp_path / "gen.pt", ema=False)
    outs = {}
    for fill in ("backdrop", "generator"):
        outs[fill] = tmp_path / f"{fill}.png"
        assert cli_main(["edit", "--checkpoint", str(gen), "--target", str(tmp_path / "a.png"), "--mask",
                         str(tmp_path / "a_mask.png"), "--edited-mask", str(tmp_path / "bald.png"), "--fill", fill,
                         "-o", str(outs[fill])]) == 0
    meta = {k: read_metadata(v) for k, v in outs.items()}
    assert meta["backdrop"]["fill"] == "backdrop" and meta["backdrop"]["fill_option"] == "backdrop"
    assert meta["generator"]["fill"] == "generator" and meta["generator"]["fill_option"] == "generator"
    a, b = (np.asarray(Image.open(outs[k])).astype(int) for k in ("backdrop", "generator"))
    hair, far = labels == HAIR, distance_transform_edt(labels != HAIR) > 20
    assert np.abs(a - b)[hair].mean() > 5 and np.array_equal(a[far], b[far])
