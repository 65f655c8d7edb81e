"""Training order that a resumed run can reproduce exactly.

:class:`EpochSampler` draws each epoch's order from ``(seed, epoch)`` alone (sharded over DDP ranks, as a
``DistributedSampler``, which Lightning therefore keeps), can skip the part of an epoch a checkpoint had already
trained on, and gives every sample its own seed. :class:`SeededSamples` reads a sample with Python's ``random``
(which the paired transforms draw from) seeded by that seed and restores the global state afterwards. So the
augmentation of a sample depends on ``(seed, epoch, index)`` only: not on worker processes, prefetching or where a
run was stopped, and data loading never advances the global random state the model's own randomness comes from.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
from torch.utils.data import Dataset, DistributedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([abs(int(seed)), int(epoch), int(index)]).generate_state(1)[0])


class EpochSampler(DistributedSampler):
    """Seeded per-epoch order yielding ``(index, sample_seed)``; :meth:`resume` skips what a checkpoint trained on."""

    def __init__(self, dataset: Dataset, seed: int = 0, shuffle: bool = True, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self._resume: tuple[int, int] | None = None

    def resume(self, epoch: int, n_samples: int) -> None:
        """The next pass over ``epoch`` starts after its first ``n_samples`` samples (of this rank)."""
        self._resume = (epoch, n_samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())
        if self._resume is not None and self._resume[0] == self.epoch:
            indices = indices[self._resume[1]:]
            self._resume = None
        return iter([(i, sample_seed(self.seed, self.epoch, i)) for i in indices])


class SeededSamples(Dataset):
    """``dataset[index]`` with ``random`` seeded per sample (keys from :class:`EpochSampler`; a plain index, as from
    Lightning's ``overfit_batches`` sequential sampler, uses epoch 0's seed). Other attributes pass through."""

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any):
        index, seed = key if isinstance(key, tuple) else (key, sample_seed(self.seed, 0, key))
        state = random.getstate()
        random.seed(seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(state)

    def __getattr__(self, name: str):
        if name in ("dataset", "seed") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
