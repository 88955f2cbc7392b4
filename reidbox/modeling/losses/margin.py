"""Margin softmax losses on a cosine classifier: CosFace (Wang et al. 2018, additive cosine
margin) and ArcFace (Deng et al. 2019, additive angular margin).

Both read ``output.logits`` as the cosines between the feature and each class weight, which
the baseline head produces with ``MODEL.HEADS.CLS_LAYER cosine``; on a linear classifier's
logits they refuse in one line (a margin on unbounded logits means nothing).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES
from ..output import ModelOutput


def _cosines(output: ModelOutput, loss: str) -> list:
    if not output.extras.get("cosine_logits"):
        raise ValueError(
            f"the {loss!r} loss needs a cosine classifier's logits: set MODEL.HEADS.CLS_LAYER "
            "cosine (meta-architecture baseline), or use the cross_entropy loss"
        )
    logits = output.logits
    return list(logits) if isinstance(logits, (list, tuple)) else [logits]


def cosface_logits(cos: torch.Tensor, targets: torch.Tensor, scale: float, margin: float):
    """``scale * (cos - margin * onehot)``: the target class's cosine lowered by ``margin``."""
    onehot = F.one_hot(targets, cos.shape[1]).to(cos.dtype)
    return scale * (cos - margin * onehot)


def arcface_logits(cos: torch.Tensor, targets: torch.Tensor, scale: float, margin: float):
    """``scale * cos(theta + margin)`` for the target class, ``scale * cos(theta)`` elsewhere.

    Where ``theta + margin`` would pass pi (the cosine would rise again), the target logit is
    ``cos(theta) - margin * sin(margin)`` instead, which keeps it decreasing in theta (the
    ArcFace authors' choice).
    """
    cos = cos.clamp(-1.0, 1.0)
    sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt()
    shifted = cos * math.cos(margin) - sin * math.sin(margin)  # cos(theta + m)
    shifted = torch.where(
        cos > math.cos(math.pi - margin), shifted, cos - margin * math.sin(margin)
    )
    onehot = F.one_hot(targets, cos.shape[1]).bool()
    return scale * torch.where(onehot, shifted, cos)


class ConfigLoss(nn.Module):
    """A loss whose options and weight live in ``MODEL.LOSSES.<section>`` (``WEIGHT`` there)."""

    section = ""

    @classmethod
    def options(cls, cfg: Any):
        return cfg.MODEL.LOSSES[cls.section]

    @classmethod
    def config_weight(cls, cfg: Any) -> float:
        return cls.options(cfg).WEIGHT


class _MarginSoftmax(ConfigLoss):
    """Mean over classifiers of the cross-entropy of the margin-adjusted, scaled cosines."""

    name = ""
    margin_logits = staticmethod(cosface_logits)

    def __init__(self, scale: float, margin: float) -> None:
        super().__init__()
        self.scale, self.margin = float(scale), float(margin)

    @classmethod
    def from_config(cls, cfg: Any):
        s = cls.options(cfg)
        return cls(scale=s.SCALE, margin=s.MARGIN)

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        terms = [
            F.cross_entropy(self.margin_logits(c, targets, self.scale, self.margin), targets)
            for c in _cosines(output, self.name)
        ]
        return torch.stack(terms).mean()


@LOSSES.register("cosface")
class CosFaceLoss(_MarginSoftmax):
    """CosFace / AM-softmax: ``MODEL.LOSSES.COSFACE.SCALE`` s and ``.MARGIN`` m."""

    name, section = "cosface", "COSFACE"
    margin_logits = staticmethod(cosface_logits)


@LOSSES.register("arcface")
class ArcFaceLoss(_MarginSoftmax):
    """ArcFace: ``MODEL.LOSSES.ARCFACE.SCALE`` s and ``.MARGIN`` m (radians)."""

    name, section = "arcface", "ARCFACE"
    margin_logits = staticmethod(arcface_logits)
