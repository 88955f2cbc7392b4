"""The PTL side network (Eq. 3, Fig. 2): BConv-Cells beside an unchanged backbone.

Given the backbone's tapped feature maps x^1..x^n (measured channels and strides), it builds::

    y^0 = cell_0(image)                                  stride s(x^1)
    z^i = fuse_i(concat(x^i, y^{i-1}))                   1x1 conv + BN + ReLU, at x^i's size
    y^i = cell_i(z^i)                                    stride s(x^{i+1}) / s(x^i)
    y^n_k = cell_n,k(z^n)  for each requested output     stride out_k / s(x^n)

so every cell output has exactly the size of the map it is concatenated with next. The module
owns the latent states of its cells (:class:`LatentStateStore`); whether they are read and
written is decided by its own ``training`` flag alone: in eval every cell gets zeros and nothing
is stored.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .cells import BConvCell, build_cell
from .state import LatentStateStore
from ...errors import InputError


def _relative_stride(cur: int, nxt: int, what: str) -> int:
    if nxt % cur or nxt < cur:
        raise InputError(
            f"PTL: {what}: stride {nxt} is not a multiple of the previous stride "
            f"{cur}; cells can only downsample by integer factors"
        )
    return nxt // cur


def derive_channels(
    tap_channels: Sequence[int],
    ratio: float = 0.5,
    max_channels: int = 512,
    last_cell_channels: int = 128,
) -> Tuple[List[int], List[int]]:
    """Default (cell_channels, fuse_channels) from the taps' measured channel counts.

    fuse_i = min(ratio * C(x^i), max); the cell after x^i = min(ratio * C(x^{i+1}), max); the
    image cell min(ratio * C(x^1), max); the final cell(s) ``last_cell_channels``. For ResNet-50
    this gives fuse 32/128/256/512 and cells 32/128/256/512/128, close to the paper's MGN+PTL
    code (fuse 64/128/256/512, cells 32/64/256/512/128).
    """

    def scaled(c: int) -> int:
        return max(1, min(int(round(ratio * c)), max_channels))

    fuse = [scaled(c) for c in tap_channels]
    cells = [scaled(tap_channels[0])] + [scaled(c) for c in tap_channels[1:]]
    cells.append(last_cell_channels)
    return cells, fuse


def _channel_plan(
    chans: Sequence[int],
    cell_channels: Optional[Sequence[int]],
    fuse_channels: Optional[Sequence[int]],
) -> Tuple[List[int], List[int]]:
    """The cells' and fusions' widths: as configured, else derived from the tapped stages;
    n tapped maps need n + 1 cell widths (the image cell too) and n fusion widths."""
    n = len(chans)
    d_cells, d_fuse = derive_channels(chans)
    cell_channels = list(cell_channels) if cell_channels else d_cells
    fuse_channels = list(fuse_channels) if fuse_channels else d_fuse
    if len(cell_channels) != n + 1 or len(fuse_channels) != n:
        raise InputError(
            f"PTL: this backbone has {n} tapped maps, so MODEL.PTL.CELL_CHANNELS needs {n + 1} "
            f"numbers and MODEL.PTL.FUSE_CHANNELS {n}; got {len(cell_channels)} and "
            f"{len(fuse_channels)} (leave them empty to derive them from the stage specs)"
        )
    return cell_channels, fuse_channels


class PTLBranch(nn.Module):
    """Cells and fuse layers beside a backbone; ``forward(image, taps) -> [y^n_k, ...]``.

    ``tap_specs``: (channels, stride) of each tapped map x^1..x^n in forward order.
    ``out_strides``: absolute stride of each final cell's output (one per consumer; PTL has
    one, MGN+PTL three). ``cell_channels``: n + 1 numbers (image cell, cells after x^1..x^{n-1},
    final cells); ``fuse_channels``: n numbers.
    """

    def __init__(
        self,
        tap_specs: Sequence[Tuple[int, int]],
        out_strides: Sequence[int],
        cell: str = "v1",
        cell_channels: Optional[Sequence[int]] = None,
        fuse_channels: Optional[Sequence[int]] = None,
        image_channels: int = 3,
        state: Optional[LatentStateStore] = None,
        cell_init: str = "kaiming_normal",
    ) -> None:
        super().__init__()
        if not tap_specs:
            raise InputError("PTL needs at least one tapped backbone stage")
        if not out_strides:
            raise InputError("PTL needs at least one output stride")
        n = len(tap_specs)
        chans = [c for c, _ in tap_specs]
        strides = [s for _, s in tap_specs]
        cell_channels, fuse_channels = _channel_plan(chans, cell_channels, fuse_channels)
        self.version = cell
        self.tap_specs = [tuple(t) for t in tap_specs]
        self.out_strides = list(out_strides)
        self.state = state if state is not None else LatentStateStore()
        self.cell_init = cell_init
        self.image_cell = build_cell(
            cell,
            image_channels,
            cell_channels[0],
            _relative_stride(1, strides[0], "first tapped stage"),
            init=cell_init,
        )
        self.fuses = nn.ModuleList()
        self.cells = nn.ModuleList()
        for i in range(n):
            self.fuses.append(
                nn.Sequential(
                    nn.Conv2d(chans[i] + cell_channels[i], fuse_channels[i], 1, bias=False),
                    nn.BatchNorm2d(fuse_channels[i]),
                    nn.ReLU(inplace=True),
                )
            )
            if i < n - 1:
                s = _relative_stride(strides[i], strides[i + 1], f"tap {i + 2}")
                self.cells.append(
                    build_cell(cell, fuse_channels[i], cell_channels[i + 1], s, init=cell_init)
                )
        self.out_cells = nn.ModuleList(
            build_cell(
                cell,
                fuse_channels[-1],
                cell_channels[-1],
                _relative_stride(strides[-1], s, f"output {k}"),
                init=cell_init,
            )
            for k, s in enumerate(self.out_strides)
        )
        self.out_channels = cell_channels[-1]

    def named_cells(self) -> List[Tuple[str, BConvCell]]:
        """Every cell with the key its latent state is stored under."""
        out = [("image_cell", self.image_cell)]
        out += [(f"cells.{i}", c) for i, c in enumerate(self.cells)]
        out += [(f"out_cells.{k}", c) for k, c in enumerate(self.out_cells)]
        return out

    def _run(self, name: str, cell: BConvCell, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            y, _ = cell(x, None)  # eval: zero state, nothing written
            return y
        y, new_state = cell(x, self.state.read(name, cell.zero_state(x)))
        self.state.write(name, new_state)
        return y

    def forward(self, image: torch.Tensor, taps: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """image (B, 3, H, W), taps [(B, C_i, H/s_i, W/s_i)] -> [(B, out, H/o_k, W/o_k)]."""
        if len(taps) != len(self.fuses):
            raise InputError(f"PTL expected {len(self.fuses)} tapped maps, got {len(taps)}")
        y = self._run("image_cell", self.image_cell, image)
        for i, (x, fuse) in enumerate(zip(taps, self.fuses)):
            self.check_size(y, x, f"tapped stage {i + 1}", image)
            z = fuse(torch.cat([x, y], dim=1))
            if i < len(self.cells):
                y = self._run(f"cells.{i}", self.cells[i], z)
        return [self._run(f"out_cells.{k}", c, z) for k, c in enumerate(self.out_cells)]

    def check_size(self, y: torch.Tensor, x: torch.Tensor, what: str, image: torch.Tensor) -> None:
        """A cell output must have the size of the map it is concatenated with."""
        if y.shape[-2:] != x.shape[-2:]:
            raise InputError(
                f"PTL: cell output {tuple(y.shape[-2:])} does not match {what} "
                f"{tuple(x.shape[-2:])} for input {tuple(image.shape[-2:])}; use an input height "
                f"and width divisible by the backbone's largest stride "
                f"({max(self.out_strides)})"
            )

    def reset_latent_state(self) -> None:
        """Zero every cell's latent state (the epoch hook calls this)."""
        self.state.reset()

    def state_info(self) -> Dict[str, str]:
        return {"cell": self.version, **self.state.info()}
