"""MSMT17 (Wei et al. 2018), V1 or V2 (masked faces), read through its official list files.

The list files are the only way to separate query from gallery, so they are required. Cameras
are the two-digit third ``_`` field of the file name (01..15, stored 0..14). ``include_val``
(default True) makes train the official 32,621-image training set (list_train + list_val), as
TransReID / MMT / SpCL do; False gives list_train alone, as torchreid / fast-reid do by default.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

from ...errors import InputError
from ...registry import DATASETS
from .base import DatasetError, ReIDDataset, Sample, check_published, looks_full, relabel

MSMT_TREE = """\
  <root>/msmt17/MSMT17_V1/              <root>/msmt17/MSMT17_V2/
    train/<pid:04d>/*.jpg                 mask_train_v2/<pid:04d>/*.jpg
    test/<pid:04d>/*.jpg                  mask_test_v2/<pid:04d>/*.jpg
    list_train.txt  list_val.txt          list_train.txt  list_val.txt
    list_query.txt  list_gallery.txt      list_query.txt  list_gallery.txt
  (or <root> pointing at msmt17/ or at the MSMT17_V* folder itself)"""

# {pid:04d}_{k:03d}_{cam:02d}_{MMDD}{morning|noon|afternoon}_{frame:04d}_{n}[_ex].jpg
MSMT_NAME = re.compile(
    r"^(\d{4})_(\d{3})_(\d{2})_(\d{4})(morning|noon|afternoon)_(\d{4})_(\d+)(_ex)?\.jpg$"
)

# version -> (release folder, train dir, test dir)
VERSIONS = {
    "v1": ("MSMT17_V1", "train", "test"),
    "v2": ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
}
LIST_FILES = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")

# Published numbers (ECN#11; torchreid / fast-reid / TransReID docstrings); list_train alone is
# the commonly quoted 30,248 (not re-verified), so only its identities are compared.
PUBLISHED = {
    "train_images": 32621,
    "list_train_images": 30248,
    "train_ids": 1041,
    "query_images": 11659,
    "gallery_images": 82161,
    "test_ids": 3060,
    "cameras": 15,
}


def find_msmt_release(root: str, version: str = "auto") -> Tuple[str, str]:
    """Return ``(release folder, "v1"|"v2")``; auto tries V1 first, as torchreid/fast-reid do."""
    version = version.lower()
    if version not in ("auto", "v1", "v2"):
        raise InputError(f"msmt17: version must be 'auto', 'v1' or 'v2', got {version!r}")
    versions = ["v1", "v2"] if version == "auto" else [version]
    looked = []
    for v in versions:
        release, train_dir, _ = VERSIONS[v]
        for cand in (
            os.path.join(root, "msmt17", release),
            os.path.join(root, release),
            root,
            os.path.join(root, "msmt17"),
        ):
            looked.append(os.path.join(cand, train_dir))
            if os.path.isdir(os.path.join(cand, train_dir)):
                return cand, v
    raise DatasetError(
        f"msmt17: no MSMT17 release ({'/'.join(versions)}) found; looked for:\n  "
        + "\n  ".join(dict.fromkeys(looked))
        + f"\nexpected layout:\n{MSMT_TREE}\n"
        "see docs/datasets.md for how to obtain and lay out the data"
    )


def read_list(list_path: str, image_dir: str, dsetid: int = 0) -> List[Sample]:
    """Parse ``<relative path> <pid>`` lines; paths must stay inside ``image_dir``.

    The camera comes from the file name (two digits, 1..15, stored 0-based); the pid from the
    list. A malformed line, a path leaving the folder, a name breaking the grammar or a missing
    image is an error naming the list file and line.
    """
    root_real = os.path.realpath(image_dir)
    items = []
    try:
        with open(list_path, encoding="utf-8-sig") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"msmt17: {list_path} is not UTF-8 text (byte {e.start}: "
            f"{e.reason}); save the list file as UTF-8"
        ) from None
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{list_path}:{lineno}"
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetError(f"msmt17: expected '<relative path> <pid>' at {where}, got {line!r}")
        rel, pid = parts[0], int(parts[1])
        full = os.path.realpath(os.path.join(image_dir, rel))
        if os.path.isabs(rel) or not full.startswith(root_real + os.sep):
            raise DatasetError(
                f"msmt17: {where} points outside the dataset folder "
                f"{image_dir}: {rel!r}; list paths must be relative to it"
            )
        name = os.path.basename(rel)
        m = MSMT_NAME.match(name)
        if m is None:
            raise DatasetError(
                f"msmt17: file name does not follow the MSMT17 grammar "
                f"({MSMT_NAME.pattern}): {rel} ({where})"
            )
        cam = int(m.group(3))
        if not 1 <= cam <= 15:
            raise DatasetError(f"msmt17: camera {cam} outside 01..15 in {rel} ({where})")
        path = os.path.join(image_dir, rel)
        if not os.path.isfile(path):
            raise DatasetError(f"msmt17: {where} names an image that does not exist: {path}")
        items.append(Sample(path, pid, cam - 1, dsetid))
    return items


@DATASETS.register("msmt17")
class MSMT17(ReIDDataset):
    """MSMT17: 1,041 train ids (32,621 images with val), 3,060 test ids, 15 cameras."""

    published_train_ids = PUBLISHED["train_ids"]  # list_val adds images, not identities
    chain_fragment = "msmt17.yml"

    @classmethod
    def config_options(cls, cfg: Any) -> Dict[str, Any]:
        m = cfg.DATASETS.MSMT17
        return dict(version=m.VERSION, include_val=m.INCLUDE_VAL)

    def __init__(
        self,
        root: str = "datasets",
        version: str = "auto",
        include_val: bool = True,
        dsetid: int = 0,
        name: Optional[str] = None,
    ) -> None:
        base, v = find_msmt_release(root, version)
        _, train_dir, test_dir = VERSIONS[v]
        needed = [f for f in LIST_FILES if include_val or f != "list_val.txt"]
        missing = [f for f in needed if not os.path.isfile(os.path.join(base, f))]
        if missing:
            raise DatasetError(
                f"msmt17: list file(s) missing in {base}: {', '.join(missing)}. The lists are "
                "the only way to separate query from gallery; some downloads lack them - get "
                f"them from the official release.\nexpected layout:\n{MSMT_TREE}"
            )
        train_root = os.path.join(base, train_dir)
        test_root = os.path.join(base, test_dir)
        if not os.path.isdir(test_root):
            raise DatasetError(
                f"msmt17: folder not found: {test_root}\nexpected layout:\n{MSMT_TREE}"
            )
        lst = {f: os.path.join(base, f) for f in needed}
        train = read_list(lst["list_train.txt"], train_root, dsetid)
        if include_val:
            train += read_list(lst["list_val.txt"], train_root, dsetid)
        query = read_list(lst["list_query.txt"], test_root, dsetid)
        gallery = read_list(lst["list_gallery.txt"], test_root, dsetid)
        super().__init__(
            name=name or "msmt17", train=relabel(train), query=query, gallery=gallery, root=base
        )
        self.version = v
        self.include_val = include_val
        self._check_published()

    def _check_published(self) -> None:
        p = PUBLISHED
        total = len(self.train) + len(self.query) + len(self.gallery)
        train = p["train_images"] if self.include_val else p["list_train_images"]
        if not looks_full(total, train + p["query_images"] + p["gallery_images"]):
            return
        table = {
            ("train", "identities"): p["train_ids"],
            ("train", "cameras"): p["cameras"],
            ("query", "images"): p["query_images"],
            ("gallery", "images"): p["gallery_images"],
            ("query", "identities"): p["test_ids"],
            ("gallery", "identities"): p["test_ids"],
            ("query", "cameras"): p["cameras"],
            ("gallery", "cameras"): p["cameras"],
        }
        if self.include_val:
            table[("train", "images")] = p["train_images"]
        check_published(self, table, name=f"msmt17 ({self.version})")
