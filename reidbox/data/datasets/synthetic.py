"""The embedded procedural datasets: ``synthetic`` and the transfer domains ``synthetic_a|b|c``.

Each is generated on first use into ``<root>/<dataset_dir>/`` (see
:func:`reidbox.data.synthetic.generate_synthetic`) and then parsed by the Market-1501 parser,
so training and evaluation run the same code paths as on the real benchmark.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Dict, Optional, Sequence

from ...registry import DATASETS
from ..synthetic import MANIFEST, generate_synthetic, read_manifest
from .base import DatasetError
from .market1501 import MarketStyleDataset

SYNTHETIC_TREE = """\
  <root>/synthetic/            (generated on first use at the default size; other sizes go to
                                their own folder, e.g. <root>/synthetic-30+150ids-6cams-128x64/)
    bounding_box_train/  0002_c1s1_000451_03.jpg ...
    bounding_box_test/   (with 0000 distractors and -1 junk)
    query/               (one _00 image per identity and camera)
    manifest.json        (written last: marks a complete generation)"""


# num_train_ids, num_test_ids, num_cameras, height, width of the folder named ``dataset_dir``
DEFAULT_SIZE = [150, 150, 6, 128, 64]


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
        return dict(
            num_train_ids=s.NUM_TRAIN_IDS,
            num_test_ids=s.NUM_TEST_IDS,
            num_cameras=s.NUM_CAMERAS,
            image_size=tuple(s.IMAGE_SIZE),
        )

    @classmethod
    def folder_name(
        cls,
        num_train_ids: int = 150,
        num_test_ids: int = 150,
        num_cameras: int = 6,
        image_size: Sequence[int] = (128, 64),
    ) -> str:
        """The folder under the datasets root that holds this size: ``dataset_dir`` at the
        default size, else one named by the size (``synthetic-30+150ids-6cams-128x64``), so a
        run at another size never regenerates, in place, the data earlier results measured."""
        size = [int(num_train_ids), int(num_test_ids), int(num_cameras)]
        size += [int(v) for v in image_size]
        if size == DEFAULT_SIZE:
            return cls.dataset_dir
        n, m, c, h, w = size
        return f"{cls.dataset_dir}-{n}+{m}ids-{c}cams-{h}x{w}"

    @classmethod
    def existing_options(cls, root: str) -> Dict[str, Any]:
        """The size options of a complete generation of this domain under ``root`` ({} when
        there is none): the default-size folder if it is there, else the newest other size.
        Reading a folder as it is, e.g. for statistics, regenerates nothing."""
        keys = ("num_train_ids", "num_test_ids", "num_cameras", "image_size")
        found = []
        others = sorted(glob.glob(os.path.join(root, cls.dataset_dir + "-*")))
        for path in [os.path.join(root, cls.dataset_dir)] + others:
            params = (read_manifest(path) or {}).get("params") or {}
            if params.get("seed") != cls.seed or params.get("style") != cls.style:
                continue
            options = {k: params[k] for k in keys if k in params}
            if os.path.basename(path) == cls.folder_name(**options):
                if path == os.path.join(root, cls.dataset_dir):
                    return options
                found.append((os.path.getmtime(os.path.join(path, MANIFEST)), path, options))
        return max(found)[2] if found else {}

    @classmethod
    def train_identities(cls, num_train_ids: int = 150, **options: Any) -> int:
        return num_train_ids  # generated: as many as asked for

    def __init__(
        self,
        root: str = "datasets",
        dsetid: int = 0,
        name: Optional[str] = None,
        num_train_ids: int = 150,
        num_test_ids: int = 150,
        num_cameras: int = 6,
        image_size: Sequence[int] = (128, 64),
        **kwargs,
    ) -> None:
        size = dict(
            num_train_ids=num_train_ids,
            num_test_ids=num_test_ids,
            num_cameras=num_cameras,
            image_size=image_size,
        )
        self.dataset_dir = self.folder_name(**size)  # this instance reads its size's folder
        out = os.path.join(root, self.dataset_dir)
        try:
            generate_synthetic(out, seed=self.seed, style=self.style, **size)
        except OSError as e:  # name the setting, not only the path
            raise DatasetError(
                f"{type(self).dataset_dir}: cannot generate into DATASETS.ROOT {root} "
                f"({e.strerror or e}: {e.filename or out}); set DATASETS.ROOT to a writable folder"
            ) from None
        super().__init__(root=root, dsetid=dsetid, name=name or type(self).dataset_dir, **kwargs)


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
