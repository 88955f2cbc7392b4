"""PTL's side network as a part of any ReID model (Fig. 2 of the paper).

Taps: the stem and every stage but the last (MGN: every shared stage); the cells' final output
joins the backbone's. No per-backbone code: channels and strides come from the backbone's
measured stage specs. The meta-architectures hold it as ``self.ptl`` when ``MODEL.PTL.ENABLED``
(:class:`SideNetworkMixin` gives them the latent-state calls and the twin rule for weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..ptl import LatentStateStore, PTLBranch, derive_channels


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

    @property
    def out_channels(self) -> int:
        """Width of each final cell's output (what joins the backbone's)."""
        return self.cell_channels[-1] if self.cell_channels else self.last_cell_channels


def build_side_network(
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


def refuse_side_network(cfg: Any, arch: str, instead: str) -> None:
    """One line for ``MODEL.PTL.ENABLED True`` on a meta-architecture without a side network."""
    if cfg.MODEL.PTL.ENABLED:
        from ...config import ConfigError

        raise ConfigError(
            f"MODEL.PTL.ENABLED True: meta-architecture {arch!r} cannot carry PTL's side "
            f"network ({instead}); set MODEL.PTL.ENABLED False"
        )


class SideNetworkMixin:
    """For meta-archs holding an optional side network ``ptl`` (None: the plain twin).

    ``side_join()`` (the meta-arch's) names the tensors that read the joined vector. A file of
    the plain twin loads into the PTL twin (:meth:`adapt_state`): those tensors get the file's
    values in their backbone part and a neutral side part (zero weights, identity BN), so the
    PTL twin starts as the plain model plus fresh cells whose output enters with weight zero.
    """

    ptl: Optional[PTLBranch]
    legacy_prefixes: Dict[str, str] = {}

    def side_join(self) -> Dict[str, Tuple[int, float]]:
        return {}

    def reset_latent_state(self) -> None:
        """Zero every BConv-Cell state; the Trainer calls this at the start of each epoch."""
        if self.ptl is not None:
            self.ptl.reset_latent_state()

    def ptl_state_info(self) -> Optional[Dict[str, str]]:
        """Cell version and state settings, recorded with every result (None: no cells)."""
        return self.ptl.state_info() if self.ptl is not None else None

    def adapt_state(
        self, state: Dict[str, torch.Tensor], twin: bool = False
    ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
        """``state`` as this model's tensors: legacy names renamed and, with ``twin`` (a run
        that starts training from the file), a plain twin's file in a PTL model widened at the
        join. Returns it and the keys left fresh on purpose (the side network's). Without
        ``twin`` a plain file stays what it is for a PTL model: not its weights (testing or
        distilling from it would use random cells)."""
        own = self.state_dict()  # type: ignore[attr-defined]
        state = dict(state)
        for old, new in self.legacy_prefixes.items():
            for k in [k for k in state if k.startswith(old) and k not in own]:
                if new + k[len(old) :] in own:
                    state[new + k[len(old) :]] = state.pop(k)
        if not twin or self.ptl is None or any(k.startswith("ptl.") for k in state):
            return state, []
        for key, (dim, fill) in self.side_join().items():
            if key not in state or key not in own:
                continue
            src, shape = state[key], own[key].shape
            same_elsewhere = src.dim() == len(shape) and all(
                a == b for i, (a, b) in enumerate(zip(src.shape, shape)) if i != dim
            )
            if same_elsewhere and src.shape[dim] < shape[dim]:
                wide = torch.full(tuple(shape), fill, dtype=src.dtype)
                wide.narrow(dim, 0, src.shape[dim]).copy_(src)
                state[key] = wide
        return state, [k for k in own if k.startswith("ptl.")]
