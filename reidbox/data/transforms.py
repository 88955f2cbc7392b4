"""Train and test transforms from ``torchvision.transforms.v2``."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
from torchvision.transforms import v2 as T

# Per-channel statistics of the CIFAR training sets (RGB, [0, 1] scale), the usual constants.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def build_transforms(
    size: Sequence[int],
    is_train: bool,
    flip_prob: float = 0.5,
    padding: int = 0,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    random_erasing: bool = False,
    erasing_prob: float = 0.5,
) -> T.Compose:
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
    return build_transforms(
        i.SIZE_TRAIN if is_train else i.SIZE_TEST,
        is_train,
        i.FLIP_PROB,
        i.PADDING,
        i.PIXEL_MEAN,
        i.PIXEL_STD,
        i.RANDOM_ERASING.ENABLED,
        i.RANDOM_ERASING.PROB,
    )


def preprocessing(cfg) -> Dict[str, Any]:
    """The test-time contract of a model's input and output, as the files that carry features
    or models record it (gallery indexes, ONNX / TorchScript metadata): what an image must go
    through before the network, and what comes out (``TEST.FLIP_AUG``: averaged with the
    mirrored image's; ``TEST.NORM_FEAT``: unit rows, so Euclidean and cosine distance give the
    same order)."""
    return {
        "input_size_hw": [int(s) for s in cfg.INPUT.SIZE_TEST],
        "resize": "bilinear with antialiasing to exactly H x W (aspect ratio not kept)",
        "color": "RGB",
        "layout": "NCHW float32",
        "scale": "pixels / 255, then (x - mean) / std per channel",
        "pixel_mean": [float(v) for v in cfg.INPUT.PIXEL_MEAN],
        "pixel_std": [float(v) for v in cfg.INPUT.PIXEL_STD],
        "flip_averaged": bool(cfg.TEST.FLIP_AUG),
        "l2_normalised": bool(cfg.TEST.NORM_FEAT),
    }


def cifar_transforms(
    image_size: Sequence[int],
    is_train: bool,
    padding: int = 4,
    flip_prob: float = 0.5,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> T.Compose:
    """PIL image -> normalised (3, H, W) float tensor, at the images' own size (no resize).

    Training with ``padding > 0``: zero-pad by ``padding`` pixels and crop back at a random
    place (translation); ``flip_prob > 0``: horizontal mirroring -- together the standard
    "+" augmentation (CIFAR-100+). Both 0: no augmentation (plain CIFAR-10 / CIFAR-100).
    """
    ops: List[Any] = [T.ToImage()]
    if is_train and padding > 0:
        ops.append(T.RandomCrop(tuple(int(s) for s in image_size), padding=int(padding)))
    if is_train and flip_prob > 0:
        ops.append(T.RandomHorizontalFlip(flip_prob))
    ops += [T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]
    return T.Compose(ops)


def classification_transforms(cfg, image_size: Sequence[int], is_train: bool) -> T.Compose:
    """:func:`cifar_transforms` for (H, W) images with ``cfg.INPUT``'s padding, flip and
    normalisation."""
    i = cfg.INPUT
    return cifar_transforms(image_size, is_train, i.PADDING, i.FLIP_PROB, i.PIXEL_MEAN, i.PIXEL_STD)
