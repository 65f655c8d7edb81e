"""Portrait losses: adversarial modes on logits (numerically sound), feature matching, masked L1/VGG, KL, parsing."""

import pytest
import torch

from genkit.models.portrait.losses import (AdversarialLoss, MaskedPerceptualLoss, build_vgg, feature_matching_loss,
                                           kl_divergence, masked_l1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("mode", ["bce", "hinge", "lsgan"])
def test_adversarial_losses_order_and_stability(mode):
    adv = AdversarialLoss(mode)
    good = adv.discriminator([torch.full((2, 1, 4, 4), 3.0)], [torch.full((2, 1, 4, 4), -3.0)])
    bad = adv.discriminator([torch.full((2, 1, 4, 4), -3.0)], [torch.full((2, 1, 4, 4), 3.0)])
    assert good < bad
    # extreme logits (a sigmoid-then-log implementation gives inf/nan here)
    huge = torch.full((1, 1, 2, 2), 1e4, requires_grad=True)
    for loss in (adv.discriminator([huge], [-huge]), adv.discriminator([-huge], [huge]), adv.generator([-huge])):
        assert torch.isfinite(loss)
    # the generator is pushed to raise the fake logits, also from a (features..., logits) list per scale
    fake = torch.zeros(1, 1, 2, 2, requires_grad=True)
    adv.generator([[torch.zeros(1), fake]]).backward()
    assert (fake.grad < 0).all()


def test_adversarial_rejects_unknown_mode():
    with pytest.raises(ValueError, match="gan mode"):
        AdversarialLoss("wgan")


def test_feature_matching_ignores_logits_and_detaches_real():
    real = [[torch.ones(1, 2, 4, 4), torch.zeros(1, 1, 2, 2)]]
    fake_feat = torch.ones(1, 2, 4, 4, requires_grad=True)
    assert feature_matching_loss(real, [[fake_feat, torch.full((1, 1, 2, 2), 9.0)]]) == 0
    real_feat = torch.zeros(1, 2, 4, 4, requires_grad=True)
    loss = feature_matching_loss([[real_feat, torch.zeros(1)]], [[fake_feat, torch.zeros(1)]])
    loss.backward()
    assert loss == 1 and real_feat.grad is None and fake_feat.grad is not None


def test_masked_l1_and_kl():
    a, b = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    b[..., :2, :] = 1.0
    top = torch.zeros(1, 1, 4, 4)
    top[..., :2, :] = 1
    assert masked_l1(a, b, top) == pytest.approx(1.0)
    assert masked_l1(a, b, 1 - top) == pytest.approx(0.0)
    assert masked_l1(a, b, torch.zeros(1, 1, 4, 4)) == 0
    assert masked_l1(a, b) == pytest.approx(0.5)
    assert kl_divergence(torch.zeros(2, 5), torch.zeros(2, 5)) == 0
    mu, logvar = torch.full((1, 1), 2.0), torch.full((1, 1), 0.5)
    expected = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)
    assert kl_divergence(mu, logvar) == pytest.approx(float(expected))


def test_masked_perceptual_loss_only_sees_the_region():
    vgg = build_vgg(allow_random=True, taps=("relu1_1", "relu2_1"))
    loss = MaskedPerceptualLoss(vgg, {"relu1_1": 1.0, "relu2_1": 1.0})
    torch.manual_seed(0)
    real = torch.rand(1, 3, 32, 32) * 2 - 1
    fake = real.clone()
    fake[..., :, 24:] = -fake[..., :, 24:]  # change the right quarter only
    left = torch.zeros(1, 1, 32, 32)
    left[..., :, :12] = 1
    assert loss(fake, real, left) < 1e-6
    assert loss(fake, real, 1 - left) > 0.05
    x = fake.clone().requires_grad_(True)
    loss(x, real).backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in vgg.parameters())


def test_module_parsing_loss_trains_generator_not_parser():
    """The frozen parser's cross-entropy reaches the generator's weights; the parser never changes."""
    from genkit.models.portrait.module import PortraitGAN
    from fixtures.tiny_portrait import tiny_config

    m = PortraitGAN(image_size=32, allow_random=True, **tiny_config(parser={"random_init": True}, losses={"vgg": 0},
                                                                    validation={"lpips": False}))
    parser_before = {k: v.clone() for k, v in m.parsing_loss.parser.state_dict().items()}
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.randint(0, 11, (2, 32, 32))
    out = m.generator_pass(image, mask, paired=True)
    assert set(out["losses"]) >= {"adv", "fm", "l1", "local", "parsing"}
    m.generator.zero_grad()
    out["losses"]["parsing"].backward()
    assert m.generator.to_image[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.parsing_loss.parser.parameters())
    for k, v in m.parsing_loss.parser.state_dict().items():
        assert torch.equal(v, parser_before[k])
    m.train()
    assert not m.parsing_loss.parser.training  # stays in eval mode (batch-norm statistics frozen)


def test_random_parser_needs_allow_random():
    from genkit.core.errors import ConfigError
    from genkit.models.portrait.module import PortraitGAN
    from fixtures.tiny_portrait import tiny_config

    with pytest.raises(ConfigError, match="allow_random"):
        PortraitGAN(image_size=32, **tiny_config(parser={"random_init": True}, losses={"vgg": 0}))


def test_balanced_l1_counts_a_small_part_as_much_as_a_large_one():
    from genkit.models.portrait.losses import balanced_l1

    real = torch.zeros(1, 3, 10, 10)
    small, large = torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 10, 10)
    small[..., 0, :2] = 1  # 2 px (a lip)
    large[..., 1:, :] = 1  # 90 px (the skin)
    wrong_small, wrong_large = real.clone(), real.clone()
    wrong_small[..., 0, :2] = 1.0
    wrong_large[..., 1:, :] = 1.0
    assert balanced_l1(wrong_small, real, [small, large]) == pytest.approx(0.5)
    assert balanced_l1(wrong_large, real, [small, large]) == pytest.approx(0.5)
    assert masked_l1(wrong_small, real, small + large) < 0.05  # the plain mean hardly sees the small part
    assert balanced_l1(wrong_small, real, [small, large], where=large) == 0  # parts outside `where` drop out


def test_vae_codes_have_the_priors_second_moment_by_construction():
    """Whatever the encoder outputs, E[mu^2 + sigma^2] of each code is 1 (the N(0, I) prior's), so prior samples
    have the scale of the codes the decoder sees; the KL only moves the budget between mu and sigma."""
    from genkit.models.portrait.encoders import ComponentEncoder, prior_scaled
    from genkit.models.portrait.losses import second_moment

    torch.manual_seed(0)
    for scale in (0.01, 1.0, 30.0):
        mu = torch.randn(8, 16) * scale
        for logvar in (torch.full((8, 16), -4.0), torch.rand(8, 16) * -3):
            m = (prior_scaled(mu, logvar).pow(2) + logvar.exp()).mean(1)
            assert torch.allclose(m, torch.ones(8), atol=1e-4)
    enc = ComponentEncoder((16, 16), latent_dim=8, base_channels=4, max_channels=8, variational=True)
    mu, logvar = enc(torch.randn(4, 3, 16, 16) * 5)
    assert float(second_moment(mu, logvar)) == pytest.approx(1.0, abs=1e-4) and float(logvar.max()) <= 0.0
