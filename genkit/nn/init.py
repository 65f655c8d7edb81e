"""Variance-preserving initialisation for networks run with random weights.

With PyTorch's default initialisation, deep ImageNet trunks (VGG, Inception) shrink their activations layer by
layer (to ~1e-9 at relu5_1), which makes every downstream number meaningless. He-normal convolutions, zero
biases and identity batch-norm statistics keep activations at unit scale. Seeded, so random-weight runs are
reproducible across processes (tests compare numbers between tools).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def variance_preserving_init(module: nn.Module, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return module
