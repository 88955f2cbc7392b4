"""PTL / PTL-v2 over any :class:`StagedBackbone` (Fig. 2 of the paper).

Taps: the stem and every stage but the last; the cells' final output joins the last stage's.
No per-backbone code: channels and strides come from the backbone's measured stage specs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import nn

from ...registry import META_ARCHS
from ..backbones import StagedBackbone
from ..heads import build_pooling
from ..output import ModelOutput
from ..ptl import LatentStateStore, PTLBranch, derive_channels
from .base import Weights, Losses, ReIDMetaArch


@dataclass(frozen=True)
class PTLSettings:
    """What ``MODEL.PTL`` says about the side network, read once from the config (a plain
    value: the meta-architectures that add PTL take it, never the config itself)."""

    cell: str
    cell_init: str
    channel_ratio: float
    max_channels: int
    last_cell_channels: int
    cell_channels: Tuple[int, ...]
    fuse_channels: Tuple[int, ...]
    state_mode: str
    state_shape: str
    state_init: str

    @classmethod
    def from_config(cls, cfg: Any) -> PTLSettings:
        p = cfg.MODEL.PTL
        return cls(
            p.CELL,
            p.CELL_INIT,
            p.CHANNEL_RATIO,
            p.MAX_CHANNELS,
            p.LAST_CELL_CHANNELS,
            tuple(p.CELL_CHANNELS),
            tuple(p.FUSE_CHANNELS),
            p.STATE_MODE,
            p.STATE_SHAPE,
            p.STATE_INIT,
        )


def build_ptl_branch(
    settings: PTLSettings, tap_specs: Sequence[tuple], out_strides: Sequence[int]
) -> PTLBranch:
    """The side network of ``settings`` for these taps ((channels, stride) each)."""
    s = settings
    cells, fuse = derive_channels(
        [c for c, _ in tap_specs],
        ratio=s.channel_ratio,
        max_channels=s.max_channels,
        last_cell_channels=s.last_cell_channels,
    )
    state = LatentStateStore(s.state_mode, s.state_shape, s.state_init)
    return PTLBranch(
        tap_specs,
        out_strides,
        cell=s.cell,
        cell_channels=list(s.cell_channels) or cells,
        fuse_channels=list(s.fuse_channels) or fuse,
        state=state,
        cell_init=s.cell_init,
    )


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


class LatentStateMixin:
    """``reset_latent_state`` / ``ptl_state_info`` for meta-archs holding a ``ptl`` branch."""

    ptl: PTLBranch

    def reset_latent_state(self) -> None:
        """Zero every BConv-Cell state; the Trainer calls this at the start of each epoch."""
        self.ptl.reset_latent_state()

    def ptl_state_info(self) -> Dict[str, str]:
        """Cell version and state settings, recorded with every result."""
        return self.ptl.state_info()


@META_ARCHS.register("ptl")
class PTL(LatentStateMixin, ReIDMetaArch):
    """backbone + PTL side network -> concat -> pool -> 1x1 conv + BN + ReLU -> feature (B, D).

    Training adds a classifier of three fully connected layers on the feature.
    """

    display_name = "{backbone}+PTL"

    def __init__(
        self,
        backbone: StagedBackbone,
        ptl: PTLBranch,
        feat_dim: int,
        classifier_hidden: Sequence[int],
        num_classes: int,
        pooling: str,
        losses: Losses,
        loss_weights: Weights,
    ) -> None:
        super().__init__(losses, loss_weights)
        self.backbone = backbone
        self.ptl = ptl
        in_dim = backbone.out_channels + ptl.out_channels
        feat_dim = feat_dim or backbone.out_channels
        self.pool = build_pooling(pooling)
        self.reduction = nn.Sequential(
            nn.Conv2d(in_dim, feat_dim, 1, bias=False),
            nn.BatchNorm2d(feat_dim),
            nn.ReLU(inplace=True),
        )
        self.classifier = MLPClassifier(feat_dim, classifier_hidden, num_classes)
        self.feat_dim = feat_dim

    @classmethod
    def from_config(cls, cfg, num_classes: int, backbone: StagedBackbone, losses, loss_weights):
        taps = [backbone.stem_spec] + list(backbone.stage_specs[:-1])
        branch = build_ptl_branch(
            PTLSettings.from_config(cfg),
            [(t.channels, t.stride) for t in taps],
            [backbone.stage_specs[-1].stride],
        )
        p = cfg.MODEL.PTL
        return cls(
            backbone,
            branch,
            p.FEAT_DIM,
            list(p.CLASSIFIER_HIDDEN),
            num_classes,
            cfg.MODEL.HEADS.POOLING,
            losses,
            loss_weights,
        )

    def test_modules(self) -> List[nn.Module]:
        """The parts used at test time (everything but the classifier)."""
        return [self.backbone, self.ptl, self.pool, self.reduction]

    def forward(self, images: torch.Tensor):  # (B, 3, H, W)
        taps = self.backbone.forward_taps(images)
        last = taps.pop()  # (B, C, h, w): the backbone's output
        (y,) = self.ptl(images, taps)  # (B, c, h, w)
        self.ptl.check_size(y, last, "the backbone's output", images)
        pooled = torch.cat([self.pool(last), self.pool(y)], dim=1)  # (B, C + c, 1, 1)
        feat = self.reduction(pooled).flatten(1)  # (B, D)
        if not self.training:
            return feat
        return ModelOutput(features=feat, logits=self.classifier(feat))
