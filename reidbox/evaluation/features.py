"""``FeatureModel``: the one definition of a test-time feature.

Evaluation (``test_net``, periodic evaluation, rank lists), ``reidbox.FeatureExtractor`` and
export (the TorchScript / ONNX graph) all run a model through this wrapper, so they give the
same features for the same config: the model's eval-mode forward, averaged with that of the
horizontally mirrored image when ``TEST.FLIP_AUG`` is on, then L2-normalised when
``TEST.NORM_FEAT`` is on.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .settings import EvalSettings


class FeatureModel(nn.Module):
    """(B, 3, H, W) images -> (B, D) float32 features under the config's test-time rules.

    ``flip``: average with the features of the mirrored images (two forward passes);
    ``normalize``: unit L2 norm per row. The wrapped model is ``self.model``; the wrapper
    leaves its train/eval mode alone (callers put it in eval mode).
    """

    def __init__(self, model: nn.Module, flip: bool = False, normalize: bool = True) -> None:
        super().__init__()
        self.model = model
        self.flip = bool(flip)
        self.normalize = bool(normalize)

    @classmethod
    def from_config(
        cls,
        model: nn.Module,
        cfg,
        flip: Optional[bool] = None,
        normalize: Optional[bool] = None,
    ) -> FeatureModel:
        """``model`` under ``cfg.TEST``'s rules (read by :class:`EvalSettings`); ``flip`` and
        ``normalize``, where given, override the config."""
        settings = EvalSettings.from_config(cfg)
        return cls(
            model,
            settings.flip if flip is None else flip,
            settings.normalize if normalize is None else normalize,
        )

    @classmethod
    def from_settings(cls, model: nn.Module, settings: EvalSettings) -> FeatureModel:
        """``model`` under the rules of ``settings`` (its ``flip`` and ``normalize``)."""
        return cls(model, settings.flip, settings.normalize)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.model(images).float()
        if self.flip:
            f = (f + self.model(images.flip(3)).float()) / 2
        if self.normalize:
            f = F.normalize(f, dim=1)
        return f

    def rules(self) -> Dict[str, bool]:
        """What the features went through, as export metadata and logs record it."""
        return {"flip_averaged": self.flip, "l2_normalised": self.normalize}

    def describe(self) -> str:
        """One phrase for a log line: ``flip-averaged, L2-normalised`` and the like."""
        return ", ".join(
            [
                "flip-averaged" if self.flip else "no flip",
                "L2-normalised" if self.normalize else "not normalised",
            ]
        )
