"""EMA of the generator with a warm-up: the decay ramps up with the number of updates."""

import pytest
import torch
from torch import nn

from genkit.models.portrait.ema import WarmupEMA, warmup_decay


def test_decay_ramps_up_with_the_updates_and_is_capped():
    assert warmup_decay(1, 0.999, 10) == pytest.approx(2 / 11)
    assert warmup_decay(90, 0.999, 10) == pytest.approx(0.91)
    assert warmup_decay(10 ** 6, 0.999, 10) == 0.999
    assert warmup_decay(5, 0.9, 0) == 0.9  # no warm-up: the plain decay
    with pytest.raises(ValueError):
        WarmupEMA(nn.Linear(2, 2), decay=1.0)


def _drift(ema: WarmupEMA, net: nn.Linear, steps: int) -> None:
    """The weights move steadily (as in training); the EMA follows."""
    for _ in range(steps):
        with torch.no_grad():
            net.weight.add_(0.1)
        ema.update_parameters(net)


def test_early_average_follows_the_weights_unlike_a_fixed_decay():
    """After 50 updates a fixed decay of 0.99 still remembers the initial weights (the issue's 'EMA far worse than
    the raw generator at 192 steps'); with the warm-up the average lags by only a few updates."""
    torch.manual_seed(0)
    net = nn.Linear(3, 3)
    warm = WarmupEMA(net, decay=0.99, warmup=10)
    fixed = WarmupEMA(net, decay=0.99, warmup=0)
    warm.update_parameters(net)  # the first update copies
    fixed.update_parameters(net)
    for _ in range(50):
        with torch.no_grad():
            net.weight.add_(0.1)
        warm.update_parameters(net)
        fixed.update_parameters(net)
    lag_warm = float((net.weight - warm.module.weight).abs().mean())
    lag_fixed = float((net.weight - fixed.module.weight).abs().mean())
    assert lag_warm < 0.25 * lag_fixed
    assert lag_warm < 1.0  # under 10 updates of drift behind
    assert int(warm.n_averaged) == 51 and warm.current_decay == pytest.approx(min(0.99, 52 / 61))
    assert all(not p.requires_grad for p in warm.parameters())


def test_state_round_trips_through_a_state_dict():
    net = nn.Linear(2, 2)
    a = WarmupEMA(net, decay=0.9, warmup=10)
    _drift(a, net, 5)
    b = WarmupEMA(nn.Linear(2, 2), decay=0.9, warmup=10)
    b.load_state_dict(a.state_dict())
    assert int(b.n_averaged) == 5 and torch.equal(b.module.weight, a.module.weight)
    assert b.current_decay == a.current_decay
