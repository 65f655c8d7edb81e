"""Self-supervised background filling: free-form holes in the photo's own background are hidden from the background
encoder, pasted from the generator and scored against the photo."""

import pytest
import torch

from fixtures.tiny_portrait import tiny_gan
from genkit.core.errors import ConfigError
from genkit.data.synthetic import synthetic_face
from genkit.models.portrait.holes import free_form_holes

pytestmark = pytest.mark.usefixtures("one_thread")


def test_free_form_holes_are_strokes_not_noise():
    from scipy.ndimage import label

    g = torch.Generator().manual_seed(0)
    holes = free_form_holes(8, 64, generator=g)
    assert set(holes.unique().tolist()) <= {0.0, 1.0}
    cover = holes.flatten(1).mean(1)
    assert bool((cover > 0.01).all()) and bool((cover < 0.6).all())
    parts = [label(h[0].numpy())[1] for h in holes]
    assert max(parts) <= 3  # at most three strokes, each one connected piece
    again = free_form_holes(8, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(holes, again)


def test_holes_lie_in_the_background_hidden_and_inside_the_scored_region():
    torch.manual_seed(0)
    faces = [synthetic_face(64, seed=i) for i in range(4)]
    mask = torch.stack([torch.from_numpy(f[1]) for f in faces]).long()
    model = tiny_gan(64, scheme={"hole_probability": 1.0}, losses={"vgg": 0.0}, validation={"lpips": False})
    holes = model.background_holes(mask, mask)
    assert float(holes.sum()) > 0 and float((holes * (mask != 0).unsqueeze(1)).sum()) == 0  # background only
    torch.manual_seed(1)
    known, alpha, region = model.hidden_photo(mask, mask)
    torch.manual_seed(1)
    plain = tiny_gan(64, scheme={"hole_probability": 0.0}, losses={"vgg": 0.0}, validation={"lpips": False})
    assert plain.background_holes(mask, mask) is None
    known_plain, _, _ = plain.hidden_photo(mask, mask)
    extra = (known_plain - known).clamp(min=0)  # what the holes hid on top of the ring around the face
    assert float(extra.sum()) > 20
    assert bool((alpha[extra.bool()] == 1).all()) and bool((region[extra.bool()] == 1).all())
    with pytest.raises(ConfigError, match="hole_probability must be in \[0, 1\]"):
        tiny_gan(64, scheme={"hole_probability": 1.5}, losses={"vgg": 0.0})


def test_fill_statistics_tell_a_flat_blob_from_the_backdrop():
    from genkit.models.portrait.evaluation import fill_statistics

    torch.manual_seed(0)
    image = (torch.rand(1, 3, 64, 64) * 0.4 + 0.3)  # a textured backdrop
    filled = torch.zeros(64, 64, dtype=torch.bool)
    filled[20:44, 20:44] = True
    ring = ~filled
    same = fill_statistics(image, filled, ring)
    assert same["colour_gap"] < 0.02 and 0.8 < same["texture_ratio"] < 1.25
    blob = image.clone()
    blob[0][:, filled] = torch.tensor([0.7, 0.6, 0.8])[:, None]  # a flat lavender-grey fill
    flat = fill_statistics(blob, filled, ring)
    assert flat["colour_gap"] > 0.15 and flat["texture_ratio"] < 0.5  # windows at its edge still see texture
