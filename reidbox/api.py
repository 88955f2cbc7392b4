"""``FeatureExtractor``: the user-facing way to turn person images into ReID features."""

from __future__ import annotations

import os
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .config import CfgNode, load_config
from .data.image_dataset import read_image, to_rgb8
from .data.transforms import transforms_from_config
from .evaluation.features import FeatureModel
from .modeling import build_inference_model, require_retrieval_model
from .utils.misc import resolve_device
from .errors import InputError, InputTypeError
from .utils.progress import progress as show_progress

ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image]


class FeatureExtractor:
    """Batched features from image paths, PIL images or HxWx3 RGB arrays.

    The features are those evaluation computes (:class:`reidbox.evaluation.FeatureModel`):
    flip-averaged when the config's ``TEST.FLIP_AUG`` is on, L2-normalised when its
    ``TEST.NORM_FEAT`` is (the default); ``flip`` / ``normalize`` override the config.

    Arrays are uint8 (0-255) or float (float16/32/64) in [0, 1]; any other dtype, shape or
    value range is rejected with a ValueError (a non-image object: TypeError).

    >>> fx = FeatureExtractor("configs/demo/ptl.yml", "output/demo/resnet18_ptl/model_final.pth")
    >>> feats = fx(["a.jpg", "b.jpg"])        # (2, D) float32, unit rows (TEST.NORM_FEAT)
    """

    def __init__(
        self,
        config: Union[str, CfgNode],
        weights: Optional[str] = None,
        device: Union[str, torch.device] = "auto",
        batch_size: int = 64,
        flip: Optional[bool] = None,
        normalize: Optional[bool] = None,
        progress_threshold: int = 256,
        allow_untrained: bool = False,
    ) -> None:
        self.cfg = load_config(config) if isinstance(config, (str, os.PathLike)) else config
        require_retrieval_model(self.cfg, "FeatureExtractor")
        weights = weights or self.cfg.MODEL.WEIGHTS or None
        if weights is None and not allow_untrained:
            raise InputError(
                "FeatureExtractor needs trained weights: pass weights=path/model_final.pth "
                "(or set MODEL.WEIGHTS), or allow_untrained=True for the features of the "
                "untrained model (for testing only)"
            )
        self.device = resolve_device(str(device))
        self.model = build_inference_model(self.cfg, weights, self.device)
        self.features = FeatureModel.from_config(self.model, self.cfg, flip, normalize)
        self.transform = transforms_from_config(self.cfg, is_train=False)
        self.batch_size = batch_size
        self.progress_threshold = progress_threshold

    @property
    def flip(self) -> bool:
        """Whether features average the image's and its mirror's (``TEST.FLIP_AUG``)."""
        return self.features.flip

    @property
    def normalize(self) -> bool:
        """Whether features have unit L2 norm (``TEST.NORM_FEAT``)."""
        return self.features.normalize

    @property
    def feature_dim(self) -> int:
        """The length D of a feature (measured once on a blank image)."""
        if getattr(self, "_dim", None) is None:
            size = tuple(self.cfg.INPUT.SIZE_TEST)
            with torch.no_grad():
                self._dim = int(self.model(torch.zeros(1, 3, *size, device=self.device)).shape[1])
        return self._dim

    @staticmethod
    def _to_pil(x: ImageLike) -> Image.Image:
        """One image as RGB PIL; arrays must be HxWx3 uint8 (0-255) or float in [0, 1]."""
        if isinstance(x, Image.Image):
            img = to_rgb8(x, "PIL image")
            if 0 in img.size:
                raise InputError(f"empty image: the PIL image is {img.width}x{img.height}")
            return img
        if isinstance(x, (str, os.PathLike)):
            return read_image(os.fspath(x))
        if not isinstance(x, np.ndarray):
            raise InputTypeError(
                f"FeatureExtractor takes image paths, PIL images or HxWx3 numpy "
                f"arrays, got {type(x).__name__}"
            )
        if x.ndim != 3 or x.shape[2] != 3:
            raise InputError(f"expected an HxWx3 RGB array, got shape {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise InputError(f"empty image: expected an HxWx3 array with H, W >= 1, got {x.shape}")
        if x.dtype == np.uint8:
            return Image.fromarray(x)
        if np.issubdtype(x.dtype, np.floating):
            lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
            if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo and hi <= 1.0):
                raise InputError(
                    f"float image arrays must lie in [0, 1], got values in "
                    f"[{lo:g}, {hi:g}]; divide 0-255 data by 255 or pass uint8"
                )
            return Image.fromarray(np.rint(x.astype(np.float64) * 255).astype(np.uint8))
        raise InputError(
            f"image arrays must be uint8 (0-255) or float in [0, 1], got dtype "
            f"{x.dtype}; convert it first (e.g. 16-bit: (x >> 8).astype(np.uint8))"
        )

    @torch.no_grad()
    def __call__(self, images: Union[ImageLike, Sequence[ImageLike]]) -> torch.Tensor:
        single = isinstance(images, (str, os.PathLike, np.ndarray, Image.Image))
        items: List[ImageLike] = [images] if single else list(images)  # type: ignore[list-item]
        out = []
        batches: Iterable[int] = range(0, len(items), self.batch_size)
        # a bar on a terminal only; elsewhere a log line now and then (no carriage returns)
        batches = show_progress(
            batches, "features", len(items) > self.progress_threshold, unit="batches"
        )
        for start in batches:
            chunk = items[start : start + self.batch_size]
            x = torch.stack([self.transform(self._to_pil(i)) for i in chunk]).to(self.device)
            out.append(self.features(x).cpu())
        feats = torch.cat(out) if out else torch.zeros(0, self.feature_dim)
        return feats[0] if single else feats
