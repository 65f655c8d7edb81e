"""The portrait generator's synthesis core as a traceable network: component codes and label map in, image out.

``PortraitGenerator.synthesize`` finds each crop component's centre as the centroid of its largest connected part
(scipy) and pastes its feature map there with Python-level slicing; a trace would freeze both for the probe mask.
:class:`SynthesisCore` runs the *same* ``synthesize`` with the layout's three data-dependent steps taken from graph
inputs instead: ``centres`` (B, crop components, 2) and ``presence`` (B, components) - computed in Python by
:func:`synthesis_feed`, like the reshuffle matching - and the paste done by index arithmetic (:func:`place_by_index`,
an exact copy of the slicing). Everything else (mask encoder, feature decoders, code broadcasts, background
branch, trunk, output) is the generator's own code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from genkit.models.portrait.components import FEATURE_STRIDE
from genkit.models.portrait.encoders import ComponentCodes


def place_by_index(features: torch.Tensor, centre: torch.Tensor, grid: int) -> torch.Tensor:
    """:meth:`ComponentLayout.place` with tensor ops: ``out[i, j] = features[i - y0, j - x0]`` inside the map, 0
    outside, for the corner ``round(centre / stride - size / 2)`` (round half to even, as Python's ``round``)."""
    _, c, fh, fw = features.shape
    half = torch.tensor([fh / 2, fw / 2], dtype=torch.float32)
    corner = torch.round(centre.float() * (1.0 / FEATURE_STRIDE) - half).long()
    steps = torch.arange(grid, dtype=torch.long)
    rows, cols = steps[None, :] - corner[:, :1], steps[None, :] - corner[:, 1:]
    inside = (((rows >= 0) & (rows < fh))[:, None, :, None] & ((cols >= 0) & (cols < fw))[:, None, None, :])
    out = features.gather(2, rows.clamp(0, fh - 1)[:, None, :, None].expand(-1, c, -1, fw))
    out = out.gather(3, cols.clamp(0, fw - 1)[:, None, None, :].expand(-1, c, grid, -1))
    return out * inside.to(out.dtype)


class _InputLayout:
    """The generator's layout with centres, presence and placement read from graph inputs (see module doc)."""

    def __init__(self, layout, centres: torch.Tensor, presence: torch.Tensor):
        self._layout, self._centres, self._presence = layout, centres, presence

    def __getattr__(self, name):
        return getattr(self._layout, name)

    def check_mask(self, mask: torch.Tensor) -> None:  # value checks are the caller's (synthesis_feed)
        return None

    def centres(self, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self._centres[:, i] for i, name in enumerate(self._layout.crop_size)}

    def presence(self, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self._presence[:, i] > 0.5 for i, name in enumerate(self._layout.names)}

    def place(self, features: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        return place_by_index(features, centre, self._layout.grid_size)


class SynthesisCore(nn.Module):
    """``forward(label_map, centres, presence, [background, known,] *codes) -> image`` in [-1, 1]."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator.eval()

    def input_names(self) -> list[str]:
        bg = ["background", "known"] if self.generator.background else []
        return ["label_map", "centres", "presence", *bg, *(f"code_{n}" for n in self.generator.layout.names)]

    def forward(self, label_map, centres, presence, *rest):
        gen = self.generator
        background, known, codes = (rest[0], rest[1], rest[2:]) if gen.background else (None, None, rest)
        layout = gen.layout
        gen.layout = _InputLayout(layout, centres, presence)
        try:
            z = ComponentCodes(z=dict(zip(layout.names, codes)))
            return gen.synthesize(label_map, z, background, known)
        finally:
            gen.layout = layout


def synthesis_feed(generator, label_map: torch.Tensor, codes: ComponentCodes, background: torch.Tensor | None = None,
                   known: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The ONNX inputs for ``generator.synthesize(label_map, codes, background, known)`` (same defaults)."""
    layout = generator.layout
    generator.check_inputs(background, label_map)
    centres = layout.centres(label_map)
    presence = layout.presence(label_map)
    feed = {"label_map": label_map.long(),
            "centres": torch.stack([centres[n] for n in layout.crop_size], 1).float(),
            "presence": torch.stack([presence[n] for n in layout.names], 1).float()}
    if generator.background:
        if known is None:
            known = generator.background_mask(label_map)
        if background is None:
            background = torch.zeros(label_map.shape[0], 3, *label_map.shape[-2:])
            known = torch.zeros_like(known)
        feed.update(background=background.float(), known=known.float())
    feed.update({f"code_{n}": codes.z[n].float() for n in layout.names})
    return {k: v.detach().cpu().numpy() for k, v in feed.items()}


def probe_inputs(generator, seed: int = 0) -> tuple[torch.Tensor, ComponentCodes, torch.Tensor]:
    """A synthetic face at the generator's size: its label map, its codes and the photo (values in [-1, 1])."""
    from genkit.data.synthetic import synthetic_face

    image, mask = synthetic_face(generator.image_size, seed)
    photo = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    label_map = torch.from_numpy(np.asarray(mask, dtype=np.int64))[None]
    with torch.no_grad():
        codes = generator.encode(photo, label_map)
    return label_map, codes, photo
