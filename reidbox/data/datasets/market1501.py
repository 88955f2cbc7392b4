"""Market-1501 (Zheng et al. 2015), parsed as torchreid and fast-reid do.

Rules (docs/datasets.md, DATASETS.md section 2): only ``*.jpg`` files, names matched on the
basename with a strict grammar, ``-1`` junk boxes dropped everywhere, ``0000`` distractors kept
in the gallery with pid 0, cameras 1..6 stored 0-based, train labels 0..N-1 in ascending raw-pid
order, query/gallery raw pids.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ...registry import DATASETS
from .base import (
    DatasetError,
    ReIDDataset,
    Sample,
    check_published,
    looks_full,
    relabel,
    require_dir,
)

MARKET_TREE = """\
  <root>/market1501/Market-1501-v15.09.15/   (or <root>/market1501/, or the folder itself)
    bounding_box_train/  0002_c1s1_000451_03.jpg ...
    bounding_box_test/   (gallery; -1_c1s1_... junk and 0000_... distractors included)
    query/"""

MARKET_NAME = re.compile(r"^(-1|\d{4})_c([1-6])s(\d)_(\d{6})_(\d{2})\.jpg$")

Published = Union[Tuple[int, int, int, int], Mapping[Tuple[str, str], int], None]


def is_hidden_junk(name: str) -> bool:
    """macOS / Windows side files that unzip next to images (``._x.jpg``, ``.DS_Store``)."""
    return name.startswith(".")


def parse_market_dir(
    folder: str,
    dataset: str,
    pattern: re.Pattern = MARKET_NAME,
    keep_distractors: bool = True,
    dsetid: int = 0,
    extension: str = ".jpg",
) -> List[Sample]:
    """Parse ``*<extension>`` (default ``*.jpg``) files whose basename matches ``pattern``
    (groups: pid, camera 1-based).

    ``-1`` (junk) images are dropped; ``0000`` (distractors) kept unless ``keep_distractors`` is
    False. The extension is matched whatever its case (``.JPG``). Other files (``Thumbs.db``,
    ``._*`` side files) are ignored; a ``.jpg`` that breaks the grammar is an error naming the
    file. Items are in file-name order.
    """
    items = []
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        # an upper-case extension (0002_c1s1_000451_03.JPG, as some copies have it) is the
        # same image type: read, not skipped without a word
        if ext.lower() != extension or is_hidden_junk(name):
            continue
        m = pattern.match(stem + extension)
        if m is None:
            raise DatasetError(
                f"{dataset}: file name does not follow the {dataset} grammar "
                f"({pattern.pattern}): {os.path.join(folder, name)}"
            )
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1 or (pid == 0 and not keep_distractors):
            continue
        items.append(Sample(os.path.join(folder, name), pid, cam - 1, dsetid))
    return items


def find_release(root: str, dataset_dir: str, release_dir: str, marker: str) -> str:
    """Accept ``root/dataset_dir/release_dir``, ``root/dataset_dir`` or the release folder."""
    for cand in (
        os.path.join(root, dataset_dir, release_dir),
        os.path.join(root, dataset_dir),
        os.path.join(root, release_dir),
        root,
    ):
        if os.path.isdir(os.path.join(cand, marker)):
            return cand
    return os.path.join(root, dataset_dir, release_dir)


def published_table(
    published: Published, cameras: Optional[int] = None
) -> Dict[Tuple[str, str], int]:
    """Normalise ``published`` (legacy 4-tuple or ``{(split, what): n}``) to the mapping form."""
    if published is None:
        return {}
    if isinstance(published, Mapping):
        return dict(published)
    n_train, n_ids, n_query, n_gallery = published
    out = {
        ("train", "images"): n_train,
        ("train", "identities"): n_ids,
        ("query", "images"): n_query,
        ("gallery", "images"): n_gallery,
    }
    if cameras:
        out[("train", "cameras")] = cameras
    return out


class MarketStyleDataset(ReIDDataset):
    """A dataset in the Market-1501 folder layout and file grammar.

    Subclasses set ``dataset_dir`` (folder under the datasets root), ``release_dir`` (folder
    inside it, optional), ``pattern`` (groups 1 = pid, 2 = camera 1-based), ``tree`` (shown in
    errors) and ``published`` (counts of the full release, or None to skip the check).
    """

    dataset_dir = "market1501"
    release_dir = "Market-1501-v15.09.15"
    pattern = MARKET_NAME
    extension = ".jpg"
    tree = MARKET_TREE
    # (train images, train ids, query images, gallery images) or {(split, what): count}, or None.
    published: Published = {
        ("train", "images"): 12936,
        ("train", "identities"): 751,
        ("train", "cameras"): 6,
        ("query", "images"): 3368,
        ("query", "identities"): 750,
        ("query", "cameras"): 6,
        ("gallery", "images"): 15913,
        ("gallery", "identities"): 751,
        ("gallery", "cameras"): 6,
    }

    def __init__(
        self, root: str = "datasets", dsetid: int = 0, name: Optional[str] = None, **kwargs
    ) -> None:
        name = name or self.dataset_dir
        if kwargs:
            raise DatasetError(f"{name} has no option {', '.join(map(repr, kwargs))}; remove it")
        base = find_release(root, self.dataset_dir, self.release_dir, "bounding_box_train")
        folders = {}
        for split, sub in (
            ("train", "bounding_box_train"),
            ("query", "query"),
            ("gallery", "bounding_box_test"),
        ):
            folders[split] = require_dir(os.path.join(base, sub), name, self.tree)
        parsed = {
            split: parse_market_dir(
                folder, name, self.pattern, dsetid=dsetid, extension=self.extension
            )
            for split, folder in folders.items()
        }
        for split, folder in folders.items():
            if not parsed[split]:
                self._explain_empty(split, folder, name)
        train, query, gallery = relabel(parsed["train"]), parsed["query"], parsed["gallery"]
        super().__init__(name=name, train=train, query=query, gallery=gallery, root=base)
        self._check_published()

    def _explain_empty(self, split: str, folder: str, name: str) -> None:
        """An empty training split, or a split holding only other image types, is an error."""
        others = sorted(
            {
                os.path.splitext(f)[1].lower()
                for f in os.listdir(folder)
                if os.path.splitext(f)[1].lower() in (".jpg", ".jpeg", ".png", ".bmp")
            }
            - {self.extension}
        )
        if others:
            raise DatasetError(
                f"{name}: {folder} holds {'/'.join(others)} images but no "
                f"{self.extension} files; {name} reads {self.extension} images "
                "named as in the release (convert or rename them)"
            )
        if split == "train":
            raise DatasetError(
                f"{name}: the training split {folder} holds no "
                f"{self.extension} images; put the training images there"
            )

    def _check_published(self) -> None:
        table = published_table(self.published)
        if not table:
            return
        full = table[("train", "images")] + table[("gallery", "images")]
        # Only compare when the folder looks like the full release (not a test fixture or subset).
        if looks_full(len(self.train) + len(self.gallery), full):
            check_published(self, table)


@DATASETS.register("market1501")
class Market1501(MarketStyleDataset):
    """Market-1501: 751 train ids, 6 cameras; 3,368 query / 15,913 gallery (pid 0 kept)."""

    published_train_ids = 751
    chain_fragment = "market1501.yml"
    chain_aliases = {"market": None}
