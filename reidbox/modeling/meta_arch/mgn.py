"""MGN (Wang et al. 2018) and MGN+PTL as the PTL paper's code wires it.

Built from a registered ResNet :class:`StagedBackbone` (stages ``layer1..layer4``): the stem,
``layer1``, ``layer2`` and ``layer3[0]`` are shared; each branch is a copy of ``layer3[1:]`` and
``layer4`` (global branch: ``layer4`` at stride 2; part branches: stride 1). Every branch is
max-pooled globally and (part branches) into horizontal stripes, each pooled map is reduced by a
1x1 conv + BN + ReLU to ``feat_dim`` and classified: 3 + 2 + 3 = 8 features and classifiers by
default. Cross-entropy on all 8, triplet on the 3 global features; the eval feature is their
concatenation (B, 8 * 256).

MGN+PTL (``MODEL.PTL.ENABLED``; ``mgn_ptl`` is a config alias of ``mgn`` with it): cells
beside the stem, ``layer1``, ``layer2`` and ``layer3[0]``, and one final cell per branch at that
branch's stride; a branch's cell output is pooled like the branch (max-pooled as the paper's
code does, ``MODEL.PTL.CELL_POOLING``) and concatenated with it before the reduction.
"""

from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import META_ARCHS
from ...utils.misc import eval_mode
from ..backbones import StagedBackbone
from ..backbones.staged import set_stage_stride
from ..output import ModelOutput
from ..ptl import PTLBranch
from .base import Weights, Losses, ReIDMetaArch
from .ptl import PTLSettings, SideNetworkMixin, build_side_network
from ...errors import InputError


def _split_resnet(backbone: StagedBackbone):
    """(trunk StagedBackbone ending at layer3[0], layer3[1:], layer4) or a clear error."""
    names = list(backbone.stage_names)
    if names[-2:] != ["layer3", "layer4"] or not isinstance(backbone.stages[-2], nn.Sequential):
        raise InputError(
            f"MGN needs a ResNet-style backbone whose last stages are layer3 and layer4 "
            f"(e.g. resnet50, resnet18); got stages {names}"
        )
    layer3, layer4 = backbone.stages[-2], backbone.stages[-1]
    if len(layer3) < 1 or not hasattr(layer4[0], "downsample"):
        raise InputError("MGN needs residual blocks in layer3/layer4 (torchvision ResNet)")
    early = [(n, m) for n, m in zip(names[:-2], backbone.stages[:-2])]
    trunk = StagedBackbone(backbone.stem, early + [("layer3_0", layer3[0])])
    return trunk, nn.Sequential(*list(layer3)[1:]), layer4


@META_ARCHS.register("mgn")
class MGN(SideNetworkMixin, ReIDMetaArch):
    """Multiple Granularity Network; optional ``ptl`` side network (MGN+PTL)."""

    display_name = "MGN"

    def __init__(
        self,
        backbone: StagedBackbone,
        num_classes: int,
        feat_dim: int = 256,
        parts: Sequence[int] = (2, 3),
        shared_reduction: bool = True,
        losses: Optional[Losses] = None,
        loss_weights: Optional[Weights] = None,
        ptl: Optional[PTLSettings] = None,
        cell_pooling: str = "max",
    ) -> None:
        super().__init__(losses or {}, loss_weights or {})
        if any(int(p) < 1 for p in parts):
            raise InputError(f"MODEL.MGN.PARTS must be positive stripe counts, got {list(parts)}")
        if cell_pooling not in ("avg", "max"):
            raise InputError(f"MODEL.PTL.CELL_POOLING {cell_pooling!r}: allowed avg, max")
        self.cell_pooling = cell_pooling
        trunk, layer3_rest, layer4 = _split_resnet(backbone)
        self.backbone = trunk  # stem, layer1, layer2, layer3[0]: shared by every branch
        self.parts = [1] + [int(p) for p in parts]  # stripes per branch; branch 0 is global
        branches = []
        for k in range(len(self.parts)):
            l4 = copy.deepcopy(layer4)
            set_stage_stride(l4, 2 if k == 0 else 1)
            branches.append(nn.Sequential(copy.deepcopy(layer3_rest), l4))
        self.branches = nn.ModuleList(branches)
        branch_channels, branch_strides = self._measure()
        self.branch_strides = branch_strides
        self.ptl: Optional[PTLBranch] = None
        if ptl is not None:
            taps = [trunk.stem_spec] + list(trunk.stage_specs)
            self.ptl = build_side_network(
                ptl, [(t.channels, t.stride) for t in taps], branch_strides
            )
        in_dim = branch_channels + (self.ptl.out_channels if self.ptl is not None else 0)
        n_feats = sum(1 + (p if p > 1 else 0) for p in self.parts)
        n_red = 1 if shared_reduction else n_feats
        self.reductions = nn.ModuleList(self._reduction(in_dim, feat_dim) for _ in range(n_red))
        self.classifiers = nn.ModuleList(nn.Linear(feat_dim, num_classes) for _ in range(n_feats))
        for fc in self.classifiers:
            nn.init.kaiming_normal_(fc.weight, mode="fan_in")
            nn.init.zeros_(fc.bias)
        self.feat_dim = feat_dim
        self.num_features = n_feats

    @staticmethod
    def _reduction(in_dim: int, feat_dim: int) -> nn.Sequential:
        red = nn.Sequential(
            nn.Conv2d(in_dim, feat_dim, 1, bias=False),
            nn.BatchNorm2d(feat_dim),
            nn.ReLU(inplace=True),
        )
        nn.init.kaiming_normal_(red[0].weight, mode="fan_in")
        nn.init.normal_(red[1].weight, mean=1.0, std=0.02)
        nn.init.zeros_(red[1].bias)
        return red

    @torch.no_grad()
    def _measure(self, probe: int = 64):
        """Channels and strides of every branch output, from a dummy forward (never assumed)."""
        with eval_mode(self.backbone, *self.branches):
            h = self.backbone(torch.zeros(1, 3, probe, probe))
            outs = [b(h) for b in self.branches]
        channels = {o.shape[1] for o in outs}
        if len(channels) != 1:
            raise InputError(f"MGN branches disagree on channels: {sorted(channels)}")
        return channels.pop(), [probe // o.shape[2] for o in outs]

    @classmethod
    def from_config(cls, cfg, num_classes: int, backbone: StagedBackbone, losses, loss_weights):
        m = cfg.MODEL.MGN
        return cls(
            backbone,
            num_classes,
            feat_dim=m.FEAT_DIM,
            parts=list(m.PARTS),
            shared_reduction=m.SHARED_REDUCTION,
            losses=losses,
            loss_weights=loss_weights,
            ptl=PTLSettings.from_config(cfg) if cfg.MODEL.PTL.ENABLED else None,
            cell_pooling=cfg.MODEL.PTL.CELL_POOLING,
        )

    def test_modules(self) -> List[nn.Module]:
        """The parts used at test time (everything but the classifiers)."""
        mods: List[nn.Module] = [self.backbone, self.branches, self.reductions]
        return mods + ([self.ptl] if self.ptl is not None else [])

    def side_join(self) -> Dict[str, Tuple[int, float]]:
        """The reductions read the joined (branch + cell) maps: their conv's input dim."""
        if self.ptl is None:
            return {}
        return {f"reductions.{i}.0.weight": (1, 0.0) for i in range(len(self.reductions))}

    @staticmethod
    def _pool(x: torch.Tensor, parts: int, how: str = "max") -> List[torch.Tensor]:
        """(B, C, h, w) -> [global (B, C, 1, 1)] + ``parts`` stripes (if > 1), pooled ``how``."""
        pool = F.adaptive_max_pool2d if how == "max" else F.adaptive_avg_pool2d
        pooled = [pool(x, 1)]
        if parts > 1:
            stripes = pool(x, (parts, 1))  # (B, C, parts, 1)
            pooled += [stripes[:, :, i : i + 1] for i in range(parts)]
        return pooled

    def forward(self, images: torch.Tensor):  # (B, 3, H, W)
        taps = self.backbone.forward_taps(images)
        maps = [b(taps[-1]) for b in self.branches]  # [(B, C, h_k, w_k)]
        cells = self.ptl(images, taps) if self.ptl is not None else [None] * len(maps)
        globals_, locals_ = [], []
        for x, y, parts in zip(maps, cells, self.parts):
            px = self._pool(x, parts)
            if y is not None:
                px = [
                    torch.cat([a, b], dim=1)
                    for a, b in zip(px, self._pool(y, parts, self.cell_pooling))
                ]
            globals_.append(px[0])
            locals_ += px[1:]
        pooled = globals_ + locals_  # order: 3 global, then the stripes branch by branch
        feats = [
            self.reductions[i % len(self.reductions)](p).flatten(1) for i, p in enumerate(pooled)
        ]  # each (B, feat_dim)
        feat = torch.cat(feats, dim=1)  # (B, n_feats * feat_dim)
        if not self.training:
            return feat
        logits = [fc(f) for fc, f in zip(self.classifiers, feats)]
        return ModelOutput(
            features=feat, logits=logits, extras={"triplet_features": feats[: len(self.parts)]}
        )
