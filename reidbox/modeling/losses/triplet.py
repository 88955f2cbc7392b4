"""Batch-hard triplet loss (Hermans et al. 2017)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES
from ..output import ModelOutput


def batch_hard_triplet(
    features: torch.Tensor, targets: torch.Tensor, margin: float = 0.3, soft_margin: bool = False
) -> torch.Tensor:
    """For each anchor: hardest positive (farthest) and hardest negative (closest), Euclidean.

    features: (B, D); targets: (B,). Anchors with no positive or no negative are skipped.
    """
    dist = torch.cdist(features, features).clamp_min(1e-12)  # (B, B)
    same = targets[:, None] == targets[None, :]
    eye = torch.eye(len(targets), dtype=torch.bool, device=features.device)
    pos_mask, neg_mask = same & ~eye, ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not valid.any():
        return features.sum() * 0.0
    d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(1)[valid]
    d_an = dist.masked_fill(~neg_mask, float("inf")).amin(1)[valid]
    if soft_margin:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


@LOSSES.register("triplet")
class TripletLoss(nn.Module):
    """Batch-hard triplet on ``extras['triplet_features']`` (a list) or else on ``features``."""

    def __init__(self, margin: float = 0.3, soft_margin: bool = False) -> None:
        super().__init__()
        self.margin, self.soft_margin = margin, soft_margin

    @classmethod
    def from_config(cls, cfg: Any) -> TripletLoss:
        t = cfg.MODEL.LOSSES.TRIPLET
        return cls(margin=t.MARGIN, soft_margin=t.SOFT_MARGIN)

    @staticmethod
    def config_weight(cfg: Any) -> float:
        return cfg.MODEL.LOSSES.TRIPLET.WEIGHT

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        feats = output.extras.get("triplet_features", [output.features])
        losses = [batch_hard_triplet(f, targets, self.margin, self.soft_margin) for f in feats]
        return torch.stack(losses).mean()
