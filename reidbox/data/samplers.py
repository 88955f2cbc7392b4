"""Identity-balanced P x K batch sampler (optionally camera-balanced within each identity)."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler
from ..errors import InputError


class PKBatchSampler(Sampler[List[int]]):
    """Batches of P identities x K images each.

    Every identity appears at least once per epoch; an identity with fewer than K images is
    sampled with replacement. The epoch's batches depend only on ``seed`` and the epoch set by
    :meth:`set_epoch`, so resumed and distributed runs see the same global batches.

    Every batch is full (P x K images per rank), whatever the identity count: the epoch's
    identity permutation is cut into global batches of ``P * world_size`` identities and the
    last, incomplete one is topped up with identities from the start of the permutation (the
    permutation is cycled when the set has fewer identities than a batch). So BatchNorm never
    sees a short last batch (e.g. one identity with K=1: one image) and every rank runs the same
    number of steps.

    Distributed (``world_size > 1``, ``batch_size`` is the per-rank batch): every rank builds
    the same global batches and takes its own contiguous block of identities, so ranks never
    share an identity within a step (given at least a batch of identities) and together they
    process exactly the batch one process would.

    ``camids`` (one per image) makes the K images of an identity camera-balanced: its cameras
    are visited round-robin in a random order, each giving its images without replacement, so
    K images span min(K, its cameras) cameras and no camera gives two more images than another
    (cross-camera positives in every batch, what re-identification is about). An identity with
    fewer than K images repeats them in the same round-robin.
    """

    def __init__(
        self,
        pids: Sequence[int],
        batch_size: int,
        num_instances: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        camids: Optional[Sequence[int]] = None,
    ) -> None:
        if num_instances < 1 or batch_size % num_instances:
            raise InputError(
                f"batch size {batch_size} must be a multiple of K={num_instances} "
                "(SOLVER.IMS_PER_BATCH and DATALOADER.NUM_INSTANCES)"
            )
        self.k = num_instances
        self.p = batch_size // num_instances  # identities per rank and step
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        index: Dict[int, List[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            index[int(pid)].append(i)
        self.index = dict(sorted(index.items()))
        self.pids = list(self.index)
        self.cams: Optional[Dict[int, List[List[int]]]] = None
        if camids is not None:
            if len(camids) != len(pids):
                raise ValueError(f"{len(camids)} camera ids for {len(pids)} images")
            self.cams = {}
            for pid, idxs in self.index.items():
                by_cam: Dict[int, List[int]] = defaultdict(list)
                for i in idxs:
                    by_cam[int(camids[i])].append(i)
                self.cams[pid] = [by_cam[c] for c in sorted(by_cam)]
        if len(self.pids) < world_size:
            raise InputError(f"{len(self.pids)} identities cannot be split over {world_size} ranks")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self) -> List[List[List[int]]]:
        """Per global batch, the K indices of each of its identities."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.pids)
        order = list(rng.permutation(n))
        step = self.p * self.world_size
        # top up the last batch to a full one from the start of the permutation (cycled)
        order += [order[i % n] for i in range(-n % step)]
        batches = []
        for start in range(0, len(order), step):
            groups = []
            for j in order[start : start + step]:
                pid = self.pids[j]
                if self.cams is not None:
                    groups.append(self._camera_balanced(rng, self.cams[pid]))
                    continue
                idxs = self.index[pid]
                pick = rng.choice(len(idxs), size=self.k, replace=len(idxs) < self.k)
                groups.append([idxs[t] for t in pick])
            batches.append(groups)
        return batches

    def _camera_balanced(self, rng: np.random.Generator, cams: List[List[int]]) -> List[int]:
        """K indices: cameras round-robin (random order), each camera's images shuffled."""
        decks = [[cam[t] for t in rng.permutation(len(cam))] for cam in cams]
        decks = [decks[c] for c in rng.permutation(len(decks))]
        picked: List[int] = []
        depth = 0
        while len(picked) < self.k:
            for deck in decks:
                if len(picked) < self.k:
                    picked.append(deck[depth % len(deck)])
            depth += 1
        return picked

    def __iter__(self) -> Iterator[List[int]]:
        for groups in self._global_batches():
            per_rank = len(groups) // self.world_size
            mine = groups[self.rank * per_rank : (self.rank + 1) * per_rank]
            yield [i for g in mine for i in g]

    def __len__(self) -> int:
        return -(-len(self.pids) // (self.p * self.world_size))
