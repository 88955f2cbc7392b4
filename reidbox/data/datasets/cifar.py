"""CIFAR-10 / CIFAR-100 "python version" batches (Python-2 pickles), no checksum required.

Files are read with a restricted unpickler (only numpy's array reconstruction is allowed) and
``encoding="latin1"``, which is what turns Python-2 ``str`` keys and pixel buffers into usable
Python-3 objects. Rows are 1024 R, 1024 G, 1024 B values -> (N, 32, 32, 3).
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ...errors import InputError
from ...registry import DATASETS
from ..classification import ArraySplit, ClassificationDataset
from .base import DatasetError, warn_counts


def _numpy_reconstructors() -> dict:
    """numpy's own (de)serialisation helpers, under numpy 1.x and 2.x module names."""
    import codecs

    arr = np.zeros(1)
    out = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = np.ndarray.__reduce__(arr)[0]
        out[(mod, "scalar")] = np.int64(0).__reduce__()[0]
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        out[(mod, "_frombuffer")] = arr.__reduce_ex__(5)[0]
    out[("numpy", "ndarray")] = np.ndarray
    out[("numpy", "dtype")] = np.dtype
    out[("_codecs", "encode")] = codecs.encode
    return out


_ALLOWED = _numpy_reconstructors()


class _Unpickler(pickle.Unpickler):
    """Only numpy arrays, dtypes and scalars may be built: a CIFAR file never runs code."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a CIFAR file"
            ) from None


def load_batch(path: str) -> Dict[str, Any]:
    """One CIFAR pickle as a dict with ``str`` keys (bytes keys are decoded too)."""
    try:
        with open(path, "rb") as f:
            obj = _Unpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise DatasetError(f"cifar: file not found: {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DatasetError(f"cifar: {path} is not a CIFAR python batch: {e}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"cifar: {path} holds a {type(obj).__name__}, expected a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _split(paths: Sequence[str], label_key: str, num_classes: int) -> ArraySplit:
    datas, labels = [], []
    for p in paths:
        b = load_batch(p)
        for k in ("data", label_key):
            if k not in b:
                raise DatasetError(f"cifar: {p} has no {k!r} entry (found {sorted(b)})")
        data = np.asarray(b["data"], dtype=np.uint8)
        lab = np.asarray(b[label_key], dtype=np.int64).reshape(-1)
        if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != lab.shape[0]:
            raise DatasetError(
                f"cifar: {p}: data {data.shape} / {label_key} {lab.shape} are not (N, 3072) / (N,)"
            )
        if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
            raise DatasetError(f"cifar: {p}: {label_key} outside 0..{num_classes - 1}")
        datas.append(data)
        labels.append(lab)
    data = np.concatenate(datas) if datas else np.zeros((0, 3072), np.uint8)
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return ArraySplit(images, np.concatenate(labels) if labels else np.zeros(0, np.int64))


def _find(root: str, folder: str, marker: str, tree: str, name: str) -> str:
    for cand in (os.path.join(root, "cifar", folder), os.path.join(root, folder), root):
        if os.path.isfile(os.path.join(cand, marker)):
            return cand
    raise DatasetError(
        f"{name}: folder not found: {os.path.join(root, 'cifar', folder)}\n"
        f"expected layout:\n{tree}\nsee docs/datasets.md"
    )


def _names(meta: Dict[str, Any], key: str, path: str) -> List[str]:
    if key not in meta:
        raise DatasetError(f"cifar: {path} has no {key!r} entry")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta[key]]


def _check(ds: ClassificationDataset, n_train: int, n_test: int) -> None:
    if len(ds.train) + len(ds.test) >= 0.9 * (n_train + n_test):
        warn_counts(ds.name, "train", len(ds.train), n_train)
        warn_counts(ds.name, "test", len(ds.test), n_test)


@DATASETS.register("cifar10")
class CIFAR10(ClassificationDataset):
    """CIFAR-10: 50,000 train (data_batch_1..5) / 10,000 test images, 10 classes."""

    published_train_ids = 10

    def __init__(self, root: str = "datasets", dsetid: int = 0, name: Optional[str] = None) -> None:
        tree = (
            "  <root>/cifar/cifar-10-batches-py/\n"
            "    data_batch_1 .. data_batch_5  test_batch  batches.meta"
        )
        base = _find(root, "cifar-10-batches-py", "batches.meta", tree, "cifar10")
        meta_path = os.path.join(base, "batches.meta")
        classes = _names(load_batch(meta_path), "label_names", meta_path)
        train = _split(
            [os.path.join(base, f"data_batch_{i}") for i in range(1, 6)], "labels", len(classes)
        )
        test = _split([os.path.join(base, "test_batch")], "labels", len(classes))
        super().__init__(name or "cifar10", train, test, classes, root=base)
        _check(self, 50000, 10000)


@DATASETS.register("cifar100")
class CIFAR100(ClassificationDataset):
    """CIFAR-100: 50,000 train / 10,000 test; 100 fine labels (20 if ``label_type="coarse"``)."""

    published_train_ids = 100

    def __init__(
        self,
        root: str = "datasets",
        label_type: str = "fine",
        dsetid: int = 0,
        name: Optional[str] = None,
    ) -> None:
        if label_type not in ("fine", "coarse"):
            raise InputError(f"cifar100: label_type must be 'fine' or 'coarse', got {label_type!r}")
        tree = "  <root>/cifar/cifar-100-python/\n    train  test  meta"
        base = _find(root, "cifar-100-python", "meta", tree, "cifar100")
        meta_path = os.path.join(base, "meta")
        classes = _names(load_batch(meta_path), f"{label_type}_label_names", meta_path)
        key = f"{label_type}_labels"
        train = _split([os.path.join(base, "train")], key, len(classes))
        test = _split([os.path.join(base, "test")], key, len(classes))
        super().__init__(name or "cifar100", train, test, classes, root=base)
        _check(self, 50000, 10000)

    @classmethod
    def train_identities(cls, label_type: str = "fine", **options: Any) -> int:
        return 20 if label_type == "coarse" else cls.published_train_ids
