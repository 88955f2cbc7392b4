"""Global pooling layers: average, max and generalised-mean (GeM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        raise KeyError(f"unknown pooling {name!r}; available: {', '.join(sorted(pools))}")
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
    """pool -> (optional linear embedding) -> BN neck -> linear or cosine classifier.

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
    ) -> None:
        super().__init__()
        self.pool = build_pooling(pooling)
        dim = in_channels
        self.embed = nn.Identity()
        if embed_dim > 0:
            self.embed = nn.Sequential(
                nn.Linear(in_channels, embed_dim), nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True)
            )
            dim = embed_dim
        if neck not in ("bnneck", "none"):
            raise KeyError(f"unknown neck {neck!r}; available: bnneck, none")
        if test_feature not in ("after_neck", "before_neck"):
            raise KeyError(
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

    def forward(self, fmap: torch.Tensor):
        feat = self.embed(self.pool(fmap).flatten(1))  # (B, D)
        normed = self.neck(feat)
        if not self.training:
            return normed if self.test_feature == "after_neck" else feat
        return feat, self.classifier(normed)
