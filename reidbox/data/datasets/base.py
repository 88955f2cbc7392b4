"""Items, the dataset container every parser returns, and the helpers parsers share."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")


class Sample(NamedTuple):
    """One image: ``camid`` is 0-based; ``pid`` is a 0..N-1 label in train, raw in query/gallery."""

    path: str
    pid: int
    camid: int
    dsetid: int = 0


class DatasetError(RuntimeError):
    """A dataset folder is missing or malformed; the message says what was expected."""


@dataclass(repr=False)
class ReIDDataset:
    """Train / query / gallery lists of :class:`Sample`.

    A combined training set (``market_duke``, ``DATASETS.TRAIN: [a, b]``) has empty
    ``query``/``gallery`` and keeps each source's own test split in ``test_sets``
    (``{source name: (query, gallery)}``): test sets are never merged.
    """

    name: str
    train: List[Sample]
    query: List[Sample] = field(default_factory=list)
    gallery: List[Sample] = field(default_factory=list)
    root: str = ""
    test_sets: Dict[str, Tuple[List[Sample], List[Sample]]] = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({s.camid for s in self.train})

    def evaluation_sets(self) -> List[Tuple[str, List[Sample], List[Sample]]]:
        """``(name, query, gallery)`` to evaluate: its own split, else each source's."""
        out = []
        if self.query or self.gallery:
            out.append((self.name, self.query, self.gallery))
        out.extend((k, q, g) for k, (q, g) in self.test_sets.items())
        return out

    def __repr__(self) -> str:
        """A one-line summary (the sample lists hold up to hundreds of thousands of entries)."""
        parts = []
        for split, st in self.stats().items():
            if st["images"] or split == "train":
                parts.append(f"{split} {st['images']:,} images / {st['identities']:,} ids / "
                             f"{st['cameras']} cams")
        if self.test_sets:
            parts.append("test sets " + ", ".join(self.test_sets))
        return f"{type(self).__name__}({self.name!r}, {'; '.join(parts)}, root={self.root!r})"

    def stats(self) -> Dict[str, Dict[str, int]]:
        """Images / identities / cameras per split."""
        out = {}
        for split in SPLITS:
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


def require_file(path: str, dataset: str, expected_tree: str, what: str = "file") -> str:
    """Like :func:`require_dir` for a single file."""
    if not os.path.isfile(path):
        raise DatasetError(
            f"{dataset}: {what} not found: {path}\nexpected layout:\n{expected_tree}\n"
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


def check_published(ds: ReIDDataset, published: Mapping[Tuple[str, str], int],
                    name: Optional[str] = None) -> bool:
    """Compare ``ds.stats()`` with ``{(split, "images"|"identities"|"cameras"): count}``.

    Every difference is a warning naming the split and both numbers; True when all match.
    Callers decide first whether the folder looks like the full release.
    """
    stats = ds.stats()
    ok = True
    for (split, what), count in published.items():
        ok &= warn_counts(name or ds.name, split, stats[split][what], count, what)
    return ok


def looks_full(found_images: int, published_images: int, fraction: float = 0.9) -> bool:
    """A folder "looks like the full release" when it holds at least ``fraction`` of it.

    Tiny test trees and deliberate subsets are not compared with the published counts.
    """
    return found_images >= fraction * published_images


def combine(datasets: Sequence[ReIDDataset], name: str = "combined",
            names: Optional[Sequence[str]] = None) -> ReIDDataset:
    """Concatenate training sets of several datasets into one.

    Dataset ``k`` gets ``dsetid = k`` (a combined source keeps one dsetid per inner source,
    numbered after the earlier ones); its labels are shifted past all earlier labels
    (offset = max label + 1 so far) and its cameras past all earlier cameras (offset = max
    camid + 1 so far; equals torchreid's count of distinct cameras for the real sets, and can
    never collide). Test splits are not merged: ``test_sets`` keeps each source's own
    query/gallery, raw pids and cameras, with that source's ``dsetid``.
    """
    if not datasets:
        raise DatasetError("combine: no datasets given")
    names = list(names) if names is not None else [d.name for d in datasets]
    if len(names) != len(datasets):
        raise ValueError("combine: names and datasets differ in length")
    train: List[Sample] = []
    test_sets: Dict[str, Tuple[List[Sample], List[Sample]]] = {}
    pid_offset = cam_offset = dset_offset = 0
    for ds, key in zip(datasets, names):
        # A source that is itself combined keeps its sources apart: its dsetids are renumbered
        # after the earlier datasets' instead of being flattened into one.
        ranks = {d: dset_offset + r for r, d in enumerate(sorted({s.dsetid for s in ds.train}))}
        for s in ds.train:
            train.append(Sample(s.path, s.pid + pid_offset, s.camid + cam_offset, ranks[s.dsetid]))
        if ds.train:
            pid_offset += max(s.pid for s in ds.train) + 1
            cam_offset += max(s.camid for s in ds.train) + 1
        sets = ds.evaluation_sets()
        for sub, q, g in sets:
            label = key if len(sets) == 1 else sub
            while label in test_sets:
                label = f"{label}#{len(test_sets)}"
            test_sets[label] = tuple(
                [s._replace(dsetid=ranks.get(s.dsetid, dset_offset)) for s in part]
                for part in (q, g))
        dset_offset += max(len(ranks), 1)
    return ReIDDataset(name=name, train=train, query=[], gallery=[], test_sets=test_sets)
