"""Batch-related convolutional cells (BConv-Cell, Eq. 1; BConv-Cell-v2, journal version).

The cells are stateless modules: ``forward(x, state) -> (y, new_state)``. Whoever calls them
(the PTL wrapper) decides where the latent state comes from (zeros, noise, the previous batch)
and where the new one goes; this keeps the state out of ``state_dict`` and out of DDP.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import nn
from ...errors import InputError, UnknownNameError


def cell_geometry(stride: int) -> Tuple[int, int]:
    """(kernel_size, padding) so that a conv of this ``stride`` maps H to ceil(H / stride).

    3x3 for strides 1 and 2; ``2 * stride - 1`` for larger strides so no input pixel is skipped
    (stride 4 -> 7x7, padding 3, as a ResNet stem sees the image).
    """
    if stride < 1:
        raise InputError(f"cell stride must be >= 1, got {stride}")
    k = max(3, 2 * stride - 1)
    return k, (k - 1) // 2


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class BConvCell(nn.Module):
    """BConv-Cell, Eq. 1 of the paper (a ConvLSTM without recurrent hidden input)::

        i, f, o = sigmoid(W_xi * x_b + b_i), sigmoid(W_xf * x_b + b_f), sigmoid(W_xo * x_b + b_o)
        C_b     = f o C_{b-1} + i o tanh(W_xc * x_b + b_c)
        y_b     = o o tanh(C_b)

    One convolution ``gates`` produces the four pre-activations, channel blocks in the order
    input, forget, output, cell. ``x``: (B, in, H, W); ``y`` and ``C``: (B, out, H', W') with
    H' = (H + 2p - k) // s + 1. ``state=None`` means C_{b-1} = 0.
    """

    gate_inputs = 1  # the gates see x_b (v2: x_b and the recovered input)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise InputError(
                f"{type(self).__name__} channels must be positive, got in={in_channels}, "
                f"out={out_channels}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.gates = nn.Conv2d(
            self.gate_inputs * in_channels,
            4 * out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            bias=bias,
        )

    def state_size(self, x: torch.Tensor) -> Tuple[int, int, int, int]:
        """Shape (B, out, H', W') of the latent state for input ``x``."""
        h = _out_size(x.shape[-2], self.kernel_size, self.stride, self.padding)
        w = _out_size(x.shape[-1], self.kernel_size, self.stride, self.padding)
        return x.shape[0], self.out_channels, h, w

    def zero_state(self, x: torch.Tensor) -> torch.Tensor:
        """C = 0 for input ``x``: (B, out, H', W')."""
        return x.new_zeros(self.state_size(x))

    @staticmethod
    def _step(
        pre: torch.Tensor, c_prev: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gate pre-activations (B, 4*out, H', W') and C_{b-1} -> (y_b, C_b, forget gate)."""
        i, f, o, g = pre.chunk(4, dim=1)
        f = torch.sigmoid(f)
        c = f * c_prev + torch.sigmoid(i) * torch.tanh(g)
        y = torch.sigmoid(o) * torch.tanh(c)
        return y, c, f

    def forward(
        self, x: torch.Tensor, state: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, in, H, W), C_{b-1} (B, out, H', W') or None -> (y_b, C_b), both (B, out, H', W')."""
        pre = self.gates(x)
        c_prev = (
            pre.new_zeros(pre.shape[0], self.out_channels, *pre.shape[2:])
            if state is None
            else state
        )
        if c_prev.shape != (pre.shape[0], self.out_channels, *pre.shape[2:]):
            raise InputError(
                f"BConvCell state has shape {tuple(c_prev.shape)}, expected "
                f"{(pre.shape[0], self.out_channels, *pre.shape[2:])} for input "
                f"{tuple(x.shape)}"
            )
        y, c, _ = self._step(pre, c_prev)
        return y, c


class BConvCellV2(BConvCell):
    """BConv-Cell-v2 (journal version, Fig. 1 right): keeps the latent state C and a hidden H.

    Our precise reading of the figure (the text gives no equations)::

        x~_b = T * H_{b-1}                                  transposed conv, no bias: (B, in, H, W)
        i, f, o, g = split(W * concat(x_b, x~_b) + b)       one conv ``gates`` over 2*in channels
        C_b  = sigmoid(f) o C_{b-1} + sigmoid(i) o tanh(g)
        y_b  = sigmoid(o) o tanh(C_b)                        the cell's output (as in Eq. 1)
        H_b  = sigmoid(f) o H_{b-1} + (1 - sigmoid(f)) o y_b the aggregated hidden state

    ``T`` (``recover``) mirrors the gate conv's kernel, stride and padding, so it maps the hidden
    state back to exactly the input's spatial size. It has no bias, so with H = 0 the recovered
    input is 0 and the cell is Eq. 1 on ``concat(x, 0)``. H is a convex combination of outputs
    in (-1, 1), so it stays bounded however long it is carried. State: the pair (C, H).
    """

    gate_inputs = 2  # the gates see concat(x_b, x~_b)

    def __init__(self, in_channels: int, out_channels: int, **conv: Any) -> None:
        """``conv``: ``kernel_size``, ``stride``, ``padding``, ``bias`` as for
        :class:`BConvCell`; ``recover`` mirrors the gate conv's geometry."""
        super().__init__(in_channels, out_channels, **conv)
        self.recover = nn.ConvTranspose2d(
            out_channels,
            in_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            bias=False,
        )

    def zero_state(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(C, H) = (0, 0), each (B, out, H', W')."""
        size = self.state_size(x)
        return x.new_zeros(size), x.new_zeros(size)

    def forward(
        self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """(B, in, H, W), (C, H) or None -> (y_b, (C_b, H_b)), all (B, out, H', W')."""
        c_prev, h_prev = self.zero_state(x) if state is None else state
        expected = self.state_size(x)
        if tuple(c_prev.shape) != expected or tuple(h_prev.shape) != expected:
            raise InputError(
                f"BConvCellV2 state has shapes {tuple(c_prev.shape)}, "
                f"{tuple(h_prev.shape)}; expected {expected} for input "
                f"{tuple(x.shape)}"
            )
        recovered = self.recover(h_prev, output_size=list(x.shape[-2:]))  # (B, in, H, W)
        pre = self.gates(torch.cat([x, recovered], dim=1))
        y, c, f = self._step(pre, c_prev)
        h = f * h_prev + (1.0 - f) * y
        return y, (c, h)


CELLS = {"v1": BConvCell, "v2": BConvCellV2}
#: Initialisations of a cell's convolutions (``MODEL.PTL.CELL_INIT``).
CELL_INITS = ("kaiming_normal", "pytorch_default")


def init_cell(cell: BConvCell, mode: str = "kaiming_normal") -> BConvCell:
    """Initialise every convolution weight of ``cell`` in place and return it.

    ``kaiming_normal``: the paper's code (``nn.init.kaiming_normal_`` with its defaults: fan-in,
    gain sqrt(2), i.e. std sqrt(2 / fan_in), about 2.45x PyTorch's default), biases zero (the
    code's cells have no bias, so a zero bias starts from the same function). v2's transposed
    conv gets the same rule. ``pytorch_default``: leave PyTorch's own initialisation
    (Kaiming-uniform with a = sqrt(5), std 1 / sqrt(3 fan_in); bias uniform in +-1/sqrt(fan_in)).
    """
    if mode not in CELL_INITS:
        raise UnknownNameError(
            f"unknown BConv-Cell initialisation {mode!r} (MODEL.PTL.CELL_INIT); "
            f"available: {', '.join(CELL_INITS)}"
        )
    if mode == "kaiming_normal":
        for m in cell.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return cell


def build_cell(
    version: str, in_channels: int, out_channels: int, stride: int = 1, init: str = "kaiming_normal"
) -> BConvCell:
    """A cell of ``version`` ("v1" or "v2") whose output is ceil(H / stride) x ceil(W / stride),
    its convolutions initialised by ``init`` (see :func:`init_cell`)."""
    if version not in CELLS:
        raise UnknownNameError(
            f"unknown BConv-Cell version {version!r} (MODEL.PTL.CELL); "
            f"available: {', '.join(CELLS)}"
        )
    if init not in CELL_INITS:  # checked before building, so a typo costs nothing
        raise UnknownNameError(
            f"unknown BConv-Cell initialisation {init!r} (MODEL.PTL.CELL_INIT); "
            f"available: {', '.join(CELL_INITS)}"
        )
    k, p = cell_geometry(stride)
    cell = CELLS[version](in_channels, out_channels, kernel_size=k, stride=stride, padding=p)
    return init_cell(cell, init)
