"""Activation maps: where the last backbone stage (and PTL's side network, when the model has
one) responds, overlaid on each image, as torchreid's ``visualize_actmap`` draws them.

A map is the channel-wise sum of squares of a stage's output (B, C, h, w) -> (B, h, w),
L2-normalised per image, resized to the image, scaled to 0-255 per image and coloured with the
JET colormap; the overlay is 0.3 x image + 0.7 x map. One grid PNG: a row per image, columns
image | last stage | PTL side network, each captioned.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..data.image_dataset import read_image
from .ranks import display_size

_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def activation_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """The modules whose outputs are drawn: ``last stage`` (the backbone's last stage) and
    ``PTL side network`` (the PTL branch's final cell) when present."""
    backbone = getattr(model, "backbone", None)
    stages = getattr(backbone, "stages", None)
    if not stages:
        raise ValueError(
            f"activation maps need a staged backbone (model.backbone.stages); "
            f"{type(model).__name__} has none"
        )
    layers = {"last stage": stages[-1]}
    ptl = getattr(model, "ptl", None)
    if ptl is not None and getattr(ptl, "out_cells", None):
        layers["PTL side network"] = ptl.out_cells[0]
    return layers


@torch.no_grad()
def activation_maps(model: nn.Module, images: torch.Tensor) -> Dict[str, np.ndarray]:
    """{layer name: (B, h, w) float maps, unit L2 norm per image} for a normalised batch
    ``images`` (B, 3, H, W); the model runs once, in eval mode."""
    got: Dict[str, torch.Tensor] = {}
    hooks = []
    for name, layer in activation_layers(model).items():

        def keep(_m, _inp, out, name=name):
            got[name] = out[0] if isinstance(out, tuple) else out  # cells return (y, state)

        hooks.append(layer.register_forward_hook(keep))
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out = {}
    for name, fmap in got.items():
        am = fmap.float().pow(2).sum(1)  # (B, h, w)
        flat = torch.nn.functional.normalize(am.flatten(1), dim=1)
        out[name] = flat.view_as(am).cpu().numpy()
    return out


def overlay(image_bgr: np.ndarray, am: np.ndarray) -> np.ndarray:
    """JET-coloured map ``am`` (h, w) resized onto ``image_bgr`` (H, W, 3 uint8), 0.3 / 0.7."""
    import cv2

    h, w = image_bgr.shape[:2]
    am = cv2.resize(am.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    lo, hi = float(am.min()), float(am.max())
    am = (am - lo) / (hi - lo + 1e-12)
    heat = cv2.applyColorMap(np.uint8(np.floor(255 * am)), cv2.COLORMAP_JET)
    return np.uint8(np.clip(0.3 * image_bgr + 0.7 * heat, 0, 255))


def _caption(text: str, width: int, height: int = 30) -> np.ndarray:
    import cv2

    cap = np.full((height, width, 3), 255, np.uint8)
    scale = 0.5 if width < 220 else 0.6
    cv2.putText(cap, text, (4, height - 9), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return cap


def draw_actmap_grid(
    model: nn.Module,
    paths: Sequence[str],
    transform,
    out_path: str,
    size: Tuple[int, int] = (256, 128),
    device: torch.device | str = "cpu",
) -> str:
    """One PNG: a row per image of ``paths`` (the image, then one overlay per layer of
    :func:`activation_layers`), tiles at ``size`` scaled up to 256 px high; ``transform``
    turns a PIL image into the model's input (the test transform)."""
    import cv2

    if not paths:
        raise ValueError("no images to draw activation maps of")
    batch = torch.stack([transform(read_image(p)) for p in paths]).to(device)
    maps = activation_maps(model, batch)
    th, tw = display_size(size)
    gap = np.full((th, 6, 3), 255, np.uint8)
    header = [_caption("image", tw)] + [_caption(n, tw) for n in maps]
    rows: List[np.ndarray] = [_join(header, np.full((30, 6, 3), 255, np.uint8))]
    for i, p in enumerate(paths):
        img = cv2.resize(np.asarray(read_image(p))[:, :, ::-1], (tw, th))  # RGB -> BGR
        tiles = [img] + [overlay(img, m[i]) for m in maps.values()]
        rows.append(_caption(os.path.basename(p)[:40], len(tiles) * (tw + 6) - 6))
        rows.append(_join(tiles, gap))
        rows.append(np.full((8, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows, axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    if not cv2.imwrite(out_path, grid):
        raise OSError(f"cannot write {out_path}")
    return out_path


def _join(tiles: Sequence[np.ndarray], gap: np.ndarray) -> np.ndarray:
    out = []
    for t in tiles:
        out += [t, gap]
    return np.concatenate(out[:-1], axis=1)
