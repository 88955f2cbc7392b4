"""Cross-entropy with label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES
from ..output import ModelOutput


@LOSSES.register("cross_entropy")
class CrossEntropyLoss(nn.Module):
    """Mean cross-entropy over every classifier's logits; ``epsilon`` is the label smoothing."""

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        self.epsilon = epsilon

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        logits = output.logits if isinstance(output.logits, (list, tuple)) else [output.logits]
        losses = [F.cross_entropy(z, targets, label_smoothing=self.epsilon) for z in logits]
        return torch.stack(losses).mean()
