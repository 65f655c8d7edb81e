"""Parsing photos with a loaded parser (genkit's, BiSeNet, or one mapped to another schema): preparing the input
crop and predicting a label map."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from genkit.core.tensors import pil_to_tensor


@torch.no_grad()
def predict_labels(net: nn.Module, img: Image.Image, device: str | torch.device = "cpu") -> np.ndarray:
    """(H, W) int64 labels (in ``net.schema``) of an RGB image whose sides divide by ``net.multiple``."""
    x = pil_to_tensor(img).unsqueeze(0).to(device)
    return net(x).argmax(1)[0].cpu().numpy().astype(np.int64)
