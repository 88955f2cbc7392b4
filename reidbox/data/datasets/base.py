"""Items and the dataset container every parser returns."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

logger = logging.getLogger(__name__)


class Sample(NamedTuple):
    """One image: ``camid`` is 0-based; ``pid`` is a 0..N-1 label in train, raw in query/gallery."""

    path: str
    pid: int
    camid: int
    dsetid: int = 0


class DatasetError(RuntimeError):
    """A dataset folder is missing or malformed; the message says what was expected."""


@dataclass
class ReIDDataset:
    """Train / query / gallery lists of :class:`Sample`. Classification sets leave query empty."""

    name: str
    train: List[Sample]
    query: List[Sample] = field(default_factory=list)
    gallery: List[Sample] = field(default_factory=list)
    root: str = ""

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({s.camid for s in self.train})

    def stats(self) -> Dict[str, Dict[str, int]]:
        """Images / identities / cameras per split."""
        out = {}
        for split in ("train", "query", "gallery"):
            items = getattr(self, split)
            out[split] = {
                "images": len(items),
                "identities": len({s.pid for s in items}),
                "cameras": len({s.camid for s in items}),
            }
        return out


def relabel(items: Iterable[Sample], dsetid: Optional[int] = None) -> List[Sample]:
    """Map raw pids to 0..N-1 in ascending raw-pid order (deterministic across toolboxes)."""
    items = list(items)
    mapping = {pid: i for i, pid in enumerate(sorted({s.pid for s in items}))}
    return [
        Sample(s.path, mapping[s.pid], s.camid, s.dsetid if dsetid is None else dsetid)
        for s in items
    ]


def require_dir(path: str, dataset: str, expected_tree: str) -> str:
    """Fail with the path we looked for and the tree we expected."""
    if not os.path.isdir(path):
        raise DatasetError(
            f"{dataset}: folder not found: {path}\nexpected layout:\n{expected_tree}\n"
            "see docs/datasets.md for how to obtain and lay out the data"
        )
    return path


def warn_counts(dataset: str, split: str, found: int, published: int, what: str = "images") -> bool:
    """Warn (never fail) when a split differs from the published release; True if it matches."""
    if found != published:
        logger.warning("%s %s: found %d %s, the published release has %d",
                       dataset, split, found, what, published)
        return False
    return True


def combine(datasets: Sequence[ReIDDataset], name: str = "combined") -> ReIDDataset:
    """Concatenate training sets; labels shifted so they never collide, ``dsetid`` per source."""
    train: List[Sample] = []
    offset = 0
    for dsetid, ds in enumerate(datasets):
        n = 0
        for s in ds.train:
            train.append(Sample(s.path, s.pid + offset, s.camid, dsetid))
            n = max(n, s.pid + 1)
        offset += n
    return ReIDDataset(name=name, train=train, query=[], gallery=[])
