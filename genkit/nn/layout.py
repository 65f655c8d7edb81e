"""Memory layout for convolution stacks on the CPU.

oneDNN's convolutions run about 25% faster on channels-last (NHWC) tensors on the CPU (VGG-19 to relu4_1 at
1024 px: 3.9 s -> 2.9 s on the 2-core build machine; the same speed with gradients). Networks switch their input to that
layout and hand their outputs back contiguous (NCHW), so callers that ``view`` or ``reshape`` them see no change.
On other devices the layout is left as it is.
"""

from __future__ import annotations

import torch


def conv_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, H, W) in the layout convolutions run fastest in on its device."""
    if x.dim() == 4 and x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def standard_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` back in the default contiguous layout (a no-op when it already is)."""
    return x.contiguous()
