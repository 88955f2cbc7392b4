"""Array-backed image classification data (CIFAR) for the classification extension.

CIFAR images are arrays, not files, so they do not fit :class:`Sample`; a
:class:`ClassificationDataset` holds ``train``/``test`` as :class:`ArraySplit`
(``images`` uint8 (N, 32, 32, 3) RGB, ``labels`` int64 (N,)) and the class names, and
:class:`ArrayImageDataset` wraps one split as a torch ``Dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .datasets.base import DatasetTraits
from ..errors import InputError


class ArraySplit(NamedTuple):
    """``images``: uint8 (N, H, W, 3) RGB; ``labels``: int64 (N,) in 0..num_classes-1."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(repr=False)
class ClassificationDataset(DatasetTraits):
    """Train and test arrays plus class names (``TASK: classification``)."""

    task = "classification"

    name: str
    train: ArraySplit
    test: ArraySplit
    classes: List[str]
    root: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        """A one-line summary instead of the image arrays."""
        return (
            f"{type(self).__name__}({self.name!r}, train {len(self.train):,} images, "
            f"test {len(self.test):,} images, {self.num_classes} classes, "
            f"root={self.root!r})"
        )

    def stats(self) -> Dict[str, Dict[str, int]]:
        """Images and distinct classes per split."""
        return {
            split: {"images": len(s), "classes": int(np.unique(s.labels).size)}
            for split, s in (("train", self.train), ("test", self.test))
        }


def _to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (3, H, W)


class ArrayImageDataset(Dataset):
    """Yields ``{"images": (3, H, W), "targets": label, "camids": 0, "dsetids": 0, "index"}``.

    ``transform`` receives a PIL RGB image (like :class:`~reidbox.data.ImageDataset`); without
    one, images become float tensors in [0, 1].
    """

    def __init__(self, split: ArraySplit, transform: Optional[Callable] = None) -> None:
        if split.images.ndim != 4 or split.images.shape[-1] != 3:
            raise InputError(f"images must be (N, H, W, 3), got {split.images.shape}")
        if split.images.shape[0] != split.labels.shape[0]:
            raise InputError(f"{split.images.shape[0]} images but {split.labels.shape[0]} labels")
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> Dict:
        img = Image.fromarray(self.split.images[index])
        out = self.transform(img) if self.transform is not None else _to_tensor(img)
        return {
            "images": out,
            "targets": int(self.split.labels[index]),
            "camids": 0,
            "dsetids": 0,
            "index": index,
        }
