"""The strong baseline: backbone -> pooling -> BN neck -> classifier."""

from __future__ import annotations


import torch

from ...registry import META_ARCHS
from ..backbones import StagedBackbone
from ..heads import EmbeddingHead
from ..output import ModelOutput
from .base import Weights, Losses, ReIDMetaArch


@META_ARCHS.register("baseline")
class Baseline(ReIDMetaArch):
    def __init__(
        self, backbone: StagedBackbone, head: EmbeddingHead, losses: Losses, loss_weights: Weights
    ) -> None:
        super().__init__(losses, loss_weights)
        self.backbone = backbone
        self.head = head

    @classmethod
    def from_config(cls, cfg, num_classes: int, backbone: StagedBackbone, losses, loss_weights):
        h = cfg.MODEL.HEADS
        head = EmbeddingHead(
            backbone.out_channels,
            num_classes,
            h.POOLING,
            h.EMBED_DIM,
            h.NECK,
            h.TEST_FEATURE,
            h.CLS_LAYER,
        )
        return cls(backbone, head, losses, loss_weights)

    def forward(self, images: torch.Tensor):  # (B, 3, H, W)
        fmap = self.backbone(images)
        if not self.training:
            return self.head(fmap)  # (B, D)
        feat, logits = self.head(fmap)
        extras = {"cosine_logits": True} if self.head.cosine else {}
        return ModelOutput(features=feat, logits=logits, extras=extras)
