"""VGG-19 encoder variants: torchvision (default) and the Caffe VGG-19 of the official reshuffle release.

Each variant's preprocessing is checked against a hand computation; the Caffe file's published key layout loads;
the identity string that decoders and metric protocols record tells the encoders apart; offline errors are clear.
"""

import dataclasses

import pytest
import torch
from fixtures.published_weights import caffe_vgg19_shapes, write_caffe_vgg19_file

from genkit.core import weights
from genkit.core.errors import ConfigError, WeightsFileError, WeightsUnavailableError
from genkit.nn.vgg import VGG19_VARIANTS, CaffeNormalize, ImageNetNormalize, VGG19Encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def test_torchvision_preprocessing_by_hand():
    """RGB in [0, 1]; (x - mean) / std with mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)."""
    x = torch.tensor([0.485 + 0.229, 0.456 - 2 * 0.224, 1.0]).view(1, 3, 1, 1)
    expected = torch.tensor([1.0, -2.0, (1.0 - 0.406) / 0.225])
    torch.testing.assert_close(ImageNetNormalize()(x).flatten(), expected, rtol=0, atol=1e-6)


def test_caffe_preprocessing_by_hand():
    """RGB (1.0, 0.5, 0.0) -> BGR in 0..255 (0, 127.5, 255) -> minus (103.939, 116.779, 123.68), no std."""
    x = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    expected = torch.tensor([0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68])  # B, G, R
    torch.testing.assert_close(CaffeNormalize()(x).flatten(), expected, rtol=0, atol=1e-4)
    # a batch of images keeps its layout; only the channel order flips
    y = torch.rand(2, 3, 4, 5)
    torch.testing.assert_close(CaffeNormalize()(y)[:, 0], y[:, 2] * 255 - 103.939, rtol=0, atol=1e-4)


def test_variants_declare_their_preprocessing_and_weights():
    assert set(VGG19_VARIANTS) == {"torchvision", "caffe"}
    assert VGG19_VARIANTS["torchvision"].weights_name == "vgg19"
    assert VGG19_VARIANTS["caffe"].weights_name == "vgg19-caffe"
    entry = weights.get_entry("vgg19-caffe")
    assert entry.file_name == "vgg19-d01eb7cb.pth" and entry.sha256_prefix == "d01eb7cb"


def test_caffe_file_in_the_published_layout_loads(tmp_path):
    path = tmp_path / "vgg19-d01eb7cb.pth"
    state = write_caffe_vgg19_file(path, seed=3, legacy_format=True)
    assert set(caffe_vgg19_shapes(with_classifier=False)) <= set(state)
    enc = VGG19Encoder(taps=("relu1_1", "relu5_1"), variant="caffe", weights_path=str(path))
    assert enc.variant == "caffe" and not enc.random_weights
    assert isinstance(enc.normalize, CaffeNormalize)
    torch.testing.assert_close(enc.features[0].weight, state["features.0.weight"])
    torch.testing.assert_close(enc.features[28].bias, state["features.28.bias"])  # conv5_1
    # the encoder sees the Caffe preprocessing: features of x equal the trunk on (BGR*255 - mean)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        by_hand = enc.features[:2](x.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1))
        torch.testing.assert_close(enc(x, ("relu1_1",))["relu1_1"], by_hand, rtol=1e-4, atol=1e-3)
    assert enc.identity == f"vgg19-caffe:sha256:{weights.sha256_file(path)}"


def test_identity_tells_encoders_apart(tmp_path):
    path = tmp_path / "vgg19-d01eb7cb.pth"
    write_caffe_vgg19_file(path)
    caffe = VGG19Encoder(taps=("relu1_1",), variant="caffe", weights_path=str(path))
    # the same file used as torchvision weights is another encoder (other preprocessing)
    tv = VGG19Encoder(taps=("relu1_1",), variant="torchvision", weights_path=str(path))
    with pytest.warns(RuntimeWarning, match="RANDOM"):
        rnd = VGG19Encoder(taps=("relu1_1",), variant="caffe", weights="random")
    assert tv.identity.startswith("vgg19-torchvision:sha256:") and isinstance(tv.normalize, ImageNetNormalize)
    assert rnd.identity == "vgg19-caffe:random"
    assert len({caffe.identity, tv.identity, rnd.identity}) == 3


def test_caffe_weights_offline_error_names_the_file_and_the_import(_isolated_weights_dir):
    with pytest.raises(WeightsUnavailableError) as exc:
        VGG19Encoder(taps=("relu1_1",), variant="caffe")
    msg = str(exc.value)
    assert "vgg19-d01eb7cb.pth" in msg and str(_isolated_weights_dir) in msg
    assert "genkit weights import vgg19-caffe" in msg
    with pytest.warns(RuntimeWarning, match="vgg19-caffe"):
        enc = VGG19Encoder(taps=("relu1_1",), variant="caffe", allow_random=True)
    assert enc.random_weights and weights.provenance()["vgg19-caffe"]["random"] is True


def test_registry_file_is_used_for_the_caffe_variant(tmp_path, monkeypatch):
    f = tmp_path / "dl" / "vgg19-d01eb7cb.pth"
    state = write_caffe_vgg19_file(f, seed=7)
    entry = weights.get_entry("vgg19-caffe")
    monkeypatch.setitem(weights.REGISTRY, entry.name, dataclasses.replace(entry, sha256_prefix=weights.sha256_file(f)))
    weights.import_weights("vgg19-caffe", f)
    enc = VGG19Encoder(taps=("relu1_1",), variant="caffe")
    torch.testing.assert_close(enc.features[0].weight, state["features.0.weight"])


def test_bad_variant_and_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown VGG-19 variant 'cafe'.*torchvision, caffe"):
        VGG19Encoder(taps=("relu1_1",), variant="cafe", allow_random=True)
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(WeightsFileError, match=r"partial.pth: does not fit the caffe VGG-19 .*missing features.0.bias"):
        VGG19Encoder(taps=("relu1_1",), variant="caffe", weights_path=str(tmp_path / "partial.pth"))


def test_style_metrics_and_perceptual_loss_take_the_variant(tmp_path):
    from genkit.metrics.style import build_style_encoder, style_transfer_metrics
    from genkit.models.portrait.losses import build_vgg

    path = tmp_path / "vgg19-d01eb7cb.pth"
    write_caffe_vgg19_file(path)
    enc = build_style_encoder(weights_path=str(path), variant="caffe")
    assert enc.variant == "caffe"
    x = torch.rand(1, 3, 32, 32)
    res = style_transfer_metrics(x, x, x, enc)
    assert res["protocol"]["vgg19"] == f"sha256:{weights.sha256_file(path)}"
    assert res["protocol"]["encoder"] == enc.identity
    with pytest.warns(RuntimeWarning):
        assert build_vgg(True, ("relu1_1",), variant="caffe").variant == "caffe"


def test_the_portrait_model_takes_the_caffe_vgg_for_its_perceptual_loss():
    from genkit.models.portrait.module import PortraitGAN
    from fixtures.tiny_portrait import tiny_config

    with pytest.warns(RuntimeWarning, match="RANDOM WEIGHTS: 'vgg19-caffe'"):
        model = PortraitGAN(image_size=32, allow_random=True,
                            **tiny_config(losses={"vgg_variant": "caffe"}, validation={"lpips": False}))
    assert model.perceptual.vgg.variant == "caffe"
    assert isinstance(model.perceptual.vgg.normalize, CaffeNormalize)
    with pytest.raises(ConfigError, match="unknown VGG-19 variant 'cafe'"):
        PortraitGAN(image_size=32, **tiny_config(losses={"vgg_variant": "cafe"}))
