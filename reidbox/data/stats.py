"""Per-split tables of images / identities / cameras, for ``tools/dataset_stats.py`` and docs."""

from __future__ import annotations

from typing import Any, List, Sequence

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
        rows.append([split, len(items), len({s.pid for s in items}),
                     len({s.camid for s in items})])
    for name, (query, gallery) in getattr(ds, "test_sets", {}).items():
        for split, items in (("query", query), ("gallery", gallery)):
            rows.append([f"{split} ({name})", len(items), len({s.pid for s in items}),
                         len({s.camid for s in items})])
    return rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with right-aligned numbers."""
    cells = [list(map(str, header))] + [[f"{v:,}" if isinstance(v, int) else str(v) for v in r]
                                        for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(r, widths))) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":")
                                        for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def format_stats(ds: Any) -> str:
    """The statistics table of any registered dataset (ReID or classification)."""
    if hasattr(ds, "classes"):
        header = ["split", "images", "classes"]
    else:
        header = ["split", "images", "identities", "cameras"]
    return f"{ds.name}\n" + format_table(header, stats_rows(ds))
