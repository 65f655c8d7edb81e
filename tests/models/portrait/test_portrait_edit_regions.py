"""What an edit draws, and where: a requested component the target lacks says so; an edited mask of another size
is refused; an edited mask that reaches beyond the original face is drawn there; a small face in a large photo is
edited in a crop around it (at the model's resolution, not shrunk with the whole photo). An UNTRAINED tiny
generator: the guarantees hold whatever it draws."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import distance_transform_edt

from fixtures.portrait_photos import BG, HAIR, LLIP, MOUTH, SKIN, ULIP, astronaut, head_labels
from genkit.core.errors import DataError
from genkit.core.metadata import read_metadata
from genkit.core.saving import save_label_map

pytestmark = pytest.mark.usefixtures("one_thread")

MOUTH_LABELS = (ULIP, MOUTH, LLIP)


def as_tensor(photo: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)


def changed_pixels(out: torch.Tensor, photo: np.ndarray) -> np.ndarray:
    return ((out - as_tensor(photo)).abs().amax(0) > 2 / 255).numpy()


def code(editor, seed: int) -> torch.Tensor:
    return torch.randn(editor.generator.embedding.latent_dim, generator=torch.Generator().manual_seed(seed)) * 3


def small_face(side: int = 512, face: int = 128, at: tuple[int, int] = (300, 260)) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo resized to ``side`` px, with a head label map of ``face`` px drawn at ``at`` (top, left)."""
    photo, _ = astronaut()
    photo = np.asarray(Image.fromarray(photo).resize((side, side), Image.BICUBIC))
    labels = np.zeros((side, side), dtype=np.int64)
    top, left = at
    labels[top:top + face, left:left + face] = head_labels(face)
    return photo, labels


# ------------------------------------------------------------------------------ 1. a component the target lacks
def test_a_requested_component_missing_from_the_target_mask_is_noted(tiny_editor, tmp_path):
    photo, labels = astronaut()
    no_mouth = np.where(np.isin(labels, MOUTH_LABELS), SKIN, labels)
    res = tiny_editor.transfer(photo, no_mouth, {"mouth": code(tiny_editor, 1)})
    assert torch.equal(res.image, as_tensor(photo))  # nothing to draw it in...
    assert "mouth: not in the target's mask; nothing to transfer" in res.notes  # ...and the user is told
    meta = read_metadata(res.save(tmp_path / "out.png", metadata=tiny_editor.metadata()))
    assert "mouth: not in the target's mask; nothing to transfer" in meta["notes"]
    # drawn where an edited mask puts it: then it is transferred, and no such note
    drawn = tiny_editor.edit(photo, no_mouth, {"mouth": code(tiny_editor, 1)}, edited_mask=labels)
    assert not any("nothing to transfer" in n for n in drawn.notes)
    assert changed_pixels(drawn.image, photo)[np.isin(labels, MOUTH_LABELS)].mean() > 0.5


# ------------------------------------------------------------------------------ 2. an edited mask of another size
def test_an_edited_mask_of_another_size_is_refused_naming_the_file(tiny_editor, tmp_path):
    photo, labels = small_face(128, 96, (16, 16))
    small = tmp_path / "edited_100.png"
    save_label_map(np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((100, 100), Image.NEAREST)), small)
    with pytest.raises(DataError, match=r"edited_100\.png: edited mask is 100x100 but its image .* is 128x128"):
        tiny_editor.regenerate(photo, labels, small)
    with pytest.raises(DataError, match=r"edited mask is 64x64 but its image .* is 128x128"):
        tiny_editor.regenerate(photo, labels, labels[::2, ::2])


# --------------------------------------------------------------- 3. an edit that reaches beyond the original face
def test_an_edit_beyond_the_original_face_crop_is_drawn(tiny_editor):
    photo, labels = astronaut((0, 0, 512, 384))  # 512 wide, 384 high: the face crop is at most 384 px wide
    edited = labels.copy()
    edited[120:260, 430:500] = HAIR  # hair added to the right of the head, beyond the original face's crop
    added = (edited != labels)
    res = tiny_editor.regenerate(photo, labels, edited)
    changed = changed_pixels(res.image, photo)
    assert changed[added].mean() > 0.5  # the new hair is drawn, not dropped
    assert float((res.image - as_tensor(photo)).abs().mean(0)[torch.from_numpy(added)].mean()) > 0.02
    reach = (tiny_editor.grow + tiny_editor.feather) * 512 / 256  # the blend band, at the largest possible crop
    far = distance_transform_edt(~added) > reach
    assert torch.equal(res.image[:, torch.from_numpy(far)], as_tensor(photo)[:, torch.from_numpy(far)])


# ---------------------------------------------------------------------- 4. a small face in a large square photo
def test_a_small_face_in_a_large_square_photo_is_cropped_around_the_face(tiny_editor):
    photo, labels = small_face(512, 128, (300, 260))
    inp = tiny_editor.prepare(photo, labels)
    top, left, side = inp.box
    ys, xs = np.nonzero(labels != BG)
    assert side < 256  # not the whole 512 px photo: the face fills the model's input
    assert top <= ys.min() and ys.max() < top + side and left <= xs.min() and xs.max() < left + side
    res = tiny_editor.transfer(photo, labels, {"mouth": code(tiny_editor, 2)})
    assert int(np.isin(res.mask.numpy(), MOUTH_LABELS).sum()) >= 10  # the mouth has pixels at the model's size
    reach = (tiny_editor.grow + tiny_editor.feather) * side / 256
    dist = distance_transform_edt(~np.isin(labels, MOUTH_LABELS))
    changed = changed_pixels(res.image, photo)
    assert changed[dist == 0].mean() > 0.5 and not changed[dist > reach + 1].any()


def test_a_face_filling_a_square_photo_is_edited_whole(tiny_editor, synthetic_folder):
    """Training-like faces (filling the frame) keep the whole square photo as the crop."""
    from genkit.core.reading import read_label_map

    image, mask = synthetic_folder / "images" / "synth_00000.png", synthetic_folder / "masks" / "synth_00000.png"
    assert tiny_editor.prepare(image, read_label_map(mask, 11)).box == (0, 0, 64)


# ------------------------------------------------------------------------------ 5. soft-edged colour masks
def test_a_transfer_with_a_blurred_colour_mask_changes_only_that_component(tiny_editor, tmp_path):
    from PIL import ImageFilter

    from genkit.data.schemas import HELEN11

    photo, labels = astronaut()
    path = tmp_path / "soft_mask.png"
    Image.fromarray(HELEN11.colorize(labels)).filter(ImageFilter.GaussianBlur(1.2)).save(path)
    res = tiny_editor.transfer(photo, path, {"mouth": code(tiny_editor, 3)})
    side = tiny_editor.prepare(photo, labels).box[2]
    reach = (tiny_editor.grow + tiny_editor.feather) * side / 256 + 4  # + the blurred edge's width
    dist = distance_transform_edt(~np.isin(labels, MOUTH_LABELS))
    changed = changed_pixels(res.image, photo)
    assert changed[dist == 0].mean() > 0.5 and not changed[dist > reach].any()
