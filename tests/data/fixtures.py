"""Builders of tiny dataset trees in the exact real layouts (DATASETS.md), for any test.

Each ``make_*(root)`` writes under the datasets folder ``root`` and returns what it wrote as
expected per-split numbers, computed from its own specification (never from the parsers):
``{split: {"images": n, "identities": n, "cameras": {0-based camids}}}`` plus extras.
"""

from __future__ import annotations

import os
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from reidbox.data.cifar_synthetic import write_py2_pickle

Expected = Dict[str, Dict]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_tool(script: str, argv: Sequence[str]) -> None:
    """Run ``tools/<script>`` as ``__main__`` in this process with ``argv``; the tools exit
    through ``run_main``, so a non-zero exit status fails."""
    import runpy
    import sys

    old = sys.argv
    sys.argv = [script, *argv]
    try:
        runpy.run_path(os.path.join(REPO, "tools", script), run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            raise AssertionError(f"tools/{script} exited with status {e.code}") from None
    finally:
        sys.argv = old


def write_image(path: str, seed: int = 0, size: Tuple[int, int] = (8, 4)) -> None:
    """A tiny real image (H x W = ``size``); JPEG or PNG by extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def _expect(items: Sequence[Tuple[int, int]]) -> Dict:
    """items: (pid, 0-based cam) of each kept image."""
    return {
        "images": len(items),
        "identities": len({p for p, _ in items}),
        "cameras": {c for _, c in items},
    }


# ------------------------------------------------------------------------------ Market / Duke
def make_market(root: str, release: bool = True) -> Expected:
    """``root/market1501/Market-1501-v15.09.15/`` (``release=False``: folders in market1501/).

    Train: 4 ids on cameras 1..6; query: 3 test ids, one image per camera they are seen in;
    gallery: those ids' other images + ``0000`` distractors + ``-1`` junk (dropped). Also
    ``Thumbs.db`` and a macOS ``._`` file, which must be ignored.
    """
    base = os.path.join(root, "market1501", "Market-1501-v15.09.15" if release else "")
    train = [(2, c) for c in (1, 2, 3)] * 2 + [(7, 4), (7, 5), (11, 6), (11, 1), (30, 2)]
    query = [(1, 1), (1, 2), (5, 3), (9, 6)]
    gallery = [(1, 3), (1, 4), (5, 1), (5, 5), (9, 2), (0, 1), (0, 4), (-1, 2), (-1, 5)]
    seq = 0
    for sub, spec in (
        ("bounding_box_train", train),
        ("query", query),
        ("bounding_box_test", gallery),
    ):
        for pid, cam in spec:
            seq += 1
            box = 0 if sub == "query" else 1 + seq % 3
            pid_s = "-1" if pid == -1 else f"{pid:04d}"
            write_image(
                os.path.join(base, sub, f"{pid_s}_c{cam}s1_{seq * 25:06d}_{box:02d}.jpg"), seq
            )
        with open(os.path.join(base, sub, "Thumbs.db"), "wb") as f:
            f.write(b"\x00" * 16)
    with open(os.path.join(base, "bounding_box_train", "._0002_c1s1_000025_01.jpg"), "wb") as f:
        f.write(b"\x00\x05\x16\x07")
    os.makedirs(os.path.join(base, "gt_bbox"), exist_ok=True)
    write_image(os.path.join(base, "gt_bbox", "0001_c1s1_001051_00.jpg"))
    kept = [(p, c - 1) for p, c in gallery if p != -1]
    return {
        "base": base,
        "train": _expect([(p, c - 1) for p, c in train]),
        "query": _expect([(p, c - 1) for p, c in query]),
        "gallery": _expect(kept),
        "train_raw_pids": sorted({p for p, _ in train}),
        "gallery_pids": sorted({p for p, _ in kept}),
    }


def make_duke(root: str) -> Expected:
    """``root/dukemtmc-reid/DukeMTMC-reID/``: cameras 1..8, non-contiguous pids, and a
    gallery-only single-camera distractor id (kept with its real pid)."""
    base = os.path.join(root, "dukemtmc-reid", "DukeMTMC-reID")
    train = [(1, 1), (1, 2), (1, 8), (3, 3), (3, 4), (8, 5), (8, 6), (8, 7), (1500, 2)]
    train += [(1500, 7)]
    query = [(5, 1), (5, 2), (12, 8)]
    gallery = [(5, 3), (5, 4), (12, 6), (12, 7), (4000, 2), (4000, 2)]  # 4000: distractor
    frame = 46182
    for sub, spec in (
        ("bounding_box_train", train),
        ("query", query),
        ("bounding_box_test", gallery),
    ):
        for pid, cam in spec:
            frame += 120
            write_image(os.path.join(base, sub, f"{pid:04d}_c{cam}_f{frame:07d}.jpg"), frame)
    with open(os.path.join(base, "LICENSE_DukeMTMC-reID.txt"), "w") as f:
        f.write("licence\n")
    return {
        "base": base,
        "train": _expect([(p, c - 1) for p, c in train]),
        "query": _expect([(p, c - 1) for p, c in query]),
        "gallery": _expect([(p, c - 1) for p, c in gallery]),
        "train_raw_pids": sorted({p for p, _ in train}),
    }


# ------------------------------------------------------------------------------ MSMT17
SLOTS = ("0113morning", "0302noon", "0303afternoon", "0114noon")


def make_msmt17(
    root: str, version: str = "v1", lists: bool = True, bad_line: Optional[str] = None
) -> Expected:
    """``root/msmt17/MSMT17_V1`` (or V2 with ``mask_*_v2`` dirs), with list files.

    Train ids 0..3 (list_val holds one image of ids 1 and 3), test ids 0..2 (restart at 0);
    cameras use two digits incl. 10..15; some names carry ``_ex``. ``bad_line`` is appended to
    list_gallery.txt verbatim. macOS ``__MACOSX``/``._`` entries are added and must be ignored.
    """
    rel_dir, train_dir, test_dir = {
        "v1": ("MSMT17_V1", "train", "test"),
        "v2": ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
    }[version]
    base = os.path.join(root, "msmt17", rel_dir)
    spec = {  # list -> [(pid, cam, ex)]
        "train": [
            (0, 1, False),
            (0, 15, True),
            (1, 2, False),
            (1, 10, False),
            (2, 3, False),
            (2, 4, False),
            (3, 12, False),
            (3, 5, False),
        ],
        "val": [(1, 11, False), (3, 14, True)],
        "query": [(0, 1, False), (1, 7, False), (2, 13, False)],
        "gallery": [(0, 9, False), (0, 6, True), (1, 8, False), (2, 15, False), (2, 2, False)],
    }
    k = 0
    lines: Dict[str, List[str]] = {}
    for lst, items in spec.items():
        folder = train_dir if lst in ("train", "val") else test_dir
        out = []
        for n, (pid, cam, ex) in enumerate(items):
            k += 1
            name = (
                f"{pid:04d}_{k:03d}_{cam:02d}_{SLOTS[k % 4]}_{k:04d}_{n % 3}"
                f"{'_ex' if ex else ''}.jpg"
            )
            write_image(os.path.join(base, folder, f"{pid:04d}", name), k)
            out.append(f"{pid:04d}/{name} {pid}")
        lines[lst] = out
    if bad_line is not None:
        lines["gallery"].append(bad_line)
    if lists:
        for lst, out in lines.items():
            with open(os.path.join(base, f"list_{lst}.txt"), "w") as f:
                f.write("\n".join(out) + "\n")
    os.makedirs(os.path.join(root, "msmt17", "__MACOSX", rel_dir), exist_ok=True)
    with open(os.path.join(base, train_dir, "0000", "._junk.jpg"), "wb") as f:
        f.write(b"\x00")

    def exp(*lists_: str) -> Dict:
        return _expect([(p, c - 1) for lst in lists_ for p, c, _ in spec[lst]])

    return {
        "base": base,
        "train": exp("train", "val"),
        "train_only": exp("train"),
        "query": exp("query"),
        "gallery": exp("gallery"),
    }


# ------------------------------------------------------------------------------ CUHK03
# persons per camera pair and, per variant, the number of images in view 1 / view 2 per person.
CUHK03_PAIRS = (5, 4, 3)


def _cuhk03_counts(
    variant: str, pairs: Sequence[int] = CUHK03_PAIRS
) -> List[List[Tuple[int, int]]]:
    """(view-1 images, view-2 images) per (pair, person); labeled pair 3 person 2 has no view 1;
    detected has one image more than labeled (like the real 14,097 vs 14,096)."""
    out = []
    for p, n in enumerate(pairs):
        out.append([(1 + (p + j) % 5, 1 + (2 * p + j) % 5) for j in range(n)])
    if variant == "labeled":
        out[2][1] = (0, 5)
    else:
        out[0][0] = (out[0][0][0], min(5, out[0][0][1] + 1))
        if out[0][0][1] == 5 and out[0][0][0] < 5:
            out[0][0] = (out[0][0][0] + 1, out[0][0][1])
    return out


def cuhk03_pixels(variant: str, pair: int, person: int, slot: int) -> np.ndarray:
    """The (H=7, W=3, 3) uint8 image stored for 0-based (pair, person, slot)."""
    seed = zlib.crc32(f"{variant}{pair}_{person}_{slot}".encode())
    return np.random.default_rng(seed).integers(0, 255, (7, 3, 3), dtype=np.uint8)


def cuhk03_files(variant: str, pairs: Sequence[int] = CUHK03_PAIRS) -> List[Tuple[str, int, int]]:
    """``(name, raw pid 1-based global, view)`` in (pair, person, slot) order."""
    out, gid = [], 0
    for p, persons in enumerate(_cuhk03_counts(variant, pairs)):
        for j, (n1, n2) in enumerate(persons):
            gid += 1
            for slot in list(range(n1)) + list(range(5, 5 + n2)):
                view = 1 if slot < 5 else 2
                out.append((f"{p + 1}_{j + 1:03d}_{view}_{slot + 1:02d}.png", gid, view))
    return out


TESTSETS = [[(1, 1 + k % 5), (2, 1 + (k + 1) % 4), (3, 1 + k % 3)] for k in range(20)]


def _write_mat_header(path: str) -> None:
    text = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Nov 20 00:00:00 2026 "
        b"HDF5 schema 1.00 ."
    )
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as f:
        f.write(header.ljust(512, b"\x00"))


def _write_cuhk03_mat(path: str, pairs: Sequence[int]) -> None:
    """The release's v7.3 .mat body (HDF5 via h5py): image cells, empty cells, test splits."""
    import h5py

    n_ref = 0
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        empty = refs.create_dataset("a", data=np.zeros(2, dtype=np.uint64))
        empty.attrs["MATLAB_class"] = np.bytes_("canonical empty")
        empty.attrs["MATLAB_empty"] = np.uint8(1)

        def put(data: np.ndarray, cls: str) -> h5py.Reference:
            nonlocal n_ref
            n_ref += 1
            ds = refs.create_dataset(f"r{n_ref}", data=data)
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
            return ds.ref

        for variant in ("detected", "labeled"):
            cells = []
            for p, persons in enumerate(_cuhk03_counts(variant, pairs)):
                table = np.empty((10, len(persons)), dtype=h5py.ref_dtype)
                for j, (n1, n2) in enumerate(persons):
                    for slot in range(10):
                        has = slot < n1 if slot < 5 else slot - 5 < n2
                        table[slot, j] = (
                            put(cuhk03_pixels(variant, p, j, slot).T, "uint8") if has else empty.ref
                        )
                cells.append(put(table, "cell"))
            ds = f.create_dataset(variant, data=np.array([cells], dtype=h5py.ref_dtype))
            ds.attrs["MATLAB_class"] = np.bytes_("cell")
        tests = [put(np.array(t, dtype=np.float64).T, "double") for t in TESTSETS]
        ds = f.create_dataset("testsets", data=np.array([tests], dtype=h5py.ref_dtype))
        ds.attrs["MATLAB_class"] = np.bytes_("cell")


def _cuhk03_protocols(root: str, variant: str, pairs: Sequence[int], new_protocol: bool):
    """(new-protocol expectation, classic splits' expectations) of ``variant``; writes the
    new-protocol .mat file when ``new_protocol``."""
    from scipy.io import savemat

    files = cuhk03_files(variant, pairs)
    is_test = (lambda g: g % 2 == 0) if variant == "labeled" else (lambda g: g % 3 == 0)
    train_idx, query_idx, gallery_idx, seen = [], [], [], set()
    for i, (_, gid, view) in enumerate(files):
        if not is_test(gid):
            train_idx.append(i)
        elif (gid, view) not in seen:
            seen.add((gid, view))
            query_idx.append(i)
        else:
            gallery_idx.append(i)
    if new_protocol:
        filelist = np.empty((len(files), 1), dtype=object)
        for i, (name, _, _) in enumerate(files):
            filelist[i, 0] = np.array([name])
        savemat(
            os.path.join(root, "cuhk03", f"cuhk03_new_protocol_config_{variant}.mat"),
            {
                "filelist": filelist,
                "labels": np.array([[g] for _, g, _ in files], dtype=np.uint16),
                "camId": np.array([[v] for _, _, v in files], dtype=np.uint8),
                "train_idx": np.array(train_idx, dtype=np.uint16).reshape(-1, 1) + 1,
                "query_idx": np.array(query_idx, dtype=np.uint16).reshape(-1, 1) + 1,
                "gallery_idx": np.array(gallery_idx, dtype=np.uint16).reshape(-1, 1) + 1,
            },
        )

    def exp(idx: List[int], files=files) -> Dict:
        return _expect([(files[i][1], files[i][2] - 1) for i in idx])

    new = {
        "train": exp(train_idx),
        "query": exp(query_idx),
        "gallery": exp(gallery_idx),
        "files": [n for n, _, _ in files],
    }
    classic = {}
    offsets = np.cumsum((0,) + tuple(pairs))
    for k, t in enumerate(TESTSETS):
        test_g = {int(offsets[a - 1]) + b for a, b in t}
        tr = [i for i, (_, g, _) in enumerate(files) if g not in test_g]
        te = [i for i, (_, g, _) in enumerate(files) if g in test_g]
        classic[k] = {"train": exp(tr), "query": exp(te), "gallery": exp(te)}
    return new, classic


def make_cuhk03(
    root: str, new_protocol: bool = True, pairs: Sequence[int] = CUHK03_PAIRS
) -> Expected:
    """``root/cuhk03/cuhk03_release/cuhk-03.mat`` (v7.3 layout via h5py: ``#refs#``, object
    references, a shared ``canonical empty`` at ``#refs#/a``, trailing empty cells) and the two
    new-protocol .mat files (scipy v5, 1-based uint16 indices, ``filelist`` of 1-element
    strings). Test ids of the new protocol: even raw ids (labeled) / ids divisible by 3
    (detected); query = first image of each view of a test id, gallery = the rest. ``pairs``:
    persons per camera pair (at least 2 in the third; the classic splits assume the default)."""
    rel = os.path.join(root, "cuhk03", "cuhk03_release")
    os.makedirs(rel, exist_ok=True)
    path = os.path.join(rel, "cuhk-03.mat")
    _write_cuhk03_mat(path, pairs)
    _write_mat_header(path)
    out: Expected = {"mat": path, "new": {}, "classic": {}}
    for variant in ("labeled", "detected"):
        out["new"][variant], out["classic"][variant] = _cuhk03_protocols(
            root, variant, pairs, new_protocol
        )
    return out


# ------------------------------------------------------------------------------ CIFAR
# Python-2 cPickle files (write_py2_pickle), as the real CIFAR batches are.


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def make_cifar10(root: str, per_batch: int = 6, test: int = 5) -> Expected:
    """``root/cifar/cifar-10-batches-py/`` with 5 train batches of ``per_batch`` rows."""
    base = os.path.join(root, "cifar", "cifar-10-batches-py")
    os.makedirs(base, exist_ok=True)
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    write_py2_pickle(
        os.path.join(base, "batches.meta"),
        {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072},
    )
    train_rows, train_labels = [], []
    for b in range(1, 6):
        rows = _cifar_rows(per_batch, b)
        labels = [(b * 7 + i) % 10 for i in range(per_batch)]
        write_py2_pickle(
            os.path.join(base, f"data_batch_{b}"),
            {
                "batch_label": f"training batch {b} of 5",
                "labels": labels,
                "data": rows,
                "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)],
            },
        )
        train_rows.append(rows)
        train_labels += labels
    rows = _cifar_rows(test, 99)
    labels = [i % 10 for i in range(test)]
    write_py2_pickle(
        os.path.join(base, "test_batch"),
        {
            "batch_label": "testing batch 1 of 1",
            "labels": labels,
            "data": rows,
            "filenames": [f"test_{i}.png" for i in range(test)],
        },
    )
    with open(os.path.join(base, "readme.html"), "w") as f:
        f.write("<html></html>")
    return {
        "base": base,
        "classes": names,
        "train_data": np.concatenate(train_rows),
        "train_labels": train_labels,
        "test_data": rows,
        "test_labels": labels,
    }


def make_cifar100(root: str, n_train: int = 12, n_test: int = 4) -> Expected:
    """``root/cifar/cifar-100-python/`` with fine (0..99) and coarse (0..19) labels."""
    base = os.path.join(root, "cifar", "cifar-100-python")
    os.makedirs(base, exist_ok=True)
    fine = [f"fine{i}" for i in range(100)]
    coarse = [f"coarse{i}" for i in range(20)]
    write_py2_pickle(
        os.path.join(base, "meta"), {"fine_label_names": fine, "coarse_label_names": coarse}
    )
    out: Expected = {"base": base, "classes": fine}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        rows = _cifar_rows(n, seed)
        fl = [(i * 37 + seed) % 100 for i in range(n)]
        write_py2_pickle(
            os.path.join(base, split),
            {
                "filenames": [f"{split}_{i}.png" for i in range(n)],
                "batch_label": f"{split} batch",
                "fine_labels": fl,
                "coarse_labels": [x // 5 for x in fl],
                "data": rows,
            },
        )
        out[f"{split}_data"], out[f"{split}_labels"] = rows, fl
    return out


# ------------------------------------------------------------------------------ sized sets
def _spread(num_ids: int, num_images: int) -> List[int]:
    """Images per identity: ``num_images`` over ``num_ids`` as evenly as possible (>= 1)."""
    if num_images < num_ids:
        raise ValueError(f"{num_images} images cannot cover {num_ids} identities")
    return [num_images // num_ids + (i < num_images % num_ids) for i in range(num_ids)]


def make_reid_sized(
    root: str,
    dataset: str,
    num_ids: int,
    num_images: int,
    num_test_ids: int = 3,
    size: Tuple[int, int] = (16, 8),
) -> Expected:
    """A train split of exactly ``num_images`` images of ``num_ids`` identities (spread over
    two or more cameras) in the real layout of ``dataset`` (``market1501``, ``dukemtmcreid`` or
    ``msmt17``), plus ``num_test_ids`` test identities with one query per camera (cameras 1, 2)
    and two gallery images each on a third camera, so every query has a cross-camera match.
    For tests whose point is the train-set size (e.g. a remainder of 1 by the batch)."""
    train = [
        (pid, 1 + k % 3)
        for pid, n in enumerate(_spread(num_ids, num_images), start=1)
        for k in range(n)
    ]
    test_pids = range(num_ids + 1, num_ids + 1 + num_test_ids)
    query = [(pid, cam) for pid in test_pids for cam in (1, 2)]
    gallery = [(pid, 3) for pid in test_pids for _ in range(2)]
    seq = 0
    if dataset in ("market1501", "dukemtmcreid"):
        base = (
            os.path.join(root, "market1501", "Market-1501-v15.09.15")
            if dataset == "market1501"
            else os.path.join(root, "dukemtmc-reid", "DukeMTMC-reID")
        )
        for sub, spec in (
            ("bounding_box_train", train),
            ("query", query),
            ("bounding_box_test", gallery),
        ):
            for pid, cam in spec:
                seq += 1
                name = (
                    f"{pid:04d}_c{cam}s1_{seq:06d}_{0 if sub == 'query' else 1:02d}.jpg"
                    if dataset == "market1501"
                    else f"{pid:04d}_c{cam}_f{seq:07d}.jpg"
                )
                write_image(os.path.join(base, sub, name), seq, size)
    elif dataset == "msmt17":
        base = os.path.join(root, "msmt17", "MSMT17_V1")
        val = {len(train) - 1}  # one image listed in list_val (joins training by default)
        lists: Dict[str, List[str]] = {"train": [], "val": [], "query": [], "gallery": []}
        for lst, folder, spec in (
            ("train", "train", train),
            ("query", "test", query),
            ("gallery", "test", gallery),
        ):
            for k, (pid, cam) in enumerate(spec):
                seq += 1
                name = f"{pid:04d}_{seq:03d}_{cam:02d}_{SLOTS[seq % 4]}_{seq:04d}_0.jpg"
                write_image(os.path.join(base, folder, f"{pid:04d}", name), seq, size)
                target = "val" if lst == "train" and k in val else lst
                lists[target].append(f"{pid:04d}/{name} {pid}")
        for lst, lines in lists.items():
            with open(os.path.join(base, f"list_{lst}.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
    else:
        raise ValueError(f"make_reid_sized: no layout for {dataset!r}")
    return {
        "base": base,
        "train": _expect([(p, c - 1) for p, c in train]),
        "query": _expect([(p, c - 1) for p, c in query]),
        "gallery": _expect([(p, c - 1) for p, c in gallery]),
    }


def trim_market_style_train(folder: str, num_images: int) -> int:
    """Delete training images of a Market-style tree (``folder/bounding_box_train``) from the
    identities with the most images until ``num_images`` remain; returns how many were kept.
    Used on a generated synthetic set, whose size is not a parameter."""
    train = os.path.join(folder, "bounding_box_train")
    by_id: Dict[str, List[str]] = {}
    for name in sorted(os.listdir(train)):
        if name.endswith(".jpg"):
            by_id.setdefault(name.split("_")[0], []).append(name)
    total = sum(len(v) for v in by_id.values())
    if total < num_images:
        raise ValueError(f"{folder} has {total} training images, fewer than {num_images}")
    while total > num_images:
        pid = max(by_id, key=lambda p: (len(by_id[p]), p))
        os.remove(os.path.join(train, by_id[pid].pop()))
        total -= 1
    return total
