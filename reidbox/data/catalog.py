"""What the registered datasets declare about themselves, looked up by name.

Each dataset class carries its own facts (:class:`~reidbox.data.datasets.base.DatasetTraits`):
its task, its config options, its published training identities, the chain step names and
config fragment it answers to. Nothing here lists a dataset name. A dataset registered as a
plain function (a plugin) declares nothing: it takes no config options, is a ``reid`` set and
has no published identity count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..registry import DATASETS
from ..errors import UnknownNameError


def _parts(name: str) -> List[str]:
    """``"a+b"`` (not itself registered) is the datasets a and b; anything else is itself."""
    return name.split("+") if name not in DATASETS and "+" in name else [name]


def dataset_task(name: str) -> str:
    """``"reid"`` or ``"classification"``: the task the registered dataset ``name`` serves."""
    return getattr(DATASETS.get(name), "task", "reid")


def dataset_kwargs(cfg: Any, name: str) -> Dict[str, Any]:
    """The keyword arguments dataset ``name`` takes from the config (its own node, if any).

    For ``"a+b"`` a mapping ``{part: its options}`` (what :func:`combine_by_name` takes).
    """
    parts = _parts(name)
    if len(parts) > 1:
        return {p: dataset_kwargs(cfg, p) for p in parts}
    options = getattr(DATASETS.get(name), "config_options", None)
    return dict(options(cfg)) if options is not None else {}


def train_identities(cfg: Any, name: str) -> Optional[int]:
    """Published training identities of dataset ``name`` under ``cfg``; None if undeclared."""
    counts = []
    for part in _parts(name):
        count = getattr(DATASETS.get(part), "train_identities", None) if part in DATASETS else None
        counts.append(count(**dataset_kwargs(cfg, part)) if count is not None else None)
    return None if None in counts else sum(counts)


def num_train_identities(cfg: Any) -> int:
    """Identities (classes) of ``DATASETS.TRAIN`` from published counts, without reading data."""
    total = 0
    for name in cfg.DATASETS.TRAIN:
        count = train_identities(cfg, name)
        if count is None:
            known = [
                n
                for n in DATASETS
                if getattr(DATASETS.get(n), "train_identities", None)
                and train_identities(cfg, n) is not None
            ]
            raise UnknownNameError(
                f"no published identity count for dataset {name!r}; pass "
                f"--num-classes (known: {', '.join(known)})"
            )
        total += count
    return total


@dataclass
class DatasetAlias:
    """What a chain step name means: the training set, its test sets, its config fragment."""

    train: str
    tests: List[str]
    fragment: Optional[str] = None  # file in configs/_base_/ (dataset-specific options)


def dataset_aliases() -> Dict[str, DatasetAlias]:
    """Every chain step name a registered dataset declares (lower case): its registered name
    (when it declares a fragment or aliases) and its ``chain_aliases`` (the paper's names)."""
    out: Dict[str, DatasetAlias] = {}
    for name in DATASETS:
        cls = DATASETS.get(name)
        fragment = getattr(cls, "chain_fragment", None)
        aliases = dict(getattr(cls, "chain_aliases", None) or {})
        if not fragment and not aliases:
            continue
        tests = list(getattr(cls, "sources", None) or [name])
        for key, frag in [(name, fragment)] + list(aliases.items()):
            out[key.lower()] = DatasetAlias(name, list(tests), frag or fragment)
    return out
