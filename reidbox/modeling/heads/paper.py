"""The PTL paper's head (Fig. 2): pool -> 1x1 conv + BN + ReLU -> feature; three FC layers
classify in training.

It is PTL's head in the paper, but nothing in it needs the cells: a plain model can use it
(``MODEL.HEADS.NAME paper``), which is how "the paper head without cells" is measured.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .pooling import build_pooling


class MLPClassifier(nn.Sequential):
    """Fully connected layers D -> hidden... -> N (BN + ReLU between); (B, D) -> (B, N)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], num_classes: int) -> None:
        layers: List[nn.Module] = []
        dim = in_dim
        for h in hidden:
            layers += [nn.Linear(dim, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            dim = h
        layers.append(nn.Linear(dim, num_classes))
        super().__init__(*layers)


class PaperHead(nn.Module):
    """(B, C, h, w) [+ pooled side input (B, c)] -> pool -> concat -> 1x1 conv + BN + ReLU.

    Eval: the feature (B, D); train: (feature, logits (B, N)) from the MLP classifier.
    ``feat_dim`` 0: the backbone's width C (the twins' features are equally wide).
    ``side_channels``: width c of a side network's pooled output joined after the pooling
    (0: none).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pooling: str = "avg",
        feat_dim: int = 512,
        classifier_hidden: Sequence[int] = (1024, 512),
        side_channels: int = 0,
    ) -> None:
        super().__init__()
        self.pool = build_pooling(pooling)
        in_dim = in_channels + side_channels
        feat_dim = feat_dim or in_channels  # the backbone's width, with or without a side input
        self.reduction = nn.Sequential(
            nn.Conv2d(in_dim, feat_dim, 1, bias=False),
            nn.BatchNorm2d(feat_dim),
            nn.ReLU(inplace=True),
        )
        self.classifier = MLPClassifier(feat_dim, classifier_hidden, num_classes)
        self.in_channels = in_channels
        self.side_channels = side_channels
        self.out_dim = feat_dim

    def join_keys(self) -> Dict[str, Tuple[int, float]]:
        """The tensors that read the joined input: key -> (its input dim, fill of the side part)."""
        return {"reduction.0.weight": (1, 0.0)} if self.side_channels else {}

    def forward(self, fmap: torch.Tensor, side: Optional[torch.Tensor] = None):
        pooled = self.pool(fmap)  # (B, C, 1, 1)
        if side is not None:
            pooled = torch.cat([pooled, side[:, :, None, None]], dim=1)  # (B, C + c, 1, 1)
        feat = self.reduction(pooled).flatten(1)  # (B, D)
        if not self.training:
            return feat
        return feat, self.classifier(feat)
