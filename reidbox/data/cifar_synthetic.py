"""A tiny procedural CIFAR in the real "python version" file format, for offline demos and tests.

Each image is 32x32 RGB: a noisy two-colour background gradient and one shape, placed, sized and
coloured at random. The class is the shape (CIFAR-10 format: 10 shapes) or the pair (shape,
colour family) (CIFAR-100 format: 10 shapes x 10 hues, coarse label = the shape and whether the
hue is warm or cool). A small CNN learns it in a few epochs on a CPU, yet it needs spatial
features (colour alone does not tell the CIFAR-10-format classes apart).

The files are what Python 2's cPickle wrote (protocol 2, byte-string keys, numpy under its 1.x
module names), so :class:`reidbox.data.datasets.cifar.CIFAR10` / ``CIFAR100`` parse them exactly
as they parse the real download. Registered datasets ``cifar10_synthetic`` and
``cifar100_synthetic`` generate on first use into ``<root>/cifar10_synthetic/`` and
``<root>/cifar100_synthetic/`` (a ``manifest.json`` written last marks a complete folder).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import uuid
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..registry import DATASETS
from .datasets.base import DatasetError
from .datasets.cifar import CIFAR10, CIFAR100
from ..errors import InputError
from ..utils.misc import exclusive

GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
SHAPES = (
    "disc",
    "square",
    "triangle",
    "ring",
    "cross",
    "hstripes",
    "vstripes",
    "diagonal",
    "checker",
    "twodots",
)


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol-2 pickles as Python 2 wrote them: ``str`` as byte strings (BINSTRING), numpy's
    array reconstruction under ``numpy.core.multiarray`` (the name numpy 1.x used)."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_bytestring(self, obj: Any) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_bytestring
    dispatch[bytes] = _save_bytestring

    def save_global(self, obj: Any, name: Optional[str] = None) -> None:
        if getattr(obj, "__name__", "") == "_reconstruct":
            module, qual = "numpy.core.multiarray", "_reconstruct"
        elif obj is np.ndarray:
            module, qual = "numpy", "ndarray"
        elif obj is np.dtype:
            module, qual = "numpy", "dtype"
        else:
            super().save_global(obj, name)
            return
        self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode())
        self.memoize(obj)


def write_py2_pickle(path: str, obj: Dict[str, Any]) -> None:
    """Write ``obj`` (str keys, lists, ints, uint8 arrays) as a Python-2 cPickle file."""
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _hue_rgb(hue: float, sat: float, val: float) -> np.ndarray:
    """HSV (each in [0, 1]) -> RGB float (3,) in [0, 255]."""
    h = (hue % 1.0) * 6.0
    c = val * sat
    x = c * (1 - abs(h % 2 - 1))
    table = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)]
    r, g, b = table[int(h) % 6]
    return (np.array([r, g, b]) + (val - c)) * 255.0


def _shape_mask(shape: str, rng: np.random.Generator) -> np.ndarray:
    """A soft-edged (32, 32) float mask in [0, 1] of ``shape`` at a random place and size."""
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    r = rng.uniform(6.0, 10.0)
    cy, cx = rng.uniform(r + 1, 31 - r, size=2)
    dy, dx = yy - cy, xx - cx
    dist = np.hypot(dy, dx)
    if shape == "disc":
        m = dist < r
    elif shape == "square":
        m = (np.abs(dy) < r * 0.85) & (np.abs(dx) < r * 0.85)
    elif shape == "triangle":
        m = (dy < r * 0.8) & (dy > -r) & (np.abs(dx) < (dy + r) * 0.55)
    elif shape == "ring":
        m = (dist < r) & (dist > r * 0.55)
    elif shape == "cross":
        w = r * 0.3
        m = ((np.abs(dy) < w) & (np.abs(dx) < r)) | ((np.abs(dx) < w) & (np.abs(dy) < r))
    elif shape == "hstripes":
        m = (np.abs(dy) < r) & (np.abs(dx) < r) & (np.floor((dy + r) / 3.0) % 2 == 0)
    elif shape == "vstripes":
        m = (np.abs(dy) < r) & (np.abs(dx) < r) & (np.floor((dx + r) / 3.0) % 2 == 0)
    elif shape == "diagonal":
        m = (np.abs(dy - dx) < r * 0.35) & (dist < r * 1.2)
    elif shape == "checker":
        m = (
            (np.abs(dy) < r)
            & (np.abs(dx) < r)
            & ((np.floor((dy + r) / 4.0) + np.floor((dx + r) / 4.0)) % 2 == 0)
        )
    elif shape == "twodots":
        s = r * 0.45
        m = (np.hypot(dy, dx - r * 0.55) < s) | (np.hypot(dy, dx + r * 0.55) < s)
    else:
        raise InputError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return m.astype(np.float32)


def render(shape_id: int, hue: float, rng: np.random.Generator) -> np.ndarray:
    """One (32, 32, 3) uint8 image: background gradient + noise + the shape in ``hue``."""
    yy = np.linspace(0.0, 1.0, 32, dtype=np.float32)[:, None, None]
    bg_a = _hue_rgb(rng.uniform(), rng.uniform(0.0, 0.4), rng.uniform(0.15, 0.55))
    bg_b = _hue_rgb(rng.uniform(), rng.uniform(0.0, 0.4), rng.uniform(0.15, 0.55))
    img = bg_a * (1 - yy) + bg_b * yy  # (32, 1, 3) -> broadcast below
    img = np.broadcast_to(img, (32, 32, 3)).copy()
    colour = _hue_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0))
    mask = _shape_mask(SHAPES[shape_id], rng)[..., None]
    img = img * (1 - mask) + colour * mask
    img += rng.normal(0.0, 10.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _rows(images: List[np.ndarray]) -> np.ndarray:
    """(N, 32, 32, 3) -> CIFAR rows (N, 3072): 1024 R, 1024 G, 1024 B values."""
    return np.stack(images).transpose(0, 3, 1, 2).reshape(len(images), 3072).copy()


def _sample(kind: str, label: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "cifar10":  # class = shape, any hue
        return render(label, rng.uniform(), rng)
    shape, hue_bin = divmod(label, 10)  # class = (shape, one of 10 hue families)
    return render(shape, (hue_bin + rng.uniform(-0.3, 0.3)) / 10.0, rng)


def _make_split(
    kind: str, num_classes: int, per_class: int, rng: np.random.Generator
) -> Tuple[np.ndarray, List[int]]:
    labels = [c for c in range(num_classes) for _ in range(per_class)]
    order = rng.permutation(len(labels))
    labels = [labels[i] for i in order]
    return _rows([_sample(kind, c, rng) for c in labels]), labels


def generate_synthetic_cifar(
    out_dir: str,
    kind: str = "cifar10",
    train_per_class: int = 50,
    test_per_class: int = 10,
    seed: int = 0,
) -> Dict[str, Any]:
    """Write a CIFAR-10 (``kind="cifar10"``) or CIFAR-100 (``"cifar100"``) python-version tree.

    Layout: ``out_dir/cifar/cifar-10-batches-py/`` (data_batch_1..5, test_batch,
    batches.meta) or ``out_dir/cifar/cifar-100-python/`` (train, test, meta), so
    ``DATASETS.ROOT: out_dir`` with ``cifar10`` / ``cifar100`` reads it like the real sets.
    An existing complete tree with the same parameters is kept; returns the manifest.
    """
    if kind not in ("cifar10", "cifar100"):
        raise InputError(f"kind must be 'cifar10' or 'cifar100', got {kind!r}")
    if train_per_class < 1 or test_per_class < 1:
        raise InputError("train_per_class and test_per_class must be >= 1")
    params = dict(
        version=GENERATOR_VERSION,
        kind=kind,
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        seed=seed,
    )
    existing = _same_tree(out_dir, params)
    if existing is not None:
        return existing
    # Several processes (DDP ranks) may build the same tree: one builds, the others wait.
    with exclusive(os.path.join(out_dir, ".generate.lock"), out_dir):
        return _generate_locked(out_dir, kind, params, train_per_class, test_per_class, seed)


def _write_cifar10(base: str, train, train_labels, test, test_labels) -> None:
    """The python-version CIFAR-10 files: five training batches, one test batch, the meta."""
    write_py2_pickle(
        os.path.join(base, "batches.meta"),
        {
            "label_names": list(SHAPES),
            "num_cases_per_batch": -(-len(train_labels) // 5),
            "num_vis": 3072,
        },
    )
    for b, idx in enumerate(np.array_split(np.arange(len(train_labels)), 5), start=1):
        write_py2_pickle(
            os.path.join(base, f"data_batch_{b}"),
            {
                "batch_label": f"training batch {b} of 5",
                "data": train[idx],
                "labels": [train_labels[i] for i in idx],
                "filenames": [f"synthetic_{i:06d}.png" for i in idx],
            },
        )
    write_py2_pickle(
        os.path.join(base, "test_batch"),
        {
            "batch_label": "testing batch 1 of 1",
            "data": test,
            "labels": test_labels,
            "filenames": [f"synthetic_test_{i:06d}.png" for i in range(len(test_labels))],
        },
    )


def _write_cifar100(base: str, train, train_labels, test, test_labels) -> None:
    """The python-version CIFAR-100 files: train, test and the fine/coarse label names."""
    fine = [f"{s}_hue{h}" for s in SHAPES for h in range(10)]
    coarse = [f"{s}_{t}" for s in SHAPES for t in ("warm", "cool")]
    write_py2_pickle(
        os.path.join(base, "meta"), {"fine_label_names": fine, "coarse_label_names": coarse}
    )
    for split, data, labels in (("train", train, train_labels), ("test", test, test_labels)):
        write_py2_pickle(
            os.path.join(base, split),
            {
                "batch_label": f"{split} batch",
                "data": data,
                "fine_labels": labels,
                "coarse_labels": [2 * (c // 10) + (c % 10 >= 5) for c in labels],
                "filenames": [f"synthetic_{split}_{i:06d}.png" for i in range(len(labels))],
            },
        )


def _same_tree(out_dir: str, params: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The manifest of a complete tree generated with ``params`` in ``out_dir``, or None."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        existing = json.load(f)
    return existing if existing.get("params") == params else None


def _generate_locked(
    out_dir: str,
    kind: str,
    params: Dict[str, Any],
    train_per_class: int,
    test_per_class: int,
    seed: int,
) -> Dict[str, Any]:
    existing = _same_tree(out_dir, params)
    if existing is not None:
        return existing
    manifest_path = os.path.join(out_dir, MANIFEST)
    folder = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
    num_classes = 10 if kind == "cifar10" else 100
    rng = np.random.default_rng([seed, num_classes])
    tmp = os.path.join(out_dir, f".tmp-{uuid.uuid4().hex}")
    base = os.path.join(tmp, folder)
    os.makedirs(base)
    train, train_labels = _make_split(kind, num_classes, train_per_class, rng)
    test, test_labels = _make_split(kind, num_classes, test_per_class, rng)
    write = _write_cifar10 if kind == "cifar10" else _write_cifar100
    write(base, train, train_labels, test, test_labels)
    final = os.path.join(out_dir, "cifar", folder)
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(base, final)
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = dict(
        params=params,
        num_train=len(train_labels),
        num_test=len(test_labels),
        num_classes=num_classes,
    )
    tmp_manifest = f"{manifest_path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp_manifest, "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp_manifest, manifest_path)  # a reader sees no manifest or a whole one
    return manifest


def _generate(root: str, name: str, **kwargs: Any) -> str:
    out = os.path.join(root, name)
    try:
        generate_synthetic_cifar(out, **kwargs)
    except OSError as e:
        raise DatasetError(
            f"{name}: cannot write {out}: {e}; set DATASETS.ROOT to a writable folder"
        ) from None
    return out


@DATASETS.register("cifar10_synthetic")
class CIFAR10Synthetic(CIFAR10):
    """10 shape classes, 50 train / 10 test images each, generated into ``root/cifar10_synthetic``
    on first use and read back by the real CIFAR-10 parser."""

    def __init__(
        self, root: str = "datasets", dsetid: int = 0, name: Optional[str] = None, **_: Any
    ) -> None:
        out = _generate(root, "cifar10_synthetic", kind="cifar10")
        super().__init__(root=out, name=name or "cifar10_synthetic")


@DATASETS.register("cifar100_synthetic")
class CIFAR100Synthetic(CIFAR100):
    """100 (shape, hue) classes, 20 train / 5 test images each, in the CIFAR-100 format."""

    def __init__(
        self, root: str = "datasets", dsetid: int = 0, name: Optional[str] = None, **_: Any
    ) -> None:
        out = _generate(
            root, "cifar100_synthetic", kind="cifar100", train_per_class=20, test_per_class=5
        )
        super().__init__(root=out, name=name or "cifar100_synthetic")
