"""An edit touches only what it edits, at the photo's own resolution, from a photo of any size: on a real photo
(skimage's astronaut, 512 px, with a label map drawn at that resolution) and an UNTRAINED tiny generator, so the
guarantees hold whatever the generator draws."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import distance_transform_edt

from fixtures.portrait_photos import BG, HAIR, LBROW, LEYE, LLIP, MOUTH, NOSE, RBROW, REYE, SKIN, ULIP, astronaut
from genkit.core.errors import DataError
from genkit.data.masks import labels_from_colors, read_mask
from genkit.data.schemas import HELEN11
from genkit.models.portrait import compositing

pytestmark = pytest.mark.usefixtures("one_thread")

MOUTH_LABELS, EYE_LABELS = (ULIP, MOUTH, LLIP), (LEYE, REYE)
SKIN_LABELS = (SKIN, LBROW, RBROW, NOSE)


def as_tensor(photo: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)


def distance_from(labels: np.ndarray, classes) -> np.ndarray:
    return distance_transform_edt(~np.isin(labels, classes))


def changed_pixels(out: torch.Tensor, photo: np.ndarray) -> np.ndarray:
    return ((out - as_tensor(photo)).abs().amax(0) > 2 / 255).numpy()


def code(editor, seed: int) -> torch.Tensor:
    return torch.randn(editor.generator.embedding.latent_dim, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("component, classes", [("mouth", MOUTH_LABELS), ("eyes", EYE_LABELS)])
def test_a_component_transfer_changes_only_that_component(tiny_editor, component, classes):
    photo, labels = astronaut()  # 512 x 512
    res = tiny_editor.transfer(photo, labels, {component: code(tiny_editor, 1)})
    assert res.image.shape == (3, 512, 512)
    dist = distance_from(labels, classes)  # the old and the new layout are the same here
    changed = changed_pixels(res.image, photo)
    assert not changed[dist > 16].any()  # nothing farther than 16 px from the component changes
    inside = torch.from_numpy(dist == 0)
    assert float((res.image - as_tensor(photo)).abs().mean(0)[inside].mean()) > 0.02  # the component visibly does
    assert float(changed.mean()) < 0.05  # against 50 % when the whole head came back regenerated


def test_a_skin_transfer_leaves_hair_and_background(tiny_editor):
    photo, labels = astronaut()
    res = tiny_editor.transfer(photo, labels, {"skin": code(tiny_editor, 2)})
    changed = changed_pixels(res.image, photo)
    away = distance_from(labels, SKIN_LABELS) > 16
    assert not changed[away & (labels == HAIR)].any() and not changed[away & (labels == BG)].any()
    assert changed[labels == SKIN].mean() > 0.5


def test_reconstruction_returns_the_photo(tiny_editor):
    photo, labels = astronaut()
    res = tiny_editor.reconstruct(photo, labels)
    assert torch.equal(res.image, as_tensor(photo)) and float(res.alpha.max()) == 0.0
    face = tiny_editor.reconstruct(photo, labels, region="face")  # the generator's own drawing of the head
    assert changed_pixels(face.image, photo)[labels != BG].mean() > 0.5


def test_a_non_square_photo_comes_back_at_its_size_and_only_the_grown_region_changes(tiny_editor):
    photo, labels = astronaut((0, 0, 512, 384))  # 512 wide, 384 high
    edited = labels.copy()
    mouth = np.isin(labels, MOUTH_LABELS)
    edited[mouth] = SKIN
    ys, xs = np.nonzero(mouth)
    edited[ys + 10, xs] = labels[ys, xs]  # the mouth moved down by 10 px
    res = tiny_editor.regenerate(photo, labels, edited)
    assert res.image.shape == (3, 384, 512) and res.alpha.shape == (1, 384, 512)
    side = 384  # the face crop: a square of the shorter side
    reach = (tiny_editor.grow + tiny_editor.feather) * side / 256
    far = distance_transform_edt(labels == edited) > reach
    assert far.mean() > 0.9
    assert torch.equal(res.image[:, torch.from_numpy(far)], as_tensor(photo)[:, torch.from_numpy(far)])
    assert changed_pixels(res.image, photo)[labels != edited].mean() > 0.5


def test_the_paste_weight_has_no_staircase_at_photo_resolution(tiny_editor):
    """The blend band follows the full-resolution region: at every pixel of the band, alpha is the same function
    of the Euclidean distance to the region (a weight computed at the model's 64 px and upsampled has 8 px steps)."""
    photo, labels = astronaut()
    res = tiny_editor.transfer(photo, labels, {"mouth": code(tiny_editor, 3)})
    dist = distance_from(labels, MOUTH_LABELS)
    alpha = res.alpha[0].numpy()
    mid = (alpha > 0.3) & (alpha < 0.7)
    assert mid.sum() > 50
    assert float(dist[mid].std()) < 1.0  # the half-weight line lies at one distance from the mouth
    band = (alpha > 0) & (alpha < 1)
    assert np.corrcoef(alpha[band], dist[band])[0, 1] < -0.95  # the weight falls with the distance, smoothly


def test_frequency_split_keeps_the_photo_detail_in_the_margin():
    """In the margin (alpha 1, detail 0) the photo keeps its fine texture and takes only the colour shift."""
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    generated = torch.full_like(photo, 0.5)  # a flat, blurred rendering of the same area
    alpha, detail = torch.ones(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
    out = compositing.detail_blend(generated, photo, alpha, detail, sigma=2.0)
    high = lambda x: x - torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)  # noqa: E731
    assert torch.allclose(high(out)[..., 4:-4, 4:-4], high(photo)[..., 4:-4, 4:-4], atol=0.03)
    full = compositing.detail_blend(generated, photo, alpha, torch.ones_like(alpha), sigma=2.0)
    assert torch.allclose(full, generated)  # where the component changed: the generated pixels


def test_colour_masks_are_read_as_label_maps(tiny_editor, tmp_path):
    _, labels = astronaut()
    preview = Image.fromarray(HELEN11.colorize(labels))
    blurred = preview.resize((256, 256), Image.BILINEAR).resize((512, 512), Image.BILINEAR)  # anti-aliased edges
    snapped = labels_from_colors(np.asarray(blurred), HELEN11)
    inner = distance_transform_edt(labels == np.roll(labels, 1, 0)) > 3  # away from the edges
    assert (snapped[inner] == labels[inner]).mean() > 0.99
    path = tmp_path / "preview.png"
    preview.save(path)
    assert np.array_equal(read_mask(path, HELEN11), labels)
    photo, _ = astronaut()
    a = tiny_editor.transfer(photo, labels, {"mouth": code(tiny_editor, 4)})
    b = tiny_editor.transfer(photo, path, {"mouth": code(tiny_editor, 4)})
    assert torch.equal(a.image, b.image)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with pytest.raises(DataError, match="photo.png.*not a colour-coded mask"):
        read_mask(tmp_path / "photo.png", HELEN11)


def grey(photo: np.ndarray) -> np.ndarray:
    """The photo as a greyscale JPEG reads as RGB: three equal channels (Rec. 601 luminance)."""
    y = np.asarray(Image.fromarray(photo).convert("L"))
    return np.repeat(y[..., None], 3, axis=2)


def test_a_transfer_into_a_greyscale_photo_stays_greyscale(tiny_editor):
    """The generator draws colour whatever the photo; pasted into a greyscale photo it must not leave a coloured
    mouth in a grey face."""
    photo, labels = astronaut()
    photo = grey(photo)
    res = tiny_editor.transfer(photo, labels, {"mouth": code(tiny_editor, 1)})
    assert torch.equal(res.image[0], res.image[1]) and torch.equal(res.image[1], res.image[2])
    inside = torch.from_numpy(distance_from(labels, MOUTH_LABELS) == 0)
    assert float((res.image - as_tensor(photo)).abs().mean(0)[inside].mean()) > 0.02  # the mouth still changes
    assert not changed_pixels(res.image, photo)[distance_from(labels, MOUTH_LABELS) > 16].any()


@pytest.mark.parametrize("greyscale", [True, False])
def test_a_greyscale_photo_takes_the_luminance_of_what_is_drawn(tiny_editor, greyscale):
    """A red mouth drawn into a grey photo arrives as red's luminance (0.299) on all three channels; into a colour
    photo it stays red."""
    photo, labels = astronaut()
    photo = grey(photo) if greyscale else photo
    target = tiny_editor.prepare(photo, labels)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 64, 64)  # in [-1, 1], as the generator draws
    image, alpha, _ = tiny_editor.composite(red, target, target.labels, ["mouth"])
    core = torch.from_numpy(distance_transform_edt(np.isin(labels, MOUTH_LABELS)) > 3)  # well inside the mouth
    assert bool(core.any())
    mouth = image[0][:, core]
    want = torch.tensor([0.299, 0.299, 0.299] if greyscale else [1.0, 0.0, 0.0])
    assert torch.allclose(mouth.mean(1), want, atol=0.01), mouth.mean(1)
    outside = torch.from_numpy(distance_from(labels, MOUTH_LABELS) > 16)
    assert torch.equal(image[0][:, outside], as_tensor(photo)[:, outside])  # the photo's own pixels elsewhere
