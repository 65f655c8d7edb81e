"""Free-form holes for self-supervised background filling.

An edit that uncovers background (hair removed, a face made smaller) needs the generator to paint background that
the photo does not show. Real photos have no ground truth for that, but their own visible background does: hide
random free-form regions of it (brush strokes, as free-form inpainting models train) from the background encoder,
paste the generator's fill there, and score it against the photo. The strokes are random walks of discs.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def free_form_holes(batch: int, size: int, generator: torch.Generator | None = None, strokes: tuple[int, int] = (1, 3),
                    vertices: int = 6, radius: tuple[float, float] = (0.02, 0.06), device=None) -> torch.Tensor:
    """(B, 1, size, size) float in {0, 1}: 1-3 brush strokes per sample, each a random walk of ``vertices`` steps
    of about a sixth of the image, drawn with a disc whose radius is a random fraction (``radius``) of the size."""
    canvas = torch.zeros(batch, 1, size, size)
    step = size / 6.0
    for b in range(batch):
        n = int(torch.randint(strokes[0], strokes[1] + 1, (1,), generator=generator))
        for _ in range(n):
            r = max(1, int(round(size * float(torch.empty(1).uniform_(*radius, generator=generator)))))
            point = torch.rand(2, generator=generator) * size
            stroke = torch.zeros(1, 1, size, size)
            for _ in range(vertices):
                angle = float(torch.rand(1, generator=generator)) * 2 * torch.pi
                nxt = point + step * torch.tensor([torch.sin(torch.tensor(angle)), torch.cos(torch.tensor(angle))])
                for t in torch.linspace(0, 1, max(2, int(step))):
                    y, x = (point + t * (nxt - point)).round().long().tolist()
                    if 0 <= y < size and 0 <= x < size:
                        stroke[0, 0, y, x] = 1.0
                point = nxt.clamp(0, size - 1)
            canvas[b] = torch.maximum(canvas[b], F.max_pool2d(stroke, 2 * r + 1, stride=1, padding=r)[0])
    return canvas.to(device) if device is not None else canvas
