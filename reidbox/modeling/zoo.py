"""The backbone zoo: every registered backbone (and timm examples) with its measured size,
multiply-adds, stages, the ImageNet file it looks for, and whether PTL applies.

What ``tools/model_info.py --list`` prints and docs/model_zoo.md's backbone table states
(tests/test_backbone_zoo.py checks the table against these measurements).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Tuple

import torch

from ..registry import BACKBONES
from .backbones import build_backbone, is_timm_name

#: timm models the zoo lists (any timm CNN works: ``timm:<name>``)
TIMM_EXAMPLES = ("timm:resnet18", "timm:convnext_atto", "timm:regnety_008")

#: the input size ReID configs use, at which multiply-adds are counted (CIFAR nets: 32 x 32)
REID_SIZE = (256, 128)
CIFAR_SIZE = (32, 32)


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    params_m: float  # parameters of the backbone, millions
    gmacs: float  # multiply-adds of one image at ``size``, billions
    size: Tuple[int, int]
    last_stride: int
    stages: str  # "channels/stride" of each stage
    weights: str  # the file it reads with MODEL.BACKBONE.PRETRAINED True (or why none)
    ptl: str


def default_last_stride(name: str) -> int:
    """1 (the ReID default), but 2 for OSNet (its published network already ends at 1/16),
    the CIFAR nets and architectures that cannot drop their last downsampling."""
    return 2 if name.endswith("_cifar") or "convnext" in name or name.startswith("osnet") else 1


def weights_file(name: str) -> str:
    """Where ``name``'s ImageNet file is looked for when MODEL.BACKBONE.WEIGHTS is empty."""
    from .backbones import ibn, osnet, torchvision_nets

    if name.endswith("_cifar"):
        return "none (trained from scratch on CIFAR)"
    if name in osnet.IMAGENET_URLS:
        return f"$TORCH_HOME/checkpoints/{name}_imagenet.pth"
    urls = {**ibn.IMAGENET_URLS, **{k: w.url for k, w in torchvision_nets._WEIGHTS.items()}}
    if name in urls:
        return f"$TORCH_HOME/hub/checkpoints/{os.path.basename(urls[name])}"
    if is_timm_name(name):
        from .backbones.timm_nets import timm_hub_id

        hub = timm_hub_id(name[len("timm:") :])
        return f"$HF_HOME/hub/models--{hub.replace('/', '--')}/" if hub else "timm's URL cache"
    return "declared by the plugin that registers it"


def backbone_names() -> List[str]:
    """Every registered backbone, then the timm examples."""
    return BACKBONES.names() + list(TIMM_EXAMPLES)


def backbone_info(name: str) -> BackboneInfo:
    """Measured on the meta device: shapes only, no memory, no arithmetic, no weight file."""
    from torch.utils.flop_counter import FlopCounterMode

    size = CIFAR_SIZE if name.endswith("_cifar") else REID_SIZE
    last_stride = default_last_stride(name)
    with torch.device("meta"):
        b = build_backbone(name, last_stride=last_stride).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            b(torch.empty(1, 3, *size))
    return BackboneInfo(
        name,
        sum(p.numel() for p in b.parameters()) / 1e6,
        counter.get_total_flops() / 2 / 1e9,
        size,
        last_stride,
        " ".join(f"{s.channels}/{s.stride}" for s in b.stage_specs),
        weights_file(name),
        "yes (any StagedBackbone)",
    )


def format_zoo(rows: List[BackboneInfo]) -> str:
    head = ("backbone", "params", "GMACs", "input", "last stride", "stages (ch/stride)", "weights")
    lines = [
        (
            r.name,
            f"{r.params_m:.2f}m",
            f"{r.gmacs:.2f}",
            f"{r.size[0]}x{r.size[1]}",
            str(r.last_stride),
            r.stages,
            r.weights,
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + lines]
    out.append(
        "PTL applies to every backbone above (MODEL.META_ARCHITECTURE ptl); any timm CNN: "
        "MODEL.BACKBONE.NAME timm:<model> (transformers are refused)"
    )
    return "\n".join(out)
