"""The ``StagedBackbone`` contract: a stem, then ordered stages with measured specs.

Anything that wraps a backbone (PTL cells, MGN branches, feature taps) reads ``stage_specs``
instead of hard-coding channel counts or strides; the specs are measured by a dummy forward,
so they can never disagree with what the network actually does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ...errors import InputError, UserError
from ...utils.misc import eval_mode


@dataclass(frozen=True)
class StageSpec:
    """Output of one stage: its name, channel count and total stride w.r.t. the input image."""

    name: str
    channels: int
    stride: int


class StagedBackbone(nn.Module):
    """``stem`` followed by named ``stages``; ``forward`` returns the last stage's map.

    ``forward_stages(x)`` returns every stage's output ``[(B, C_i, H/s_i, W/s_i), ...]``.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: Sequence[Tuple[str, nn.Module]],
        probe_size: Tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        self.stem = stem
        self.stage_names = [name for name, _ in stages]
        self.stages = nn.ModuleList([m for _, m in stages])
        self.stem_spec, self.stage_specs = self._measure(probe_size)

    @torch.no_grad()
    def _measure(self, probe_size: Tuple[int, int]) -> Tuple[StageSpec, List[StageSpec]]:
        with eval_mode(self):
            h = self.stem(torch.zeros(1, 3, *probe_size))
            stem = StageSpec("stem", h.shape[1], probe_size[0] // h.shape[2])
            specs = []
            for name, stage in zip(self.stage_names, self.stages):
                h = stage(h)
                specs.append(StageSpec(name, h.shape[1], probe_size[0] // h.shape[2]))
        return stem, specs

    @property
    def out_channels(self) -> int:
        return self.stage_specs[-1].channels

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Every stage's output, in order."""
        return self.forward_taps(x)[1:]

    def forward_taps(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The stem's output followed by every stage's output (what side branches tap)."""
        h = self.stem(x)
        outs = [h]
        for stage in self.stages:
            h = stage(h)
            outs.append(h)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, C, h, w)
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
        return h


def check_last_stride(last_stride: int, backbone: str) -> int:
    """``MODEL.BACKBONE.LAST_STRIDE`` is 1 or 2 for every backbone; anything else is an error."""
    if last_stride not in (1, 2):
        raise InputError(
            f"{backbone}: last stride must be 1 or 2, got {last_stride!r} "
            "(MODEL.BACKBONE.LAST_STRIDE)"
        )
    return last_stride


def set_transition_stride(transition: nn.Module, last_stride: int, backbone: str) -> None:
    """DenseNet last stride: 1 replaces the last transition's 2x2 average pooling by an
    identity (its 1x1 conv stays), 2 keeps the published network."""
    if check_last_stride(last_stride, backbone) == 1:
        transition.pool = nn.Identity()


def set_stage_stride(layer: nn.Sequential, stride: int) -> None:
    """Make a ResNet stage downsample by ``stride`` (its first block's strided conv + shortcut):
    the last-stride option, and MGN's stride-1 part branches."""
    block = layer[0]
    conv = block.conv2 if hasattr(block, "conv3") else block.conv1  # bottleneck vs basic
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


class WeightsNotFoundError(UserError, FileNotFoundError):
    """The ImageNet weight file is not on disk; the message says which file and where."""


def _torch_home_checkpoint(url: str) -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def _torch_home() -> str:
    """``$TORCH_HOME`` as torch resolves it (``torch.hub.get_dir()`` is ``$TORCH_HOME/hub``)."""
    return os.path.dirname(torch.hub.get_dir())


_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def imagenet_weights_path(
    url: str, weights_path: Optional[str] = None, cache_path: Optional[str] = None
) -> str:
    """The local file to read: ``weights_path``, else ``cache_path`` (where the library that
    publishes the file caches it), else torchvision's cache file for ``url``."""
    return weights_path or cache_path or _torch_home_checkpoint(url)


def torch_home_file(*parts: str) -> str:
    """``$TORCH_HOME/<parts>`` (torchreid caches its ImageNet files in ``checkpoints/``)."""
    return os.path.join(_torch_home(), *parts)


def load_imagenet_state(
    url: str, weights_path: Optional[str] = None, cache_path: Optional[str] = None
) -> dict:
    """Read an ImageNet state dict from a local file, never from the network.

    ``weights_path`` wins; otherwise ``cache_path``, by default torchvision's own cache file
    ``$TORCH_HOME/hub/checkpoints/<file>`` (``TORCH_HOME`` defaults to ``~/.cache/torch``).
    """
    from ...utils.checkpoint import CheckpointError, load_file, model_state_from

    path = imagenet_weights_path(url, weights_path, cache_path)
    if not os.path.isfile(path):
        cache = cache_path or _torch_home_checkpoint(url)
        raise WeightsNotFoundError(
            f"ImageNet weights not found at {path}. Download {url} on a machine with internet "
            f"access and put it at {cache} (TORCH_HOME={_torch_home()}), "
            "or set MODEL.BACKBONE.WEIGHTS to its path, or set MODEL.BACKBONE.PRETRAINED False."
        )
    try:
        state = model_state_from(load_file(path))
    except CheckpointError as e:  # any unreadable file gets the same clear message
        raise WeightsNotFoundError(f"cannot read ImageNet weights {path}: {e}") from None
    # Old DenseNet checkpoints name keys 'norm.1.weight'; the current modules use 'norm1.weight'.
    fixed = {}
    for k, v in state.items():
        m = _DENSENET_OLD_KEY.match(k)
        fixed[m.group(1) + m.group(2) if m else k] = v
    return fixed


def load_imagenet_into(
    net: nn.Module,
    arch: str,
    url: str,
    weights_path: Optional[str] = None,
    cache_path: Optional[str] = None,
) -> None:
    """Load the ImageNet file of ``arch`` (see :func:`load_imagenet_state`) into ``net``; its
    ImageNet classifier (``fc`` / ``classifier``) is never used and skipped whatever its shape.
    A file that does not fit raises ``WeightsMismatchError`` naming the file and ``arch``."""
    from ...utils.checkpoint import is_classifier_key, load_state_into

    path = imagenet_weights_path(url, weights_path, cache_path)
    state = load_imagenet_state(url, weights_path, cache_path)
    load_state_into(
        net,
        {k: v for k, v in state.items() if not is_classifier_key(k)},
        path,
        what=f"{arch} ImageNet weights",
        skip_classifier=True,
        partial_key=None,
    )
