"""Real sample photos that ship inside installed packages (scikit-image, matplotlib): the offline default
content and style images for the style model and the demo."""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

CONTENT_SAMPLES = ("astronaut", "grace_hopper", "coffee", "chelsea")
# colourful style images: photos that ship with scikit-image, and genkit's procedural paintings
STYLE_SAMPLES = ("brush_strokes", "mosaic", "immunohistochemistry", "coffee")  # hubble_deep_field: mostly black sky
TEXTURE_SAMPLES = ("brick", "gravel")  # grey textures: patterns transfer, colour cannot


def sample_photo(name: str) -> Image.Image:
    """One sample image as an RGB PIL image: a photo shipped with scikit-image or matplotlib, or one of genkit's
    procedural paintings (:mod:`genkit.data.paintings`, drawn at 256 px)."""
    from genkit.data.paintings import PAINTINGS, painting

    if name in PAINTINGS:
        return painting(name, size=256)
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return Image.open(f).convert("RGB")
    import skimage.data

    if not hasattr(skimage.data, name):
        raise KeyError(f"unknown sample photo {name!r}")
    arr = np.asarray(getattr(skimage.data, name)())
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    if arr.dtype != np.uint8:
        arr = (arr / max(arr.max(), 1) * 255).astype(np.uint8)
    return Image.fromarray(arr[..., :3])


class SamplePhotoDataset(Dataset):
    def __init__(self, size: int = 128, names=CONTENT_SAMPLES + ("brick", "gravel", "rocket")):
        from genkit.data.transforms import center_crop_resize
        from genkit.core.tensors import pil_to_tensor

        self.names = list(names)
        self.images = [pil_to_tensor(center_crop_resize(sample_photo(n), size)[0]) for n in self.names]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "name": self.names[i]}
