"""Face parser network, frozen-parser loss and class weights."""

import pytest
import torch

from genkit.data.schemas import CELEBAMASK19, HELEN11
from genkit.models.parsing import ParserNet, ParsingLoss
from genkit.models.parsing.class_weights import count_classes, median_frequency_weights


@pytest.mark.parametrize("schema", [HELEN11, CELEBAMASK19])
def test_logits_shape_follows_schema(schema):
    net = ParserNet(schema.num_classes, base_channels=8, depth=3).eval()
    out = net(torch.rand(2, 3, 48, 64))
    assert out.shape == (2, schema.num_classes, 48, 64)
    assert torch.isfinite(out).all()


def test_input_size_must_be_divisible():
    net = ParserNet(11, base_channels=4, depth=3)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.rand(1, 3, 36, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 32, 32))


def test_network_is_light_enough_to_be_fast():
    # the default network (base 32, depth 4) must stay small: ~2 M parameters (0.03 s per 256 px image measured)
    n = sum(p.numel() for p in ParserNet(11).parameters())
    assert n < 3_000_000


def _loss_setup(input_range="symmetric", weights=None):
    torch.manual_seed(0)
    net = ParserNet(11, base_channels=8, depth=2)
    loss = ParsingLoss(net, class_weights=weights, input_range=input_range)
    image = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    mask = torch.randint(0, 11, (2, 32, 32))
    return net, loss, image, mask


def test_parsing_loss_is_differentiable_wrt_image_and_parser_is_frozen():
    net, loss, image, mask = _loss_setup()
    loss.train()  # the owner switching to training mode must not un-freeze the parser
    assert not net.training
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    value = loss(image, mask)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)
    assert image.grad is not None and torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert torch.equal(bn.running_mean, stats), "BatchNorm statistics of a frozen parser must not change"


def test_parsing_loss_ranges_and_weights():
    net, loss_sym, image, mask = _loss_setup("symmetric")
    loss_unit = ParsingLoss(net, input_range="unit")
    with torch.no_grad():
        assert torch.allclose(loss_sym(image, mask), loss_unit((image + 1) / 2, mask), atol=1e-6)
        w = torch.zeros(11)
        w[3] = 1.0  # only class 3 counts: equals the plain CE on class-3 pixels
        weighted = ParsingLoss(net, class_weights=w)(image, mask)
        logits = net((image + 1) / 2)
        ce = torch.nn.functional.cross_entropy(logits, mask, reduction="none")
        assert torch.allclose(weighted, ce[mask == 3].mean(), atol=1e-5)
    with pytest.raises(ValueError, match="11 classes"):
        ParsingLoss(net, class_weights=torch.ones(5))
    with pytest.raises(ValueError, match="input_range"):
        ParsingLoss(net, input_range="0-255")
    with pytest.raises(ValueError, match="does not match"):
        loss_sym(image, mask[:, :16])


def test_median_frequency_weights_by_hand():
    masks = torch.tensor([[[0, 0, 0, 0, 0, 0], [1, 1, 1, 2, 2, 0]]])  # counts: 0->7, 1->3, 2->2, 3->0
    counts = count_classes([{"mask": masks}], 4)
    assert counts.tolist() == [7, 3, 2, 0]
    w = median_frequency_weights(counts, max_weight=10.0)
    # frequencies 7/12, 3/12, 2/12 over present classes; median 3/12
    assert torch.allclose(w, torch.tensor([3 / 7, 1.0, 1.5, 1.0]), atol=1e-6)
    clipped = median_frequency_weights(torch.tensor([1000, 10, 1]), max_weight=2.0)
    assert clipped.max() <= 2.0 and clipped.min() >= 0.5
    with pytest.raises(ValueError, match="outside"):
        count_classes([{"mask": torch.tensor([[5]])}], 4)
