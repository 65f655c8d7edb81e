import pytest
import torch

from genkit.nn.vgg import VGG19_CHANNELS, VGG19Encoder


@pytest.fixture(scope="module")
def encoder():
    with pytest.warns(RuntimeWarning):
        return VGG19Encoder(allow_random=True)


def test_taps_shapes_and_channels(encoder):
    out = encoder(torch.rand(2, 3, 64, 48))
    assert list(out) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    for name, f in out.items():
        stride = 2 ** (int(name[4]) - 1)
        assert f.shape == (2, VGG19_CHANNELS[name], 64 // stride, 48 // stride)


def test_random_weights_keep_activations_at_unit_scale(encoder):
    """Variance-preserving init: deep features must not vanish (default init gives ~1e-9 at relu5_1)."""
    out = encoder(torch.rand(1, 3, 64, 64))
    assert 0.1 < out["relu5_1"].std().item() < 10


def test_frozen_but_differentiable_wrt_input(encoder):
    encoder.train()
    assert not encoder.training
    assert all(not p.requires_grad for p in encoder.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    encoder.encode(x, "relu3_1").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_forward_from_continues_the_trunk(encoder):
    x = torch.rand(1, 3, 32, 32)
    out = encoder(x)
    torch.testing.assert_close(encoder.forward_from(out["relu2_1"], "relu2_1", "relu4_1"), out["relu4_1"])


def test_unknown_tap_is_an_error(encoder):
    with pytest.raises(ValueError, match="unknown VGG-19 taps"):
        VGG19Encoder(taps=("relu9_9",), allow_random=True)


def test_channels_last_convolutions_give_the_plain_features_in_the_standard_layout(encoder):
    """On the CPU the trunk runs channels-last (oneDNN's faster path); callers still get contiguous NCHW maps
    equal to a plain layer-by-layer forward."""
    x = torch.rand(1, 3, 64, 64)
    out = encoder(x, taps=("relu2_1", "relu4_1"))
    h, plain = encoder.normalize(x), {}
    for i, layer in enumerate(encoder.features):
        h = layer(h.contiguous())
        if i in (6, 20):
            plain[i] = h
    for name, i in (("relu2_1", 6), ("relu4_1", 20)):
        assert out[name].is_contiguous()
        torch.testing.assert_close(out[name], plain[i], rtol=1e-4, atol=1e-4)
