"""Identity-balanced P x K batch sampler."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterator, List, Sequence

import numpy as np
from torch.utils.data import Sampler


class PKBatchSampler(Sampler[List[int]]):
    """Batches of P identities x K images each.

    Every identity appears exactly once per epoch; an identity with fewer than K images is
    sampled with replacement. The epoch's order depends only on ``seed`` and the epoch set by
    :meth:`set_epoch`, so resumed and distributed runs see the same batches. The last batch may
    hold fewer than P identities. With ``world_size > 1``, rank ``r`` takes batches ``r::world``
    (identities never overlap across ranks) and every rank yields the same number of batches.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if num_instances < 1 or batch_size % num_instances:
            raise ValueError(f"batch size {batch_size} must be a multiple of K={num_instances} "
                             "(SOLVER.IMS_PER_BATCH and DATALOADER.NUM_INSTANCES)")
        self.k = num_instances
        self.p = batch_size // num_instances
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        index: Dict[int, List[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            index[int(pid)].append(i)
        self.index = dict(sorted(index.items()))
        self.pids = list(self.index)
        if not self.pids:
            raise ValueError("the training set is empty")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> List[List[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.pids))
        batches = []
        for start in range(0, len(order), self.p):
            batch = []
            for j in order[start:start + self.p]:
                idxs = self.index[self.pids[j]]
                pick = rng.choice(len(idxs), size=self.k, replace=len(idxs) < self.k)
                batch.extend(idxs[t] for t in pick)
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        batches = self._all_batches()
        if self.world_size > 1:
            n = -(-len(batches) // self.world_size) * self.world_size
            batches = (batches * 2)[:n]  # wrap around so every rank gets the same count
            batches = batches[self.rank::self.world_size]
        return iter(batches)

    def __len__(self) -> int:
        n = -(-len(self.pids) // self.p)
        return -(-n // self.world_size)
