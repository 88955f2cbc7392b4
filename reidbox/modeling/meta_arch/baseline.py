"""The ReID model: backbone [+ PTL side network] -> head -> classifier.

One class for plain models and their PTL twins. ``MODEL.PTL.ENABLED`` adds the side network
(BConv-Cells beside the stages and on the image, Fig. 2): its final cell's output is pooled
(``MODEL.PTL.CELL_POOLING``) and joined with the backbone's pooled output inside the head. The
twins have the same tensors under the same names except ``ptl.*`` and the head's layers that read
the joined vector (:meth:`Baseline.side_join`), so a plain checkpoint loads into its PTL twin.

``MODEL.HEADS.NAME`` chooses the head: ``embedding`` (pool -> optional embedding -> BN neck ->
linear classifier, the strong baseline) or ``paper`` (the PTL paper's 1x1 conv + BN + ReLU and
three FC layers, :class:`PaperHead`).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ...errors import UnknownNameError
from ...registry import META_ARCHS
from ..backbones import StagedBackbone
from ..heads import EmbeddingHead, PaperHead, build_pooling
from ..output import ModelOutput
from ..ptl import PTLBranch
from .base import Weights, Losses, ReIDMetaArch
from .ptl import SideNetworkMixin, PTLSettings, build_side_network

HEADS = ("embedding", "paper")


def build_head(
    cfg, in_channels: int, num_classes: int, side_channels: int = 0, name: Optional[str] = None
) -> nn.Module:
    """The head ``name`` (default ``MODEL.HEADS.NAME``) for a backbone of ``in_channels``."""
    h = cfg.MODEL.HEADS
    name = name or h.NAME
    if name == "paper":
        return PaperHead(
            in_channels,
            num_classes,
            h.POOLING,
            h.PAPER.FEAT_DIM,
            list(h.PAPER.CLASSIFIER_HIDDEN),
            side_channels=side_channels,
        )
    if name == "embedding":
        return EmbeddingHead(
            in_channels,
            num_classes,
            h.POOLING,
            h.EMBED_DIM,
            h.NECK,
            h.TEST_FEATURE,
            cls_layer=h.CLS_LAYER,
            side_channels=side_channels,
        )
    raise UnknownNameError(f"MODEL.HEADS.NAME {name!r} is not a head; allowed: {', '.join(HEADS)}")


@META_ARCHS.register("baseline")
class Baseline(SideNetworkMixin, ReIDMetaArch):
    """backbone [+ side network] -> head; eval: (B, D) feature; train: ModelOutput."""

    def __init__(
        self,
        backbone: StagedBackbone,
        head: nn.Module,
        losses: Losses,
        loss_weights: Weights,
        ptl: Optional[PTLBranch] = None,
        cell_pooling: str = "max",
    ) -> None:
        super().__init__(losses, loss_weights)
        self.backbone = backbone
        self.head = head
        self.ptl = ptl
        self.cell_pool = build_pooling(cell_pooling) if ptl is not None else None

    @classmethod
    def from_config(
        cls,
        cfg,
        num_classes: int,
        backbone: StagedBackbone,
        losses,
        loss_weights,
        head: Optional[str] = None,
    ):
        """``head``: the head to build (default ``MODEL.HEADS.NAME``)."""
        side = None
        if cfg.MODEL.PTL.ENABLED:
            taps = [backbone.stem_spec] + list(backbone.stage_specs[:-1])
            side = (
                PTLSettings.from_config(cfg),
                [(t.channels, t.stride) for t in taps],
                [backbone.stage_specs[-1].stride],
            )
        built = build_head(
            cfg, backbone.out_channels, num_classes, side[0].out_channels if side else 0, head
        )
        # The side network is built last, so everything a twin shares is initialised from the
        # same random stream up to the head's join.
        ptl = build_side_network(*side) if side is not None else None
        return cls(backbone, built, losses, loss_weights, ptl, cfg.MODEL.PTL.CELL_POOLING)

    def test_modules(self) -> List[nn.Module]:
        """The parts used at test time (everything but the classifier)."""
        mods = [self.backbone] + ([self.ptl] if self.ptl is not None else [])
        return mods + [m for n, m in self.head.named_children() if n != "classifier"]

    #: the former ``ptl`` meta-architecture's files name the paper head's layers without the
    #: ``head.`` prefix (:meth:`SideNetworkMixin.adapt_state` renames them)
    legacy_prefixes = {"reduction.": "head.reduction.", "classifier.": "head.classifier."}

    def side_join(self) -> Dict[str, Tuple[int, float]]:
        """State keys that read the joined (backbone + side) vector: key -> (dim, side fill)."""
        if self.ptl is None:
            return {}
        return {f"head.{k}": v for k, v in self.head.join_keys().items()}

    def forward(self, images: torch.Tensor):  # (B, 3, H, W)
        if self.ptl is None:
            fmap, side = self.backbone(images), None
        else:
            taps = self.backbone.forward_taps(images)
            fmap = taps.pop()  # (B, C, h, w): the backbone's output
            (y,) = self.ptl(images, taps)  # (B, c, h, w)
            self.ptl.check_size(y, fmap, "the backbone's output", images)
            side = self.cell_pool(y).flatten(1)  # (B, c)
        if not self.training:
            return self.head(fmap, side)  # (B, D)
        feat, logits = self.head(fmap, side)
        extras = {"cosine_logits": True} if getattr(self.head, "cosine", False) else {}
        return ModelOutput(features=feat, logits=logits, extras=extras)
