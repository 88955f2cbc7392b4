"""Global pooling layers: average, max and generalised-mean (GeM)."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from ...errors import UnknownNameError


class GeneralizedMeanPooling(nn.Module):
    """GeM (Radenovic et al.): (mean x^p)^(1/p) with a learnable p."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, 1, 1)
        return F.adaptive_avg_pool2d(x.clamp_min(self.eps).pow(self.p), 1).pow(1.0 / self.p)


def build_pooling(name: str) -> nn.Module:
    pools = {
        "avg": lambda: nn.AdaptiveAvgPool2d(1),
        "max": lambda: nn.AdaptiveMaxPool2d(1),
        "gem": GeneralizedMeanPooling,
    }
    if name not in pools:
        raise UnknownNameError(f"unknown pooling {name!r}; available: {', '.join(sorted(pools))}")
    return pools[name]()


class CosineClassifier(nn.Module):
    """Cosines between the unit feature and N unit class weights: (B, D) -> (B, N) in [-1, 1]
    (the classifier of the margin softmax losses, CosFace and ArcFace)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


class EmbeddingHead(nn.Module):
    """pool [-> concat a side network's pooled output] -> (optional linear embedding) -> BN
    neck -> linear or cosine classifier.

    Train: returns (feature before neck (B, D), logits (B, N)); eval: the chosen test feature.
    ``cosine`` tells whether the logits are cosines (``cls_layer "cosine"``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pooling: str = "avg",
        embed_dim: int = 0,
        neck: str = "bnneck",
        test_feature: str = "after_neck",
        cls_layer: str = "linear",
        side_channels: int = 0,
    ) -> None:
        super().__init__()
        self.pool = build_pooling(pooling)
        dim = in_channels + side_channels
        self.embed = nn.Identity()
        if embed_dim > 0:
            self.embed = nn.Sequential(
                nn.Linear(dim, embed_dim), nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True)
            )
            dim = embed_dim
        if neck not in ("bnneck", "none"):
            raise UnknownNameError(f"unknown neck {neck!r}; available: bnneck, none")
        if test_feature not in ("after_neck", "before_neck"):
            raise UnknownNameError(
                f"unknown test feature {test_feature!r}; available: after_neck, before_neck"
            )
        self.neck = nn.BatchNorm1d(dim) if neck == "bnneck" else nn.Identity()
        if neck == "bnneck":
            self.neck.bias.requires_grad_(False)  # BNNeck: no shift before the classifier
        if cls_layer not in ("linear", "cosine"):
            raise KeyError(f"unknown classifier {cls_layer!r}; available: linear, cosine")
        self.cosine = cls_layer == "cosine"
        if self.cosine:
            self.classifier = CosineClassifier(dim, num_classes)
        else:
            self.classifier = nn.Linear(dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.test_feature = test_feature
        self.out_dim = dim
        self.side_channels = side_channels

    def join_keys(self) -> Dict[str, Tuple[int, float]]:
        """The tensors that read the joined input: key -> (its input dim, fill of the side part).

        With an embedding only its linear layer; without one the joined vector is the feature,
        so the neck and the classifier read it too."""
        if not self.side_channels:
            return {}
        if isinstance(self.embed, nn.Sequential):
            return {"embed.0.weight": (1, 0.0)}
        keys = {"classifier.weight": (1, 0.0)}
        if isinstance(self.neck, nn.BatchNorm1d):
            keys.update(
                {
                    "neck.weight": (0, 1.0),
                    "neck.bias": (0, 0.0),
                    "neck.running_mean": (0, 0.0),
                    "neck.running_var": (0, 1.0),
                }
            )
        return keys

    def forward(self, fmap: torch.Tensor, side: Optional[torch.Tensor] = None):
        feat = self.pool(fmap).flatten(1)  # (B, C)
        if side is not None:
            feat = torch.cat([feat, side], dim=1)  # (B, C + c)
        feat = self.embed(feat)  # (B, D)
        normed = self.neck(feat)
        if not self.training:
            return normed if self.test_feature == "after_neck" else feat
        return feat, self.classifier(normed)
