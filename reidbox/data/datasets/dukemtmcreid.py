"""DukeMTMC-reID (Zheng et al. 2017): the Market-1501 layout with 8 cameras and frame names.

Everything is kept (no junk ids); the 408 gallery-only distractor identities keep their real
positive pids. Train labels 0..N-1 in ascending raw-pid order, query/gallery raw pids.
"""

from __future__ import annotations

import re

from ...registry import DATASETS
from .market1501 import MarketStyleDataset

DUKE_TREE = """\
  <root>/dukemtmc-reid/DukeMTMC-reID/   (or <root>/dukemtmc-reid/, or the folder itself)
    bounding_box_train/  0001_c2_f0046182.jpg ...
    bounding_box_test/
    query/"""

DUKE_NAME = re.compile(r"^(\d{4})_c([1-8])_f(\d{7})\.jpg$")


@DATASETS.register("dukemtmcreid")
class DukeMTMCreID(MarketStyleDataset):
    """DukeMTMC-reID: 702 train ids, 8 cameras; 2,228 query / 17,661 gallery (1,110 ids)."""

    dataset_dir = "dukemtmc-reid"
    release_dir = "DukeMTMC-reID"
    pattern = DUKE_NAME
    tree = DUKE_TREE
    published_train_ids = 702
    chain_fragment = "dukemtmcreid.yml"
    chain_aliases = {"duke": None}
    published = {
        ("train", "images"): 16522,
        ("train", "identities"): 702,
        ("train", "cameras"): 8,
        ("query", "images"): 2228,
        ("query", "identities"): 702,
        ("query", "cameras"): 8,
        ("gallery", "images"): 17661,
        ("gallery", "identities"): 1110,
        ("gallery", "cameras"): 8,
    }
