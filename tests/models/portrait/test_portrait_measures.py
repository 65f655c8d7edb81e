"""The measurements behind the transfer and background claims mean what they say: an oracle that performs perfect
transfers scores 1, a generator that ignores the donor scores 0."""

import pytest
import torch

from genkit.models.portrait.components import ComponentLayout
from genkit.models.portrait.encoders import ComponentCodes
from genkit.models.portrait.evaluation import TRANSFER_GROUPS, synthetic_transfer_set, transfer_direction

SIZE = 64


class Oracle:
    """Codes are the sample index; rendering returns the synthetic ground truth of whatever transfer the codes say."""

    def __init__(self, faces, perfect: bool = True):
        self.layout = ComponentLayout("helen11", SIZE)
        self.faces, self.perfect = faces, perfect

    def encode(self, image, mask):
        idx = torch.arange(image.shape[0], dtype=torch.float32).view(-1, 1)
        return ComponentCodes({n: idx.clone() for n in self.layout.names},
                              presence=self.layout.presence(mask))

    def render(self, mask, codes, image, photo_mask=None):
        out = image.clone()
        if self.perfect:
            own = torch.arange(image.shape[0])
            for i in range(image.shape[0]):
                moved = [g for g, names in TRANSFER_GROUPS.items() if int(codes.z[names[0]][i]) != int(own[i])]
                if moved:
                    out[i] = self.faces["expected"]["+".join(moved)][i]
        return {"image": out}


@pytest.fixture(scope="module")
def faces():
    return synthetic_transfer_set(12, SIZE)


def test_perfect_transfers_score_one(faces):
    result = transfer_direction(Oracle(faces), faces["image"], faces["mask"], faces["perm"], faces["expected"])
    for g, r in result.items():
        assert r["pairs"] >= 8, g
        assert r["toward_donor"] == 1.0 and r["others_stay"] == 1.0, (g, r)


def test_ignoring_the_donor_scores_zero(faces):
    result = transfer_direction(Oracle(faces, perfect=False), faces["image"], faces["mask"], faces["perm"],
                                faces["expected"])
    assert all(r["toward_donor"] == 0.0 and r["others_stay"] > 0.9 for r in result.values())
