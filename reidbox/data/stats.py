"""Per-split tables of images / identities / cameras, for ``tools/dataset_stats.py`` and docs."""

from __future__ import annotations

from typing import Any, List

from ..utils.tables import markdown_table
from .datasets.base import SPLITS


def stats_rows(ds: Any) -> List[List[Any]]:
    """Rows ``[split, images, identities, cameras]`` (ReID) or ``[split, images, classes]``.

    A combined training set adds one query and one gallery row per source test set.
    """
    if hasattr(ds, "classes"):  # ClassificationDataset
        return [[split, s["images"], s["classes"]] for split, s in ds.stats().items()]
    rows = []
    for split in SPLITS:
        items = getattr(ds, split)
        if split != "train" and not items and getattr(ds, "test_sets", None):
            continue
        rows.append([split, len(items), len({s.pid for s in items}), len({s.camid for s in items})])
    for name, (query, gallery) in getattr(ds, "test_sets", {}).items():
        for split, items in (("query", query), ("gallery", gallery)):
            rows.append(
                [
                    f"{split} ({name})",
                    len(items),
                    len({s.pid for s in items}),
                    len({s.camid for s in items}),
                ]
            )
    return rows


def format_stats(ds: Any) -> str:
    """The statistics table of any registered dataset (ReID or classification)."""
    if hasattr(ds, "classes"):
        header = ["split", "images", "classes"]
    else:
        header = ["split", "images", "identities", "cameras"]
    return f"{ds.name}\n" + markdown_table(header, stats_rows(ds))
