"""Shared behaviour of every meta-architecture: the loss dictionary and its weights."""

from __future__ import annotations

from typing import Dict, Mapping

import torch
from torch import nn

from ..output import ModelOutput


#: a meta-architecture's named loss modules, and the weight of each
Losses = Mapping[str, nn.Module]
Weights = Mapping[str, float]


class ReIDMetaArch(nn.Module):
    """Subclasses implement ``forward``: eval -> (B, D) features; train -> :class:`ModelOutput`.

    ``losses`` is an ``nn.ModuleDict`` of callables ``loss(output, targets)``; ``loss_weights``
    scales each. ``compute_losses`` returns the weighted terms by name (their sum is trained).
    """

    #: How result tables name a model of this meta-architecture (``{backbone}``: its backbone).
    display_name = "{backbone}"
    #: Why it cannot carry PTL's side network ("" if it can, or ignores the switch).
    plain_only = ""

    def __init__(self, losses: Losses, loss_weights: Weights) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        self.loss_weights = dict(loss_weights)

    def compute_losses(self, output: ModelOutput, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {
            name: self.loss_weights.get(name, 1.0) * loss(output, targets)
            for name, loss in self.losses.items()
        }
