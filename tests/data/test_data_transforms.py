"""Paired image + mask transforms: shared random parameters, NEAREST masks, flips that swap left/right."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.data.schemas import HELEN11
from genkit.data.transforms import PairedTransform, flip_labels, resize_labels

PALETTE = np.asarray(HELEN11.colors, dtype=np.float32) / 255.0


def _blocks(size: int = 64, block: int = 16) -> np.ndarray:
    """Labels in square blocks covering all 11 classes, different on the left and right."""
    n = size // block
    grid = (np.arange(n * n).reshape(n, n) * 3) % HELEN11.num_classes
    return np.kron(grid, np.ones((block, block), dtype=np.int64))


def _decode(image: torch.Tensor) -> np.ndarray:
    """Nearest palette colour of every pixel -> the label that was painted there."""
    px = image.permute(1, 2, 0).numpy()[..., None, :]
    return np.argmin(((px - PALETTE) ** 2).sum(-1), axis=-1)


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has one label (away from block edges, where bicubic blends)."""
    m = np.pad(mask, 1, mode="edge")
    same = np.ones_like(mask, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            same &= m[dy:dy + mask.shape[0], dx:dx + mask.shape[1]] == mask
    return same


@pytest.mark.parametrize("seed", range(4))
def test_image_and_mask_share_crop_and_scale(seed):
    labels = _blocks()
    image = Image.fromarray((PALETTE[labels] * 255 + 0.5).astype(np.uint8))
    x, m = PairedTransform(40, HELEN11, scale_jitter=0.6)(image, labels, random.Random(seed))
    assert x.shape == (3, 40, 40) and m.shape == (40, 40) and m.dtype == torch.int64
    inner = _interior(m.numpy())
    assert inner.mean() > 0.4
    # away from block edges the colour in the image is the colour of the label in the mask: same crop, same scale
    np.testing.assert_array_equal(_decode(x)[inner], m.numpy()[inner])


def test_flip_mirrors_image_and_mask_together_and_swaps_left_right():
    labels = _blocks()
    image = Image.fromarray((PALETTE[labels] * 255 + 0.5).astype(np.uint8))
    lut = torch.from_numpy(HELEN11.flip_permutation())
    seen = set()
    for seed in range(12):
        # the flip is drawn after the crop, so the same seed without flipping gives the same crop
        x0, m0 = PairedTransform(40, HELEN11, scale_jitter=0.6)(image, labels, random.Random(seed))
        x, m = PairedTransform(40, HELEN11, hflip=True, scale_jitter=0.6)(image, labels, random.Random(seed))
        if torch.equal(x, x0):
            assert torch.equal(m, m0)
            seen.add("plain")
        else:
            torch.testing.assert_close(x, x0.flip(-1))
            assert torch.equal(m, lut[m0.flip(-1)])
            assert not torch.equal(m, m0.flip(-1))  # the swap changed labels: left/right classes are present
            seen.add("flipped")
    assert seen == {"plain", "flipped"}


def test_random_parameters_differ_between_draws_but_repeat_with_the_seed():
    labels = _blocks()
    image = Image.fromarray((PALETTE[labels] * 255).astype(np.uint8))
    t = PairedTransform(32, HELEN11, hflip=True, scale_jitter=0.5)
    outs = [t(image, labels, random.Random(s))[1] for s in range(8)]
    assert len({o.numpy().tobytes() for o in outs}) > 1
    assert torch.equal(t(image, labels, random.Random(3))[1], outs[3])


def test_masks_are_resized_nearest_and_never_normalised():
    labels = np.zeros((30, 30), dtype=np.int64)
    labels[:, ::2] = 10  # one-pixel stripes: any interpolation would create values between 0 and 10
    image = Image.fromarray(np.zeros((30, 30, 3), dtype=np.uint8))
    for size in (17, 45):
        _, m = PairedTransform(size, HELEN11, value_range="symmetric")(image, labels)
        assert set(m.unique().tolist()) == {0, 10}
    assert set(np.unique(resize_labels(labels, (13, 29))).tolist()) <= {0, 10}


def test_value_ranges():
    image = Image.fromarray(np.full((8, 8, 3), 255, dtype=np.uint8))
    labels = np.zeros((8, 8), dtype=np.int64)
    assert PairedTransform(8, HELEN11)(image, labels)[0].max() == 1.0
    x, _ = PairedTransform(8, HELEN11, value_range="symmetric")(Image.fromarray(np.zeros((8, 8, 3), np.uint8)),
                                                               labels)
    assert x.min() == -1.0
    with pytest.raises(ValueError, match="value_range"):
        PairedTransform(8, HELEN11, value_range="bytes")


def test_flip_swaps_left_and_right_labels_and_mirrors():
    labels = np.array([[HELEN11.index("left_eye"), HELEN11.index("skin"), HELEN11.index("right_brow")]])
    flipped = flip_labels(labels, HELEN11)
    assert flipped.tolist() == [[HELEN11.index("left_brow"), HELEN11.index("skin"), HELEN11.index("right_eye")]]
    assert torch.equal(flip_labels(torch.from_numpy(labels), HELEN11), torch.from_numpy(flipped))
