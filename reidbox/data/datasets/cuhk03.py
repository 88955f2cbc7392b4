"""CUHK03 (Li et al. 2014): labeled or detected boxes, new (767/700) or classic (20 splits).

``cuhk-03.mat`` is a MATLAB v7.3 (HDF5) file read with h5py: ``detected``/``labeled`` are 5
camera-pair cells of (persons x 10 slots) image references (slots 1-5 view 1, 6-10 view 2;
empty slots are ``canonical empty`` placeholders), ``testsets`` 20 (100 x 2) ``[pair, person]``
tables. Images are extracted once to ``images_<variant>/{pair}_{pid:03d}_{view}_{slot:02d}.png``
beside the .mat (the names of the new-protocol file lists) and reused afterwards.

New protocol (Zhong et al. 2017): ``cuhk03_new_protocol_config_<variant>.mat`` (MATLAB v5, read
with scipy) give 1-based ``train_idx``/``query_idx``/``gallery_idx`` into ``filelist`` and raw
identity ``labels`` 1..1467. Classic: persons listed in test split ``k`` are the 100 test ids,
the rest train; query and gallery are the same list of all test images.

Raw identity of person ``j`` of pair ``p`` (both 1-based) = persons in earlier pairs + j, the
same 1..1467 numbering as the new-protocol ``labels``. Cameras = the view, 0-based ({0, 1}).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ...errors import InputError
from ...registry import DATASETS
from ...utils.misc import exclusive
from .base import DatasetError, ReIDDataset, Sample, check_published, looks_full, relabel
from .market1501 import MarketStyleDataset

logger = logging.getLogger(__name__)

CUHK03_TREE = """\
  <root>/cuhk03/
    cuhk03_release/cuhk-03.mat                  (MATLAB v7.3 / HDF5)
    cuhk03_new_protocol_config_labeled.mat      (new protocol; zhunzhong07/person-re-ranking)
    cuhk03_new_protocol_config_detected.mat
  (written on first use: cuhk03_release/images_labeled/, cuhk03_release/images_detected/)"""

CUHK03_NAME = re.compile(r"^([1-9])_(\d{3})_([12])_(\d{2})\.png$")
VARIANTS = ("labeled", "detected")
MARKER = ".extracted.json"

# (train images, train ids, query images, query ids, gallery images, gallery ids) new protocol.
PUBLISHED_NEW = {
    "labeled": (7368, 767, 1400, 700, 5328, 700),
    "detected": (7365, 767, 1400, 700, 5332, 700),
}
PUBLISHED_TOTAL = {"labeled": 14096, "detected": 14097}
CLASSIC_TRAIN_IDS = 1367  # 1,467 identities less the 100 of a classic test split


class CUHK03Traits:
    """Options and published counts shared by ``cuhk03`` and ``cuhk03_market``."""

    published_train_ids = PUBLISHED_NEW["labeled"][1]  # new protocol, either variant

    @classmethod
    def config_options(cls, cfg: Any) -> Dict[str, Any]:
        c = cfg.DATASETS.CUHK03
        return dict(variant=c.VARIANT, protocol=c.PROTOCOL)

    @classmethod
    def train_identities(cls, protocol: str = "new", **options: Any) -> int:
        return CLASSIC_TRAIN_IDS if str(protocol).lower() == "classic" else cls.published_train_ids


def image_name(pair: int, person: int, slot: int) -> str:
    """File name of 0-based (pair, person, slot): ``1_001_1_01.png`` style, as torchreid writes."""
    view = 1 if slot < 5 else 2
    return f"{pair + 1}_{person + 1:03d}_{view}_{slot + 1:02d}.png"


def find_cuhk03(root: str) -> Tuple[str, List[str]]:
    """Return the path of ``cuhk-03.mat`` and the folders to search for protocol files."""
    cands = [
        os.path.join(root, "cuhk03", "cuhk03_release", "cuhk-03.mat"),
        os.path.join(root, "cuhk03_release", "cuhk-03.mat"),
        os.path.join(root, "cuhk-03.mat"),
        os.path.join(root, "cuhk03", "cuhk-03.mat"),
    ]
    for mat in cands:
        if os.path.isfile(mat):
            here = os.path.dirname(mat)
            return mat, list(dict.fromkeys([os.path.dirname(here), here]))
    raise DatasetError(
        "cuhk03: cuhk-03.mat not found; looked for:\n  "
        + "\n  ".join(cands)
        + f"\nexpected layout:\n{CUHK03_TREE}\n"
        "see docs/datasets.md for how to obtain and lay out the data"
    )


def _open_mat(mat_path: str):
    import h5py

    try:
        return h5py.File(mat_path, "r")
    except OSError as e:
        raise DatasetError(
            f"cuhk03: {mat_path} is not a MATLAB v7.3 (HDF5) file: {e}. The "
            "official cuhk-03.mat is v7.3; re-download it if it is damaged"
        ) from None


def _is_empty(f, ref) -> bool:
    """MATLAB empty cell: null reference or a ``canonical empty`` dims placeholder."""
    if not ref:
        return True
    obj = f[ref]
    cls = obj.attrs.get("MATLAB_class", b"")
    if isinstance(cls, bytes):
        cls = cls.decode("ascii", "replace")
    empty_flag = bool(np.asarray(obj.attrs.get("MATLAB_empty", 0)).any())
    return cls == "canonical empty" or empty_flag or obj.ndim < 3 or obj.size == 0


def _source_stamp(mat_path: str) -> Dict[str, int]:
    st = os.stat(mat_path)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def extract_images(
    mat_path: str, variant: str, out_dir: Optional[str] = None
) -> Tuple[str, List[int]]:
    """Write every image of ``variant`` as PNG once; return (folder, persons per pair).

    Reuses the folder when its marker says it was extracted completely from this very file
    (same size and mtime). Empty cells are skipped but slot numbers are kept. Images are
    ``mat[ref][:].T`` -> (H, W, 3) uint8 RGB (MATLAB stores them column-major).
    """
    if variant not in VARIANTS:
        raise InputError(f"cuhk03: variant must be one of {VARIANTS}, got {variant!r}")
    out_dir = out_dir or os.path.join(os.path.dirname(mat_path), f"images_{variant}")
    marker = os.path.join(out_dir, MARKER)
    stamp = _source_stamp(mat_path)
    done = _extracted(marker, stamp, variant)
    if done is not None:
        return out_dir, done
    # The ranks of one DDP job extract into the same folder: one extracts, the others wait.
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError:
        pass  # reported below, with the fix
    with exclusive(os.path.join(out_dir, ".extract.lock"), out_dir):
        return _extract_locked(mat_path, variant, out_dir, marker, stamp)


def _extracted(marker: str, stamp: Any, variant: str) -> Optional[List[int]]:
    """Persons per pair when ``marker`` says the folder was extracted from this very file."""
    if not os.path.isfile(marker):
        return None
    with open(marker, encoding="utf-8") as fh:
        info = json.load(fh)
    if info.get("source") == stamp and info.get("variant") == variant:
        return [int(n) for n in info["pairs"]]
    return None


def _extract_locked(
    mat_path: str, variant: str, out_dir: str, marker: str, stamp: Any
) -> Tuple[str, List[int]]:
    from PIL import Image

    done = _extracted(marker, stamp, variant)
    if done is not None:
        return out_dir, done
    if os.path.isfile(marker):
        logger.info("cuhk03: %s changed since extraction, extracting again", mat_path)
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".write_test")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as e:
        raise DatasetError(
            f"cuhk03: cannot write the image cache {out_dir} ({e}); pass "
            "cache_dir= to build_dataset('cuhk03', ...) to put it elsewhere"
        ) from None
    logger.info("cuhk03: extracting %s images from %s to %s (once)", variant, mat_path, out_dir)
    pairs: List[int] = []
    count = 0
    with _open_mat(mat_path) as f:
        if variant not in f:
            raise DatasetError(
                f"cuhk03: {mat_path} has no '{variant}' cell array "
                f"(found: {', '.join(k for k in f.keys())})"
            )
        cells = np.asarray(f[variant][()]).reshape(-1)
        for p, pair_ref in enumerate(cells):
            table = np.asarray(f[pair_ref][()]).T  # (persons, 10) references
            if table.ndim != 2 or table.shape[1] != 10:
                raise DatasetError(
                    f"cuhk03: {variant} pair {p + 1} in {mat_path} is not a "
                    f"persons x 10 cell array (shape {table.shape})"
                )
            pairs.append(int(table.shape[0]))
            for person in range(table.shape[0]):
                for slot in range(10):
                    ref = table[person, slot]
                    if _is_empty(f, ref):
                        continue
                    img = np.asarray(f[ref][()]).T  # (H, W, 3)
                    if img.ndim != 3 or img.shape[2] != 3:
                        raise DatasetError(
                            f"cuhk03: {variant} pair {p + 1} person {person + 1} "
                            f"slot {slot + 1}: not an RGB image ({img.shape})"
                        )
                    name = image_name(p, person, slot)
                    Image.fromarray(np.ascontiguousarray(img.astype(np.uint8))).save(
                        os.path.join(out_dir, name)
                    )
                    count += 1
    tmp = marker + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"variant": variant, "source": stamp, "pairs": pairs, "images": count}, fh)
    os.replace(tmp, marker)
    return out_dir, pairs


def read_testsets(mat_path: str) -> List[np.ndarray]:
    """The 20 classic test splits, each (100, 2) int ``[pair, person]`` (1-based)."""
    with _open_mat(mat_path) as f:
        if "testsets" not in f:
            raise DatasetError(f"cuhk03: {mat_path} has no 'testsets' cell array")
        refs = np.asarray(f["testsets"][()]).reshape(-1)
        out = []
        for r in refs:
            t = np.asarray(f[r][()]).T.astype(np.int64)  # HDF5 (2, 100) -> (100, 2)
            if t.ndim != 2 or 2 not in t.shape:
                raise DatasetError(f"cuhk03: {mat_path}: a testset is not (100, 2) ({t.shape})")
            out.append(t if t.shape[1] == 2 else t.T)
        return out


def _scan(image_dir: str, pairs: List[int]) -> List[Tuple[str, int, int, int, int]]:
    """``(name, pair, person, view, raw pid)`` of the extracted images, in name order."""
    offsets = np.concatenate([[0], np.cumsum(pairs)]).astype(int).tolist()
    out = []
    for name in sorted(os.listdir(image_dir)):
        if not name.endswith(".png"):
            continue
        m = CUHK03_NAME.match(name)
        if m is None:
            raise DatasetError(
                f"cuhk03: unexpected file in the image cache (grammar "
                f"{CUHK03_NAME.pattern}): {os.path.join(image_dir, name)}"
            )
        pair, person, view = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if pair > len(pairs) or person > pairs[pair - 1]:
            raise DatasetError(
                f"cuhk03: {name} in {image_dir} is outside the .mat's persons; "
                "delete the folder to extract again"
            )
        out.append((name, pair, person, view, offsets[pair - 1] + person))
    return out


def _mat_strings(cell: np.ndarray) -> List[str]:
    out = []
    for x in np.asarray(cell, dtype=object).reshape(-1):
        arr = np.asarray(x).reshape(-1)
        out.append(str(arr[0]) if arr.size else "")
    return out


def read_new_protocol(path: str) -> Dict[str, np.ndarray]:
    """Load a new-protocol config: filelist (N,) str, labels/camId (N,), *_idx 0-based int64."""
    from scipy.io import loadmat

    try:
        m = loadmat(path)
    except Exception as e:  # scipy raises several types for malformed files
        raise DatasetError(f"cuhk03: cannot read new-protocol file {path}: {e}") from None
    need = ("filelist", "labels", "train_idx", "query_idx", "gallery_idx")
    missing = [k for k in need if k not in m]
    if missing:
        raise DatasetError(f"cuhk03: {path} lacks field(s) {', '.join(missing)}")
    out: Dict[str, np.ndarray] = {"filelist": np.array(_mat_strings(m["filelist"]))}
    n = len(out["filelist"])
    out["labels"] = np.asarray(m["labels"], dtype=np.int64).reshape(-1)
    if "camId" in m:
        out["camId"] = np.asarray(m["camId"], dtype=np.int64).reshape(-1)
    for k in ("train_idx", "query_idx", "gallery_idx"):
        idx = np.asarray(m[k], dtype=np.int64).reshape(-1) - 1  # 1-based uint16 -> 0-based int
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DatasetError(f"cuhk03: {path}: {k} has indices outside 1..{n}")
        out[k] = idx
    if len(out["labels"]) != n:
        raise DatasetError(
            f"cuhk03: {path}: labels ({len(out['labels'])}) and filelist ({n}) differ in length"
        )
    return out


def find_protocol_file(folders: List[str], variant: str) -> str:
    fname = f"cuhk03_new_protocol_config_{variant}.mat"
    for d in folders:
        path = os.path.join(d, fname)
        if os.path.isfile(path):
            return path
    raise DatasetError(
        f"cuhk03: new-protocol file {fname} not found; looked in:\n  "
        + "\n  ".join(folders)
        + "\nget it from zhunzhong07/person-re-ranking (evaluation/data/CUHK03/) or use "
        f"protocol='classic'.\nexpected layout:\n{CUHK03_TREE}"
    )


@DATASETS.register("cuhk03")
class CUHK03(CUHK03Traits, ReIDDataset):
    """CUHK03 with ``variant`` labeled|detected, ``protocol`` new|classic, ``split`` 0..19."""

    chain_fragment = "cuhk03_labeled.yml"
    chain_aliases = {"cuhk03-detected": "cuhk03_detected.yml"}

    @classmethod
    def config_options(cls, cfg: Any) -> Dict[str, Any]:
        return dict(super().config_options(cfg), split=cfg.DATASETS.CUHK03.SPLIT)

    def __init__(
        self,
        root: str = "datasets",
        variant: str = "labeled",
        protocol: str = "new",
        split: int = 0,
        dsetid: int = 0,
        name: Optional[str] = None,
        cache_dir: Optional[str] = None,
    ) -> None:
        variant, protocol = str(variant).lower(), str(protocol).lower()
        if variant not in VARIANTS:
            raise InputError(f"cuhk03: variant must be 'labeled' or 'detected', got {variant!r}")
        if protocol not in ("new", "classic"):
            raise InputError(f"cuhk03: protocol must be 'new' or 'classic', got {protocol!r}")
        mat, folders = find_cuhk03(root)
        proto_file = find_protocol_file(folders, variant) if protocol == "new" else None
        testsets = read_testsets(mat) if protocol == "classic" else None
        if testsets is not None and not 0 <= int(split) < len(testsets):
            raise InputError(
                f"cuhk03: classic split must be in 0..{len(testsets) - 1}, got {split}"
            )
        image_dir, pairs = extract_images(mat, variant, cache_dir)
        scanned = _scan(image_dir, pairs)
        if protocol == "new":
            raw_train, query, gallery = self._new(proto_file, image_dir, scanned, dsetid)
        else:
            raw_train, query, gallery = self._classic(
                testsets[int(split)], image_dir, scanned, dsetid
            )
        super().__init__(
            name=name or "cuhk03",
            train=relabel(raw_train),
            query=query,
            gallery=gallery,
            root=os.path.dirname(mat),
        )
        # Raw identity (1..1467) of each train item, aligned with ``train``.
        self.train_raw_pids = [s.pid for s in raw_train]
        self.variant, self.protocol, self.split = variant, protocol, int(split)
        self.image_dir = image_dir
        self._check_published()

    @staticmethod
    def _new(proto_file: str, image_dir: str, scanned, dsetid: int):
        cfg = read_new_protocol(proto_file)
        have = {s[0] for s in scanned}
        names = cfg["filelist"]
        for n in names:
            if not CUHK03_NAME.match(n):
                raise DatasetError(
                    f"cuhk03: {proto_file}: filelist entry breaks the grammar "
                    f"{CUHK03_NAME.pattern}: {n!r}"
                )
            if n not in have:
                raise DatasetError(
                    f"cuhk03: {proto_file} names {n}, which cuhk-03.mat does not "
                    f"contain (extracted to {image_dir}); wrong variant?"
                )
        views = cfg.get("camId")
        if views is None:
            views = np.array([int(n.split("_")[2]) for n in names])

        def items(idx: np.ndarray) -> List[Sample]:
            return [
                Sample(
                    os.path.join(image_dir, names[i]),
                    int(cfg["labels"][i]),
                    int(views[i]) - 1,
                    dsetid,
                )
                for i in idx
            ]

        return items(cfg["train_idx"]), items(cfg["query_idx"]), items(cfg["gallery_idx"])

    @staticmethod
    def _classic(testset: np.ndarray, image_dir: str, scanned, dsetid: int):
        test_keys = {(int(a), int(b)) for a, b in testset}
        train, test = [], []
        for name, pair, person, view, raw in scanned:
            s = Sample(os.path.join(image_dir, name), raw, view - 1, dsetid)
            (test if (pair, person) in test_keys else train).append(s)
        return train, test, list(test)

    def _check_published(self) -> None:
        total = (
            len(self.train) + len(self.gallery) + (len(self.query) if self.protocol == "new" else 0)
        )
        if not looks_full(total, PUBLISHED_TOTAL[self.variant]):
            return
        name = f"cuhk03 ({self.variant}, {self.protocol})"
        if self.protocol == "new":
            ti, tp, qi, qp, gi, gp = PUBLISHED_NEW[self.variant]
            table = {
                ("train", "images"): ti,
                ("train", "identities"): tp,
                ("query", "images"): qi,
                ("query", "identities"): qp,
                ("gallery", "images"): gi,
                ("gallery", "identities"): gp,
            }
        else:
            table = {
                ("train", "identities"): CLASSIC_TRAIN_IDS,
                ("query", "identities"): 100,
                ("gallery", "identities"): 100,
            }
        table.update({(s, "cameras"): 2 for s in ("train", "query", "gallery")})
        check_published(self, table, name=name)


MARKET_STYLE_NAME = re.compile(r"^(\d{4})_c([12])_(\d)_(\d{3})_(\d{2})\.png$")


def export_market_style(ds: CUHK03, out_dir: str, link: bool = True) -> Dict[str, int]:
    """Write ``ds`` as a Market-style folder (``bounding_box_train``, ``query``,
    ``bounding_box_test``) with names ``{raw pid:04d}_c{view}_{pair}_{person:03d}_{slot:02d}.png``.

    Train images carry raw pids (the parser relabels). The classic protocol has no separate
    gallery, so the same images go to both ``query`` and ``bounding_box_test``. Files are
    hard-linked when possible (``link``), else copied. Returns images written per folder.
    """
    counts = {}
    for split, sub in (
        ("train", "bounding_box_train"),
        ("query", "query"),
        ("gallery", "bounding_box_test"),
    ):
        folder = os.path.join(out_dir, sub)
        os.makedirs(folder, exist_ok=True)
        items = getattr(ds, split)
        pids = ds.train_raw_pids if split == "train" else [s.pid for s in items]
        for s, pid in zip(items, pids):
            pair, person, view, slot = os.path.basename(s.path)[:-4].split("_")
            dst = os.path.join(folder, f"{pid:04d}_c{view}_{pair}_{person}_{slot}.png")
            if os.path.exists(dst):
                os.remove(dst)
            try:
                if not link:
                    raise OSError
                os.link(s.path, dst)
            except OSError:
                shutil.copyfile(s.path, dst)
        counts[sub] = len(getattr(ds, split))
    return counts


@DATASETS.register("cuhk03_market")
class CUHK03Market(CUHK03Traits, MarketStyleDataset):
    """CUHK03 after ``tools/prepare_cuhk03.py``: ``<root>/cuhk03-market/<variant>_<protocol>/``."""

    dataset_dir = "cuhk03-market"
    release_dir = "labeled_new"
    pattern = MARKET_STYLE_NAME
    extension = ".png"
    tree = """\
  <root>/cuhk03-market/<variant>_<protocol>/   (written by tools/prepare_cuhk03.py)
    bounding_box_train/  0001_c1_1_001_01.png ...
    bounding_box_test/
    query/"""
    published = None

    def __init__(
        self,
        root: str = "datasets",
        variant: str = "labeled",
        protocol: str = "new",
        dsetid: int = 0,
        name: Optional[str] = None,
        **kwargs,
    ) -> None:
        self.release_dir = f"{variant}_{protocol}"
        super().__init__(root, dsetid=dsetid, name=name or "cuhk03_market", **kwargs)


def prepare_market_style(
    root: str = "datasets",
    variant: str = "labeled",
    protocol: str = "new",
    split: int = 0,
    out_dir: Optional[str] = None,
    link: bool = True,
) -> Tuple[str, Dict[str, int]]:
    """Parse CUHK03 and write it where ``cuhk03_market`` reads it (default
    ``<root>/cuhk03-market/<variant>_<protocol>/``); returns (folder, images per sub-folder)."""
    ds = CUHK03(root=root, variant=variant, protocol=protocol, split=split)
    out_dir = out_dir or os.path.join(root, "cuhk03-market", f"{ds.variant}_{ds.protocol}")
    return out_dir, export_market_style(ds, out_dir, link=link)
