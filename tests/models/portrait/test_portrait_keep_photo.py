"""The photo is kept: outside the edit region the output IS the photo, by construction (a paste), on a real photo
nobody here made (skimage's astronaut, with a hand-made mask), at the photo's own resolution, and when a detected
face is pasted back into a larger photograph."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation

from genkit.core.metadata import read_metadata
from genkit.core.reading import read_image
from genkit.core.saving import save_label_map
from genkit.models.portrait import compositing
from genkit.models.portrait.editor import PortraitEditor, paste_crop
from fixtures.portrait_photos import BG, HAIR, HEAD, LLIP, MOUTH, SKIN, ULIP, astronaut
from fixtures.tiny_portrait import TINY_GENERATOR

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = 64


def astronaut_face(tmp_path):
    """The astronaut's head (a 320 px PNG) and its hand-made Helen-11 mask."""
    photo, m = astronaut(HEAD)
    photo_path, mask_path = tmp_path / "astronaut.png", tmp_path / "astronaut_mask.png"
    Image.fromarray(photo).save(photo_path)
    save_label_map(m, mask_path)
    return photo_path, mask_path, m


@pytest.fixture(scope="module")
def editor(tiny_editor):
    """An UNTRAINED tiny generator: whatever it draws, the photo outside the edit region must survive."""
    return tiny_editor


def far_from(masks, reach: int) -> np.ndarray:
    union = np.zeros_like(masks[0], dtype=bool)
    for m in masks:
        union |= m != BG
    return ~binary_dilation(union, structure=np.ones((3, 3), dtype=bool), iterations=reach) if reach else ~union


def test_feathered_alpha_is_one_on_the_region_and_exactly_zero_beyond_the_band():
    m = torch.zeros(1, 32, 32, dtype=torch.long)
    m[0, 10:14, 10:14] = SKIN
    alpha = compositing.edit_alpha([m], grow=2, feather=3)
    dist = compositing.chebyshev_distance(compositing.face_union([m]), 10)
    assert torch.all(alpha[dist <= 2] == 1) and torch.all(alpha[dist >= 6] == 0)
    band = alpha[(dist > 2) & (dist < 6)]
    assert band.min() > 0 and band.max() < 1
    assert float(alpha[0, 0, 12, 15 + 1]) > float(alpha[0, 0, 12, 15 + 2])  # falls off with the distance
    photo, gen = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    out = compositing.paste(gen, photo, alpha)
    assert torch.equal(out[:, :, dist[0, 0] >= 6], photo[:, :, dist[0, 0] >= 6])
    assert torch.allclose(out[:, :, dist[0, 0] <= 2], gen[:, :, dist[0, 0] <= 2])


def test_edited_real_photo_keeps_its_far_background_exactly(editor, tmp_path):
    photo_path, mask_path, mask = astronaut_face(tmp_path)
    edited = mask.copy()
    edited[edited == HAIR] = BG  # remove the hair ...
    mouth = np.isin(mask, [ULIP, MOUTH, LLIP])
    edited[mouth] = SKIN
    ys, xs = np.nonzero(mouth)
    edited[ys + 12, xs] = mask[ys, xs]  # ... and move the mouth down
    res = editor.regenerate(photo_path, mask_path, edited)
    out_path = res.save(tmp_path / "edited.png", metadata=editor.metadata())
    out = np.asarray(read_image(out_path))
    photo = np.asarray(read_image(photo_path))
    assert out.shape == photo.shape == (320, 320, 3)  # at the photo's own size, not the model's 64 px
    scale = 320 // MODEL
    reach = scale * (editor.generator.paste_grow + editor.generator.paste_feather + 2)
    far = far_from([mask, edited], reach)
    assert far.mean() > 0.3  # a real part of the photo is checked
    np.testing.assert_array_equal(out[far], photo[far])  # bit for bit
    near = ~far_from([mask, edited], 0)  # the face and the former hair were redrawn
    assert np.abs(out[near].astype(int) - photo[near].astype(int)).mean() > 10
    assert float(res.alpha[0][torch.from_numpy(far)].max()) == 0.0
    assert read_metadata(out_path)["operation"] == "regenerate"


def test_transfer_keeps_the_photo_when_model_and_photo_sizes_match(editor, tmp_path):
    photo_path, mask_path, mask = astronaut_face(tmp_path)
    small = Image.open(photo_path).resize((MODEL, MODEL), Image.BICUBIC)
    small_mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((MODEL, MODEL), Image.NEAREST))
    x = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255).permute(2, 0, 1)
    res = editor.transfer(x, small_mask, {"hair": torch.randn(TINY_GENERATOR["latent_dim"])})
    far = torch.from_numpy(far_from([small_mask], editor.generator.paste_grow + editor.generator.paste_feather + 1))
    assert torch.equal(res.image[:, far], x[:, far])  # float tensors in, the same floats out


class FakeDetector:
    """Stands in for MTCNN (not installed here): one face with fixed landmarks."""

    def __init__(self, landmarks):
        self.landmarks = np.asarray(landmarks, dtype=np.float64)

    def __call__(self, img):
        from genkit.models.parsing.detect import Face

        return [Face((0.0, 0.0, 1.0, 1.0), self.landmarks, 0.99)]


class FixedParser(torch.nn.Module):
    """A 'parser' that returns one label map (the astronaut's hand-made mask at the model size)."""

    def __init__(self, labels: np.ndarray):
        super().__init__()
        self.register_buffer("labels", torch.from_numpy(labels).long())
        self.num_classes = 11

    def forward(self, x):
        return torch.nn.functional.one_hot(self.labels, 11).permute(2, 0, 1).float()[None].repeat(len(x), 1, 1, 1)


def test_detected_face_is_pasted_back_into_the_full_photo(editor, tmp_path):
    from skimage import data

    photo = Image.fromarray(data.astronaut())  # 512 px; the face is found, aligned, edited and pasted back
    lm = [[200, 140], [255, 140], [228, 170], [205, 200], [250, 200]]  # eyes, nose, mouth corners (x, y)
    _, _, mask = astronaut_face(tmp_path)
    labels = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((MODEL, MODEL), Image.NEAREST))
    ed = PortraitEditor(editor.generator, FixedParser(labels), weights="raw")
    res = ed.edit_photo(photo, FakeDetector(lm), {"hair": torch.randn(TINY_GENERATOR["latent_dim"])})
    before = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)
    assert res.image.shape == before.shape == (3, 512, 512) and res.alpha.shape == (1, 512, 512)
    kept = res.alpha[0] == 0
    assert kept.float().mean() > 0.5 and torch.equal(res.image[:, kept], before[:, kept])
    changed = res.alpha[0] > 0.99
    assert changed.sum() > 1000 and (res.image[:, changed] - before[:, changed]).abs().mean() > 0.02
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert 120 < float(xs.float().mean()) < 330 and 40 < float(ys.float().mean()) < 260  # around the head


def test_paste_crop_inverts_the_alignment_warp():
    """A crop warped out of a photo and pasted straight back lands where it came from."""
    from genkit.models.parsing.detect import alignment_quad, crop_quad
    from genkit.core.tensors import pil_to_tensor

    from skimage import data

    base = Image.fromarray(data.astronaut()).resize((160, 160), Image.BICUBIC)  # a photo: detail at every scale
    quad = alignment_quad(np.array([[62, 40], [80, 41], [71, 50], [64, 60], [78, 60]], dtype=float))
    crop = pil_to_tensor(crop_quad(base, quad, 64))
    alpha = torch.zeros(1, 64, 64)
    alpha[:, 16:48, 16:48] = 1.0
    pasted, warped = paste_crop(base, crop, alpha, quad)
    inside = warped[0] > 0.999
    assert inside.sum() > 200
    err = (pasted - pil_to_tensor(base)).abs().mean(0)[inside]
    shifted = (pasted - pil_to_tensor(base).roll(3, -1)).abs().mean(0)[inside]
    assert float(err.mean()) < 0.04 and float(err.mean()) < 0.5 * float(shifted.mean())  # in place, not 3 px off
    assert torch.equal(pasted[:, warped[0] == 0], pil_to_tensor(base)[:, warped[0] == 0])
