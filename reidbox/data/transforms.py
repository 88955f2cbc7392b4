"""Train and test transforms from ``torchvision.transforms.v2``."""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.transforms import v2 as T


def build_transforms(size: Sequence[int], is_train: bool, flip_prob: float = 0.5,
                     padding: int = 0, mean: Sequence[float] = (0.485, 0.456, 0.406),
                     std: Sequence[float] = (0.229, 0.224, 0.225), random_erasing: bool = False,
                     erasing_prob: float = 0.5) -> T.Compose:
    """PIL image -> normalised float tensor (3, H, W).

    Train: resize, flip, pad + random crop, normalise, random erasing (each optional).
    """
    size = tuple(int(s) for s in size)
    ops = [T.ToImage(), T.Resize(size, antialias=True)]
    if is_train:
        if flip_prob > 0:
            ops.append(T.RandomHorizontalFlip(flip_prob))
        if padding > 0:
            ops += [T.Pad(padding), T.RandomCrop(size)]
    ops += [T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]
    if is_train and random_erasing:
        ops.append(T.RandomErasing(p=erasing_prob, value=0))
    return T.Compose(ops)


def transforms_from_config(cfg, is_train: bool) -> T.Compose:
    i = cfg.INPUT
    return build_transforms(i.SIZE_TRAIN if is_train else i.SIZE_TEST, is_train, i.FLIP_PROB,
                            i.PADDING, i.PIXEL_MEAN, i.PIXEL_STD, i.RANDOM_ERASING.ENABLED,
                            i.RANDOM_ERASING.PROB)
