"""The embedded procedural datasets: ``synthetic`` and the transfer domains ``synthetic_a|b|c``.

Each is generated on first use into ``<root>/<dataset_dir>/`` (see
:func:`reidbox.data.synthetic.generate_synthetic`) and then parsed by the Market-1501 parser,
so training and evaluation run the same code paths as on the real benchmark.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

from ...registry import DATASETS
from ..synthetic import generate_synthetic, read_manifest
from .market1501 import MarketStyleDataset

SYNTHETIC_TREE = """\
  <root>/synthetic/            (generated on first use; delete it to regenerate)
    bounding_box_train/  0002_c1s1_000451_03.jpg ...
    bounding_box_test/   (with 0000 distractors and -1 junk)
    query/               (one _00 image per identity and camera)
    manifest.json        (written last: marks a complete generation)"""


class SyntheticDataset(MarketStyleDataset):
    """Procedurally generated Market-layout data; ``seed`` and ``style`` define the domain."""

    dataset_dir = "synthetic"
    release_dir = ""
    tree = SYNTHETIC_TREE
    published = None
    seed = 0
    style = "default"

    @classmethod
    def config_options(cls, cfg: Any) -> Dict[str, Any]:
        s = cfg.DATASETS.SYNTHETIC
        return dict(num_train_ids=s.NUM_TRAIN_IDS, num_test_ids=s.NUM_TEST_IDS,
                    num_cameras=s.NUM_CAMERAS, image_size=tuple(s.IMAGE_SIZE))

    @classmethod
    def existing_options(cls, root: str) -> Dict[str, Any]:
        """The size options of the complete generation of this domain under ``root`` ({} when
        there is none): reading the folder as it is, e.g. for statistics, regenerates
        nothing."""
        params = (read_manifest(os.path.join(root, cls.dataset_dir)) or {}).get("params") or {}
        if params.get("seed") != cls.seed or params.get("style") != cls.style:
            return {}
        keys = ("num_train_ids", "num_test_ids", "num_cameras", "image_size")
        return {k: params[k] for k in keys if k in params}

    @classmethod
    def train_identities(cls, num_train_ids: int = 150, **options: Any) -> int:
        return num_train_ids  # generated: as many as asked for

    def __init__(self, root: str = "datasets", dsetid: int = 0, name: Optional[str] = None,
                 num_train_ids: int = 150, num_test_ids: int = 150, num_cameras: int = 6,
                 image_size: Sequence[int] = (128, 64), **kwargs) -> None:
        generate_synthetic(os.path.join(root, self.dataset_dir), seed=self.seed,
                           num_train_ids=num_train_ids, num_test_ids=num_test_ids,
                           num_cameras=num_cameras, image_size=image_size, style=self.style)
        super().__init__(root=root, dsetid=dsetid, name=name, **kwargs)


@DATASETS.register("synthetic")
class Synthetic(SyntheticDataset):
    """The default domain: mixed light and clothing, moderate occlusion."""


@DATASETS.register("synthetic_a")
class SyntheticA(SyntheticDataset):
    """Indoor, bright and even light, saturated clothes, few occluders."""

    dataset_dir = "synthetic_a"
    seed = 101
    style = "indoor"


@DATASETS.register("synthetic_b")
class SyntheticB(SyntheticDataset):
    """Dusk street: dark, blue cast, more blur and noise, muted clothes."""

    dataset_dir = "synthetic_b"
    seed = 202
    style = "dusk"


@DATASETS.register("synthetic_c")
class SyntheticC(SyntheticDataset):
    """Crowded station: heavy occlusion and clutter, wide viewpoint changes."""

    dataset_dir = "synthetic_c"
    seed = 303
    style = "occluded"
