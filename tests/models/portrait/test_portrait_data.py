"""Synthetic faces carry their true background (ground truth for filling what an edit uncovers), through the
paired transform and the dataset."""

import random

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation

from genkit.data.datasets import SyntheticFaceDataset
from genkit.data.schemas import HELEN11
from genkit.data.synthetic import synthetic_face, synthetic_face_with_background
from genkit.data.transforms import PairedTransform


@pytest.mark.parametrize("seed", [0, 5])
def test_synthetic_background_is_the_picture_without_the_face(seed):
    image, labels, background = synthetic_face_with_background(64, seed)
    assert background.shape == image.shape and background.dtype == np.uint8
    old_image, old_labels = synthetic_face(64, seed)
    np.testing.assert_array_equal(old_image, image)  # the face images themselves are unchanged
    np.testing.assert_array_equal(old_labels, labels)
    far = ~binary_dilation(labels > 0, iterations=3)
    assert far.sum() > 500
    np.testing.assert_array_equal(background[far], image[far])
    face = labels > 0
    diff = np.abs(background.astype(int) - image.astype(int)).mean(-1)
    assert diff[face].mean() > 20  # where the face was, the background shows something else


def test_paired_transform_gives_extra_images_the_same_geometry():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    labels = rng.integers(0, 11, (48, 48))
    t = PairedTransform(32, HELEN11, hflip=True, scale_jitter=0.5, value_range="symmetric")
    for seed in range(6):
        x, m, extra = t(image, labels, random.Random(seed), image)
        x2, m2 = t(image, labels, random.Random(seed))
        assert torch.equal(extra, x) and torch.equal(x2, x) and torch.equal(m2, m)


def test_synthetic_dataset_items_carry_the_background():
    t = PairedTransform(32, HELEN11, hflip=True, value_range="symmetric")
    ds = SyntheticFaceDataset(n=4, size=32, seed=1, transform=t, render_size=64)
    for i in range(4):
        item = ds[i]
        bg = item["background"]
        assert bg.shape == item["image"].shape and bg.min() >= -1 and bg.max() <= 1
        face = torch.from_numpy(binary_dilation(item["mask"].numpy() > 0, iterations=4))  # blur + bicubic reach
        assert torch.equal(bg[:, ~face], item["image"][:, ~face])  # same flip and resize as the image
        assert (bg[:, face] - item["image"][:, face]).abs().mean() > 0.05


def test_a_face_can_be_drawn_with_another_faces_component():
    """The ground truth of a transfer: the target's shapes, pose, background and noise with the donor's mouth."""
    from genkit.data.synthetic import render_synthetic_face, synthetic_appearance, transferred_appearance

    target, donor = np.random.default_rng([3, 0]), np.random.default_rng([3, 1])
    image, labels, _, own = render_synthetic_face(64, np.random.default_rng([3, 0]))
    moved, labels2, _, _ = render_synthetic_face(64, target, transferred_appearance(donor, ["mouth"], 64))
    np.testing.assert_array_equal(labels, labels2)
    mouth = np.isin(labels, [7, 8, 9])
    far = ~binary_dilation(mouth, structure=np.ones((3, 3), bool), iterations=3)
    np.testing.assert_array_equal(moved[far], image[far])  # nothing else changes
    lip = synthetic_appearance(64, np.random.default_rng([3, 1]))[7]
    inner = mouth & (labels == 7)
    assert np.abs(moved[inner].mean(0) / 255 - lip).mean() < np.abs(image[inner].mean(0) / 255 - lip).mean()
    assert set(own) >= {1, 4, 7, 10, "hair_texture"}
