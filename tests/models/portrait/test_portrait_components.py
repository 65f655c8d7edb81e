"""Portrait components from label maps: crop sizes, centres, crops at borders, placement, missing parts."""

import numpy as np
import pytest
import torch

from genkit.data.schemas import CELEBAMASK19, HELEN11
from genkit.data.synthetic import synthetic_face
from genkit.core.errors import ConfigError
from genkit.models.portrait.components import ComponentLayout, dilate, scaled_crop, window

LEYE, REYE, ULIP, MOUTH, LLIP, HAIR = 4, 5, 7, 8, 9, 10


def face_masks(n=3, size=64):
    return torch.stack([torch.from_numpy(synthetic_face(size, seed=i)[1]) for i in range(n)])


def test_crop_sizes_follow_the_paper_and_scale_with_resolution():
    assert scaled_crop((32, 48), 256) == (32, 48)
    assert scaled_crop((80, 144), 256) == (80, 144)
    assert scaled_crop((32, 48), 128) == (16, 24)
    assert scaled_crop((80, 144), 64) == (20, 36)
    lay = ComponentLayout(HELEN11, 256)
    assert lay.crop_size == {"left_eye": (32, 48), "right_eye": (32, 48), "mouth": (80, 144)}
    assert lay.feature_size("left_eye") == (8, 12) and lay.feature_size("mouth") == (20, 36)
    assert lay.feature_size("skin") == (64, 64) and lay.grid_size == 64
    assert ComponentLayout(HELEN11, 64).input_size("hair") == (64, 64)


def test_layout_rejects_bad_schema_or_size():
    with pytest.raises(ConfigError, match="left_eye"):
        ComponentLayout(CELEBAMASK19, 64)  # celebamask19 names its eyes l_eye / r_eye: map to helen11 first
    with pytest.raises(ConfigError, match="multiple of 16"):
        ComponentLayout(HELEN11, 72)


def test_centres_are_component_centroids_and_absent_parts_fall_back():
    masks = face_masks()
    lay = ComponentLayout(HELEN11, 64)
    centres = lay.centres(masks)
    for b in range(masks.shape[0]):
        ys, xs = np.nonzero(np.isin(masks[b].numpy(), [ULIP, MOUTH, LLIP]))
        assert centres["mouth"][b].tolist() == pytest.approx([ys.mean() + 0.5, xs.mean() + 0.5], abs=1e-3)
        assert centres["left_eye"][b, 1] < centres["right_eye"][b, 1]  # left eye on the left of the picture
    # closed eyes and no mouth: default centres, presence False, no NaN
    m = masks.clone()
    m[np.isin(m.numpy(), [LEYE, REYE, ULIP, MOUTH, LLIP])] = 1
    c = lay.centres(m)
    p = lay.presence(m)
    assert not p["left_eye"].any() and not p["mouth"].any() and p["skin"].all()
    assert c["mouth"][0].tolist() == pytest.approx([0.72 * 64, 0.5 * 64])
    assert all(torch.isfinite(v).all() for v in c.values())


def test_window_matches_naive_indexing_everywhere():
    img = torch.arange(5 * 7, dtype=torch.float32).view(1, 5, 7) + 1
    for top in range(-6, 7):
        for left in range(-8, 9):
            out = window(img, top, left, (3, 4))
            ref = torch.zeros(1, 3, 4)
            for i in range(3):
                for j in range(4):
                    if 0 <= top + i < 5 and 0 <= left + j < 7:
                        ref[0, i, j] = img[0, top + i, left + j]
            assert torch.equal(out, ref), (top, left)


def test_crops_have_fixed_size_and_are_zero_padded_at_borders():
    lay = ComponentLayout(HELEN11, 64)
    img = torch.rand(2, 3, 64, 64) + 0.5  # strictly positive: padding is recognisable
    centre = torch.tensor([[32.0, 32.0], [1.0, 63.0]])  # inside; at the top-right corner
    crop = lay.crop(img, centre, lay.crop_size["mouth"])
    assert crop.shape == (2, 3, 20, 36)
    assert torch.equal(crop[0], img[0, :, 22:42, 14:50])
    assert (crop[1] == 0).float().mean() > 0.5 and (crop[1] > 0).any()


def test_placement_puts_features_at_the_target_centre():
    lay = ComponentLayout(HELEN11, 64)
    feats = torch.randn(3, 5, 5, 9).abs() + 0.1  # the mouth feature size at 64 px
    centres = torch.tensor([[40.0, 32.0], [20.0, 24.0], [60.0, 2.0]])
    placed = lay.place(feats, centres)
    assert placed.shape == (3, 5, 16, 16)
    for b in range(2):  # fully inside: the whole map, centred on centre / 4
        on = placed[b].abs().sum(0) > 0
        ys, xs = torch.nonzero(on, as_tuple=True)
        assert on.sum() == 5 * 9
        assert float(ys.float().mean()) + 0.5 == pytest.approx(float(centres[b, 0]) / 4, abs=0.5)
        assert float(xs.float().mean()) + 0.5 == pytest.approx(float(centres[b, 1]) / 4, abs=0.5)
        assert torch.equal(placed[b][:, on].view(5, 5, 9), feats[b])
    # at the bottom-left corner the map is clipped, never wrapped
    on = placed[2].abs().sum(0) > 0
    assert 0 < on.sum() < 5 * 9 and on[-1, 0] and not on[:10].any()
    # differentiable w.r.t. the features
    f = feats.clone().requires_grad_(True)
    lay.place(f, centres).sum().backward()
    assert f.grad[0].eq(1).all() and f.grad[2].eq(0).any()


def test_regions_masks_and_out_of_schema_labels():
    masks = face_masks(2)
    lay = ComponentLayout(HELEN11, 64)
    skin = lay.region(masks, "skin")
    assert skin.shape == (2, 1, 64, 64)
    assert torch.equal(skin[:, 0].bool(), torch.isin(masks, torch.tensor([1, 2, 3, 6])))
    inputs = lay.extract(torch.ones(2, 3, 64, 64), masks)
    assert torch.equal(inputs["hair"][:, :1], lay.region(masks, "hair"))
    assert inputs["left_eye"].shape == (2, 3, 8, 12)
    bad = masks.clone()
    bad[0, 0, 0] = 11
    with pytest.raises(ValueError, match="outside schema"):
        lay.check_mask(bad)
    assert dilate(lay.region(masks, "mouth"), 2).sum() > lay.region(masks, "mouth").sum()


def test_centres_come_from_the_largest_connected_part_and_specks_do_not_count():
    """A parser's stray pixels (the astronaut's left eye came back in 77 pieces) must not drag the crop centre."""
    lay = ComponentLayout(HELEN11, 64)
    m = torch.ones(1, 64, 64, dtype=torch.long)  # all skin
    m[0, 24:28, 14:24] = LEYE  # the real left eye: 40 px centred at (26, 19)
    m[0, 60, 60] = LEYE  # stray pixels far away
    m[0, 2, 40:42] = LEYE
    m[0, 50, 30:32] = REYE  # only a 2 px speck of a right eye: below the minimum area
    c = lay.centres(m)
    assert c["left_eye"][0].tolist() == pytest.approx([26.0, 19.0])
    p = lay.presence(m)
    assert bool(p["left_eye"][0]) and not bool(p["right_eye"][0])
    assert c["right_eye"][0].tolist() == pytest.approx([0.45 * 64, 0.625 * 64])  # absent: the default centre
    assert lay.min_area["right_eye"] > 2


def test_mouth_crop_is_masked_to_the_mouth_labels():
    masks = face_masks(2)
    lay = ComponentLayout(HELEN11, 64)
    image = torch.rand(2, 3, 64, 64) + 0.5
    crops = lay.extract(image, masks)
    region = lay.crop(lay.region(masks, "mouth"), lay.centres(masks)["mouth"], lay.crop_size["mouth"])
    assert torch.equal(crops["mouth"], lay.crop(image, lay.centres(masks)["mouth"], lay.crop_size["mouth"]) * region)
    assert (crops["mouth"][:, 0] == 0).float().mean() > 0.3  # the surrounding skin is gone
