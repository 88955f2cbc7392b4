"""Market-1501 (Zheng et al. 2015), parsed as torchreid and fast-reid do."""

from __future__ import annotations

import os
import re
from typing import List, Optional

from ...registry import DATASETS
from .base import DatasetError, ReIDDataset, Sample, relabel, require_dir, warn_counts

MARKET_TREE = """\
  <root>/market1501/Market-1501-v15.09.15/   (or <root>/market1501/, or the folder itself)
    bounding_box_train/  0002_c1s1_000451_03.jpg ...
    bounding_box_test/
    query/"""

MARKET_NAME = re.compile(r"^(-1|\d{4})_c([1-6])s(\d)_(\d{6})_(\d{2})\.jpg$")


def parse_market_dir(folder: str, dataset: str, pattern: re.Pattern = MARKET_NAME,
                     keep_distractors: bool = True, dsetid: int = 0) -> List[Sample]:
    """Parse ``*.jpg`` files whose basename matches ``pattern`` (groups: pid, camera 1-based).

    ``-1`` (junk) images are dropped; ``0000`` (distractors) kept unless ``keep_distractors`` is
    False. Other files (``Thumbs.db``) are ignored; a ``.jpg`` that breaks the grammar is an error.
    """
    items = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".jpg"):
            continue
        m = pattern.match(name)
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
    """Accept ``root/dataset_dir/release_dir``, ``root/dataset_dir`` or the release folder itself."""
    for cand in (os.path.join(root, dataset_dir, release_dir), os.path.join(root, dataset_dir),
                 os.path.join(root, release_dir), root):
        if os.path.isdir(os.path.join(cand, marker)):
            return cand
    return os.path.join(root, dataset_dir, release_dir)


class MarketStyleDataset(ReIDDataset):
    """A dataset in the Market-1501 folder layout and file grammar."""

    dataset_dir = "market1501"
    release_dir = "Market-1501-v15.09.15"
    pattern = MARKET_NAME
    tree = MARKET_TREE
    # (train images, train ids, query images, gallery images) of the full release, or None.
    published: Optional[tuple] = (12936, 751, 3368, 15913)

    def __init__(self, root: str = "datasets", dsetid: int = 0, name: Optional[str] = None,
                 **kwargs) -> None:
        name = name or self.dataset_dir
        base = find_release(root, self.dataset_dir, self.release_dir, "bounding_box_train")
        folders = {}
        for split, sub in (("train", "bounding_box_train"), ("query", "query"),
                           ("gallery", "bounding_box_test")):
            folders[split] = require_dir(os.path.join(base, sub), name, self.tree)
        train = relabel(parse_market_dir(folders["train"], name, self.pattern, dsetid=dsetid))
        query = parse_market_dir(folders["query"], name, self.pattern, dsetid=dsetid)
        gallery = parse_market_dir(folders["gallery"], name, self.pattern, dsetid=dsetid)
        super().__init__(name=name, train=train, query=query, gallery=gallery, root=base)
        self._check_published()

    def _check_published(self) -> None:
        if not self.published:
            return
        n_train, n_ids, n_query, n_gallery = self.published
        # Only compare when the folder looks like the full release (not a test fixture or subset).
        if len(self.train) + len(self.gallery) < 0.9 * (n_train + n_gallery):
            return
        warn_counts(self.name, "train", len(self.train), n_train)
        warn_counts(self.name, "train", self.num_train_pids, n_ids, "identities")
        warn_counts(self.name, "query", len(self.query), n_query)
        warn_counts(self.name, "gallery", len(self.gallery), n_gallery)


@DATASETS.register("market1501")
class Market1501(MarketStyleDataset):
    pass
