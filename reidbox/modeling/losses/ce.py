"""Cross-entropy with label smoothing."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES
from ..output import ModelOutput


def cross_entropy(output: ModelOutput, targets: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """Mean over every classifier (``output.logits`` (B, N) or a list of them) of the
    label-smoothed (``epsilon``) cross-entropy with ``targets`` (B,)."""
    logits = output.logits if isinstance(output.logits, (list, tuple)) else [output.logits]
    return torch.stack(
        [F.cross_entropy(z, targets, label_smoothing=epsilon) for z in logits]
    ).mean()


@LOSSES.register("cross_entropy")
class CrossEntropyLoss(nn.Module):
    """Mean cross-entropy over every classifier's logits; ``epsilon`` is the label smoothing."""

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        self.epsilon = epsilon

    @classmethod
    def from_config(cls, cfg: Any) -> CrossEntropyLoss:
        return cls(epsilon=cfg.MODEL.LOSSES.CE.EPSILON)

    @staticmethod
    def config_weight(cfg: Any) -> float:
        return cfg.MODEL.LOSSES.CE.WEIGHT

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        return cross_entropy(output, targets, self.epsilon)
