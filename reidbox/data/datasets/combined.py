"""Training sets made of several datasets: ``market_duke`` and any ``a+b+...`` list.

Labels of later datasets are shifted past earlier ones and cameras likewise (Market 0..5, Duke
6..13: 14 cameras), every item carries its source's ``dsetid``, and test splits are never
merged: ``test_sets`` keeps each source's own query/gallery (see :func:`combine`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from ...registry import DATASETS
from .base import ReIDDataset, combine, validate_dataset


def combine_by_name(
    names: Sequence[str],
    root: str = "datasets",
    options: Optional[Dict[str, Dict[str, Any]]] = None,
    name: Optional[str] = None,
) -> ReIDDataset:
    """Build each registered dataset in ``names`` under ``root`` and :func:`combine` them.

    ``options`` maps a dataset name to its keyword arguments (e.g. ``{"msmt17":
    {"include_val": False}}``). Names may repeat only if you want a dataset twice.
    """
    options = options or {}
    # each part meets the dataset contract first (string ids mapped, types checked)
    parts = [
        validate_dataset(DATASETS.get(n)(root=root, dsetid=k, **options.get(n, {})))
        for k, n in enumerate(names)
    ]
    return combine(parts, name=name or "+".join(names), names=list(names))


class CombinedDataset(ReIDDataset):
    """A registered training set made of the registered datasets in ``sources``.

    ``query``/``gallery`` are empty; ``test_sets[source]`` is each source's own test split.
    """

    default_name = "combined"

    def __init__(self, root: str = "datasets", dsetid: int = 0, name: Optional[str] = None) -> None:
        ds = combine_by_name(self.sources, root=root, name=name or self.default_name)
        super().__init__(name=ds.name, train=ds.train, test_sets=ds.test_sets)

    @classmethod
    def train_identities(cls, **options: Any) -> Optional[int]:
        counts = [getattr(DATASETS.get(s), "train_identities", lambda: None)() for s in cls.sources]
        return None if None in counts else sum(counts)


@DATASETS.register("market_duke")
class MarketDuke(CombinedDataset):
    """Market-1501 train + DukeMTMC-reID train: 1,453 ids, 29,458 images, 14 cameras."""

    sources = ("market1501", "dukemtmcreid")
    default_name = "market_duke"
    chain_aliases = {"market-duke": None}
