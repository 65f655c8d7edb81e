"""Shapes of every portrait network, placement, background keeping by construction, missing components, VAE."""

import pytest
import torch

from genkit.data.schemas import HELEN11
from genkit.data.synthetic import synthetic_face
from genkit.data.transforms import one_hot, to_symmetric
from genkit.models.portrait.components import ComponentLayout, dilate
from genkit.models.portrait.encoders import ComponentAutoencoder, ComponentCodes
from genkit.models.portrait.generator import BackgroundEncoder, MaskEncoder
from genkit.nn.blocks import MultiScaleDiscriminator, PatchDiscriminator, ResBlock

from fixtures.tiny_portrait import TINY_GENERATOR, tiny_generator

MOUTH_LABELS = (7, 8, 9)


pytestmark = pytest.mark.usefixtures("one_thread")


def faces(n=2, size=64, offset=0):
    pairs = [synthetic_face(size, seed=offset + i) for i in range(n)]
    img = torch.stack([to_symmetric(torch.from_numpy(p[0]).permute(2, 0, 1).float() / 255) for p in pairs])
    return img, torch.stack([torch.from_numpy(p[1]) for p in pairs])


@pytest.fixture(scope="module")
def gen():
    return tiny_generator(64).eval()


@pytest.mark.parametrize("size", [64, 256])
def test_component_networks_shapes(size):
    lay = ComponentLayout(HELEN11, size)
    for name in lay.names:
        ae = ComponentAutoencoder(lay.input_size(name), latent_dim=16, feature_channels=256 if size == 256 else 8,
                                  base_channels=4, max_channels=8, variational=True)
        x = torch.randn(2, 3, *lay.input_size(name))
        mu, logvar = ae.encoder(x)
        assert mu.shape == logvar.shape == (2, 16)
        assert ae.image_decoder(mu).shape == x.shape
        feat = ae.feature_decoder(mu)
        assert feat.shape == (2, 256 if size == 256 else 8, *lay.feature_size(name))
    if size == 256:  # the paper's sizes: 256-channel maps, 8x12 eyes, 20x36 mouth, 64x64 skin/hair
        assert lay.feature_size("right_eye") == (8, 12) and lay.feature_size("hair") == (64, 64)


def test_mask_encoder_background_encoder_and_discriminators_shapes():
    m = one_hot(torch.randint(0, 11, (2, 64, 64)), 11)
    assert MaskEncoder(11, ngf=8)(m).shape == (2, 32, 16, 16)
    full = MaskEncoder(11, ngf=64)
    assert full.out_channels == 256 and full.net[0][0].kernel_size == (7, 7)
    low, high = BackgroundEncoder(6)(torch.randn(2, 3, 64, 64), torch.ones(2, 1, 64, 64))
    assert high.shape == (2, 6, 64, 64) and low.shape == (2, 24, 16, 16)  # full resolution, and H/4 for the trunk
    d = MultiScaleDiscriminator(14, num_scales=2, base_channels=8, n_layers=3)
    out = d(torch.randn(2, 14, 64, 64))
    assert len(out) == 2 and len(out[0]) == 5
    assert out[0][-1].shape[:2] == (2, 1) and out[1][-1].shape[-1] < out[0][-1].shape[-1]
    assert PatchDiscriminator(14, 8, 2)(torch.randn(1, 14, 32, 32))[-1].shape[1] == 1
    r = ResBlock(8)
    assert r(torch.randn(1, 8, 5, 5)).shape == (1, 8, 5, 5)


@pytest.mark.parametrize("size", [64, 256])
def test_generator_output_shape_and_range(size):
    g = tiny_generator(size, seed=None).eval()
    img, mask = faces(1, size)
    with torch.no_grad():
        codes = g.encode(img, mask)
        out = g.synthesize(mask, codes, img)
    assert set(codes.z) == {"left_eye", "right_eye", "mouth", "skin", "hair"}
    assert codes.z["mouth"].shape == (1, TINY_GENERATOR["latent_dim"])
    assert out.shape == (1, 3, size, size) and out.abs().max() <= 1
    assert g.config()["image_size"] == size and g.config()["schema"]["name"] == "helen11"


def test_generator_places_component_features_at_the_target_mask_centre(gen):
    img, mask = faces(1)
    codes = gen.encode(img, mask)
    moved = mask.clone()
    mouth = torch.isin(moved, torch.tensor(MOUTH_LABELS))
    moved[mouth] = 1
    ys, xs = torch.nonzero(mouth[0], as_tuple=True)
    shift = -16  # move the mouth up by 16 px in the *target* mask
    moved[0, ys + shift, xs] = mask[0, ys, xs]
    placed = gen.placed_features(codes, moved)["mouth"][0].abs().sum(0)
    on = torch.nonzero(placed > 0).float()
    target_centre = gen.layout.centres(moved)["mouth"][0] / 4
    assert on.mean(0).add(0.5).tolist() == pytest.approx(target_centre.tolist(), abs=0.6)
    # the source centre would be 4 grid cells lower
    assert float(on[:, 0].mean()) + 0.5 < float(gen.layout.centres(mask)["mouth"][0, 0]) / 4 - 3


def test_render_keeps_the_photo_outside_the_edit_region_by_construction(gen):
    """Swapping every component changes the face; outside the union of the masks, grown and feathered, the result
    is the photo bit for bit (a random generator: nothing here is learned)."""
    img, mask = faces(2)
    with torch.no_grad():
        codes = gen.encode(img, mask)
        swapped = codes.mix(codes.index([1, 0]), {n: True for n in codes.names})
        out = gen.render(mask, swapped, img)
        raw = gen.synthesize(mask, swapped, img)
    face = 1 - gen.layout.background(mask)
    far = 1 - dilate(face, gen.paste_grow + gen.paste_feather + 1)
    assert far.sum() > 200
    assert torch.equal(out["image"] * far, img * far)
    assert ((raw - img).abs() * far).amax() > 0.05  # the raw output differs there: the paste does the keeping
    assert torch.equal(out["alpha"] > 0, dilate(face, gen.paste_grow + gen.paste_feather) > 0)
    assert ((out["image"] - img).abs() * face).mean() > 1e-3 and torch.equal(out["raw"], raw)


def test_missing_components_do_not_crash_and_get_zero_codes(gen):
    img, mask = faces(2)
    m = mask.clone()
    m[torch.isin(m, torch.tensor((4, 5, 7, 8, 9)))] = 1  # closed eyes, no mouth
    m[1][m[1] == 10] = 0  # second face: hair cropped away entirely
    with torch.no_grad():
        codes = gen.encode(img, m)
        out = gen.synthesize(m, codes, img)
        empty = torch.zeros_like(m)  # nothing but background
        out2 = gen.synthesize(empty, gen.encode(img, empty), img)
    assert torch.isfinite(out).all() and torch.isfinite(out2).all()
    for name in ("left_eye", "right_eye", "mouth"):
        assert not codes.presence[name].any() and codes.z[name].abs().sum() == 0
    assert codes.presence["hair"].tolist() == [True, False] and codes.z["hair"][1].abs().sum() == 0
    placed = gen.placed_features(codes, m)
    assert placed["mouth"].abs().sum() == 0 and placed["hair"][1].abs().sum() == 0
    # a component at the very border of the image
    edge = mask.clone()
    edge[edge == 4] = 1
    edge[0, 20:24, 0:3] = 4
    with torch.no_grad():
        assert torch.isfinite(gen.synthesize(edge, gen.encode(img, edge), img)).all()


def test_vae_option_samples_and_its_kl_term_trains_the_encoder():
    from genkit.models.portrait.losses import kl_divergence

    torch.manual_seed(0)
    g = tiny_generator(64, seed=None, variational=True)
    img, mask = faces(2)
    a = g.encode(img, mask, sample=True)
    b = g.encode(img, mask, sample=True)
    det = g.encode(img, mask, sample=False)
    assert not torch.allclose(a.z["skin"], b.z["skin"])
    assert torch.allclose(det.z["skin"], det.mu["skin"])
    kl = torch.stack([kl_divergence(a.mu[n], a.logvar[n]) for n in a.names]).mean()
    kl.backward()
    head = g.embedding.parts["mouth"].encoder.logvar
    assert kl > 0 and head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    # the autoencoder default has no log-variance head at all
    assert tiny_generator(64, seed=None).embedding.parts["mouth"].encoder.logvar is None


def test_codes_index_and_mix():
    z = {"mouth": torch.arange(6.).view(3, 2), "skin": -torch.arange(6.).view(3, 2)}
    c = ComponentCodes(z, presence={"mouth": torch.tensor([True, False, True]), "skin": torch.ones(3, dtype=torch.bool)})
    other = c.index([2, 0, 1])
    mixed = c.mix(other, {"mouth": torch.tensor([True, False, False])})
    assert mixed.z["mouth"].tolist() == [[4, 5], [2, 3], [4, 5]]
    assert torch.equal(mixed.z["skin"], z["skin"])
    assert mixed.presence["mouth"].tolist() == [True, False, True]
    with pytest.raises(KeyError):
        c.mix(other, {"nose": True})
