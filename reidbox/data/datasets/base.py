"""Items, the dataset container every parser returns, and the helpers parsers share."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import (
    Any,
    ClassVar,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np

from ...errors import InputError, UserError

logger = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")


class Sample(NamedTuple):
    """One image: ``camid`` is 0-based; ``pid`` is a 0..N-1 label in train, raw in query/gallery."""

    path: str
    pid: int
    camid: int
    dsetid: int = 0


class DatasetError(UserError, RuntimeError):
    """A dataset folder is missing or malformed; the message says what was expected."""


class DatasetTraits:
    """What a registered dataset class declares about itself, read without building it.

    There is no central table of dataset names: the builders, the model summary and the chain
    ask the class (through :mod:`reidbox.data.catalog`). A plugin sets what applies to it.
    """

    #: "reid" (train/query/gallery of :class:`Sample`) or "classification" (arrays + classes).
    task: ClassVar[str] = "reid"
    #: Training identities (classes) of the published release; None: unknown.
    published_train_ids: ClassVar[Optional[int]] = None
    #: File in ``configs/_base_/`` that a chain step training on this dataset merges first.
    chain_fragment: ClassVar[Optional[str]] = None
    #: Other chain step names (the paper's): ``{alias: fragment}``, None = ``chain_fragment``.
    chain_aliases: ClassVar[Mapping[str, Optional[str]]] = {}
    #: A combined training set: the registered datasets it is made of (its test sets).
    sources: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def config_options(cls, cfg: Any) -> Dict[str, Any]:
        """Keyword arguments from the dataset's own config node (``cfg.DATASETS.<NODE>``)."""
        return {}

    @classmethod
    def train_identities(cls, **options: Any) -> Optional[int]:
        """Training identities of the release built with ``options``, without reading data."""
        return cls.published_train_ids


@dataclass(repr=False)
class ReIDDataset(DatasetTraits):
    """Train / query / gallery lists of :class:`Sample`.

    A combined training set (``market_duke``, ``DATASETS.TRAIN: [a, b]``) has empty
    ``query``/``gallery`` and keeps each source's own test split in ``test_sets``
    (``{source name: (query, gallery)}``): test sets are never merged.
    """

    task = "reid"  # which engine task uses it (a CIFAR set says "classification")

    name: str
    train: List[Sample]
    query: List[Sample] = field(default_factory=list)
    gallery: List[Sample] = field(default_factory=list)
    root: str = ""
    test_sets: Dict[str, Tuple[List[Sample], List[Sample]]] = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

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
                parts.append(
                    f"{split} {st['images']:,} images / {st['identities']:,} ids / "
                    f"{st['cameras']} cams"
                )
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


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _id_kind(values: Sequence[object], dataset: str, what: str) -> str:
    """ "int" or "str" for a list of identity ids; anything else (or a mix) is an error."""
    kinds = {
        "int" if _is_int(v) else "str" if isinstance(v, str) else type(v).__name__ for v in values
    }
    if kinds <= {"int"} or kinds == {"str"}:
        return "str" if kinds == {"str"} else "int"
    bad = (
        next(v for v in values if not (_is_int(v) or isinstance(v, str)))
        if kinds - {"int", "str"}
        else None
    )
    detail = f"{bad!r} ({type(bad).__name__})" if bad is not None else "both ints and strings"
    raise DatasetError(
        f"{dataset}: {what} identity ids must all be integers or all strings, "
        f"got {detail}; see docs/custom_dataset.md"
    )


def validate_dataset(ds: ReIDDataset) -> ReIDDataset:
    """Check every split's items and normalise identity ids (docs/custom_dataset.md).

    * ``path`` a string, ``camid`` an integer >= 0, ``dsetid`` an integer;
    * train ids: integers or strings, relabelled to 0..N-1 in sorted id order unless they
      already are 0..N-1;
    * query/gallery ids: integers (kept as they are) or strings, mapped to 0..M-1 in sorted
      order over query and gallery together, so a query and a gallery image of one person
      share one integer. Mixing strings and integers is an error.
    """
    name = ds.name
    splits = [("train", ds.train), ("query", ds.query), ("gallery", ds.gallery)]
    for k, qg in ds.test_sets.items():
        splits += [(f"{k} {part}", v) for part, v in zip(("query", "gallery"), qg)]
    for split, items in splits:
        for s in items:
            _check_item(s, name, split)
    train_map = _train_id_map(ds.train, name)
    query, gallery = _test_pair(ds.query, ds.gallery, name, "")
    ds.train = [_normalised(s, train_map[s[1]]) for s in ds.train]
    ds.query, ds.gallery = query, gallery
    ds.test_sets = {k: _test_pair(q, g, name, f"{k} ") for k, (q, g) in ds.test_sets.items()}
    return ds


def _check_item(s: Any, name: str, split: str) -> None:
    """One split item: a (path, pid, camid[, dsetid]) tuple of the right types."""
    if not isinstance(s, Sample) and not (isinstance(s, tuple) and len(s) in (3, 4)):
        raise DatasetError(
            f"{name}: {split} items must be Sample(path, pid, camid[, dsetid]) tuples, got {s!r}"
        )
    if not isinstance(s[0], (str, os.PathLike)):
        raise DatasetError(f"{name}: {split} image path must be a string, got {s[0]!r}")
    if not _is_int(s[2]) or s[2] < 0:
        raise DatasetError(
            f"{name}: {split} camid must be an integer >= 0 (0-based "
            f"camera index), got {s[2]!r} for {s[0]}; map camera "
            "names to 0..C-1 in the parser"
        )
    if len(s) > 3 and not _is_int(s[3]):
        raise DatasetError(f"{name}: {split} dsetid must be an integer, got {s[3]!r}")


def _normalised(s: Sequence, pid: int) -> Sample:
    return Sample(os.fspath(s[0]), pid, int(s[2]), int(s[3]) if len(s) > 3 else 0)


def _train_id_map(train: Sequence, name: str) -> Dict[Any, int]:
    """Train ids to 0..N-1 in sorted order (kept as they are when they already are 0..N-1)."""
    train_ids = [s[1] for s in train]
    if train:
        _id_kind(train_ids, name, "train")
    uniq = sorted(set(train_ids))
    identity = uniq == list(range(len(uniq))) and all(_is_int(v) for v in uniq)
    if not identity:
        logger.info(
            "%s: %d train identities relabelled 0..%d in sorted id order",
            name,
            len(uniq),
            len(uniq) - 1,
        )
    return {v: (int(v) if identity else i) for i, v in enumerate(uniq)}


def _test_pair(query: Sequence, gallery: Sequence, name: str, label: str):
    """Query and gallery with integer ids: kept, or string ids mapped over both together."""
    ids = [s[1] for s in query] + [s[1] for s in gallery]
    kind = _id_kind(ids, name, f"{label}query/gallery") if ids else "int"
    if kind == "str":
        mapping = {v: i for i, v in enumerate(sorted(set(ids)))}
        logger.info(
            "%s: %d string identity ids of %squery/gallery mapped to 0..%d in sorted order",
            name,
            len(mapping),
            label,
            len(mapping) - 1,
        )
        to_int = mapping.__getitem__
    else:
        to_int = int
    return (
        [_normalised(s, to_int(s[1])) for s in query],
        [_normalised(s, to_int(s[1])) for s in gallery],
    )


def require_items(
    items: Sequence[Sample], dataset: str, split: str, check_files: bool = True
) -> None:
    """A split used for training/testing is non-empty and (``check_files``) its files exist."""
    if not items:
        raise DatasetError(
            f"{dataset}: the {split} split is empty; add {split} images, or check "
            "the dataset folder (docs/datasets.md) or the parser "
            "(docs/custom_dataset.md)"
        )
    if check_files:
        missing = [s.path for s in items if not os.path.isfile(s.path)]
        if missing:
            raise DatasetError(
                f"{dataset}: {len(missing)} of {len(items)} {split} image files "
                f"do not exist, e.g. {missing[0]}; fix the paths, or set "
                "DATALOADER.SKIP_UNREADABLE True to drop them"
            )


def check_query_matches(
    dataset: str,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    same_camera: bool,
    protocol: str,
) -> int:
    """Number of queries with a valid gallery match; fails when none has one.

    Valid: same identity and, unless ``same_camera``, another camera (the standard ReID rule:
    same-camera matches are junk). Under ``same_camera`` a query image that is also in the
    gallery would match itself, so that is an error too.
    """
    cams: Dict[int, set] = {}
    for s in gallery:
        cams.setdefault(s.pid, set()).add(s.camid)
    ok = sum(
        1
        for s in query
        if (cams.get(s.pid) and same_camera) or bool(cams.get(s.pid, set()) - {s.camid})
    )
    if same_camera:
        shared = {s.path for s in query} & {s.path for s in gallery}
        if shared:
            raise DatasetError(
                f"{dataset}: {len(shared)} query images are also in the gallery "
                f"(e.g. {next(iter(shared))}); under TEST.PROTOCOL {protocol} "
                "they would match themselves; remove them from the gallery"
            )
    if ok == 0 and query:
        hint = (
            ""
            if same_camera
            else (
                "; for single-camera data set TEST.PROTOCOL same_camera, which counts "
                "same-camera matches"
            )
        )
        where = "" if same_camera else " from another camera"
        raise DatasetError(
            f"{dataset}: none of the {len(query)} queries has a gallery image of "
            f"the same identity{where} under TEST.PROTOCOL {protocol}{hint}"
        )
    if ok < len(query):
        logger.warning(
            "%s: %d of %d queries have no valid gallery match under protocol %s",
            dataset,
            len(query) - ok,
            len(query),
            protocol,
        )
    return ok


def _one_line(tree: str) -> str:
    """A folder tree drawn over several lines, as one line (error messages are one line)."""
    return " | ".join(" ".join(ln.split()) for ln in tree.splitlines() if ln.strip())


def require_dir(path: str, dataset: str, expected_tree: str) -> str:
    """Fail with the path we looked for and the tree we expected; a file standing where a
    folder of the layout should be is named as such."""
    if not os.path.isdir(path):
        blocker = path
        while blocker and not os.path.exists(blocker):
            parent = os.path.dirname(blocker)
            blocker = parent if parent != blocker else ""
        if blocker and not os.path.isdir(blocker):
            raise DatasetError(
                f"{dataset}: {blocker} is a file, where the dataset's folder {path} should be; "
                f"move the file away and lay the data out as docs/datasets.md shows"
            )
        raise DatasetError(
            f"{dataset}: folder not found: {path}; expected layout: {_one_line(expected_tree)} "
            "(docs/datasets.md tells how to obtain and lay out the data)"
        )
    return path


def warn_counts(dataset: str, split: str, found: int, published: int, what: str = "images") -> bool:
    """Warn (never fail) when a split differs from the published release; True if it matches."""
    if found != published:
        logger.warning(
            "%s %s: found %d %s, the published release has %d",
            dataset,
            split,
            found,
            what,
            published,
        )
        return False
    return True


def check_published(
    ds: ReIDDataset, published: Mapping[Tuple[str, str], int], name: Optional[str] = None
) -> bool:
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


def combine(
    datasets: Sequence[ReIDDataset], name: str = "combined", names: Optional[Sequence[str]] = None
) -> ReIDDataset:
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
        raise InputError("combine: names and datasets differ in length")
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
                for part in (q, g)
            )
        dset_offset += max(len(ranks), 1)
    return ReIDDataset(name=name, train=train, query=[], gallery=[], test_sets=test_sets)
