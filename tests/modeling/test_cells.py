"""BConv-Cell (Eq. 1) and BConv-Cell-v2 against hand computations from their own weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from reidbox.modeling.ptl import BConvCell, BConvCellV2, build_cell, cell_geometry


def _gate_preacts(weight, bias, x, stride, padding):
    """W * x + b computed as patches @ weights (no conv2d): (B, 4*out, H', W')."""
    b, _, h, w = x.shape
    k = weight.shape[-1]
    cols = F.unfold(x, k, padding=padding, stride=stride)  # (B, in*k*k, L)
    out = weight.flatten(1) @ cols + bias[None, :, None]  # (B, 4*out, L)
    ho = (h + 2 * padding - k) // stride + 1
    wo = (w + 2 * padding - k) // stride + 1
    return out.view(b, -1, ho, wo)


def _sig(t):
    return 1.0 / (1.0 + torch.exp(-t))


@pytest.mark.parametrize("stride", [1, 2])
@torch.no_grad()
def test_bconv_cell_matches_eq1_by_hand(stride):
    torch.manual_seed(0)
    cell = BConvCell(3, 5, kernel_size=3, stride=stride, padding=1).double()
    x = torch.randn(2, 3, 8, 6, dtype=torch.double)
    pre = _gate_preacts(cell.gates.weight, cell.gates.bias, x, stride, 1)
    c_prev = torch.randn(pre.shape[0], 5, *pre.shape[2:], dtype=torch.double)
    # Channel blocks in the documented order: input, forget, output, cell.
    i, f, o, g = pre[:, 0:5], pre[:, 5:10], pre[:, 10:15], pre[:, 15:20]
    c_hand = _sig(f) * c_prev + _sig(i) * torch.tanh(g)
    y_hand = _sig(o) * torch.tanh(c_hand)

    y, c = cell(x, c_prev)
    torch.testing.assert_close(c, c_hand)
    torch.testing.assert_close(y, y_hand)
    # One element fully by hand: a 3x3 window sum for the input gate at (0, 0, 1, 1).
    xp = F.pad(x, (1, 1, 1, 1))
    r, q = 1 * stride, 1 * stride
    window = xp[0, :, r : r + 3, q : q + 3]
    i_pre = (cell.gates.weight[0] * window).sum() + cell.gates.bias[0]
    assert math.isclose(float(i_pre), float(pre[0, 0, 1, 1]), rel_tol=1e-9)


def test_none_state_means_zeros_and_cell_is_stateless():
    torch.manual_seed(1)
    cell = BConvCell(4, 3)
    x = torch.randn(2, 4, 5, 5)
    y0, c0 = cell(x)
    y1, c1 = cell(x, torch.zeros(2, 3, 5, 5))
    torch.testing.assert_close(y0, y1)
    torch.testing.assert_close(c0, c1)
    y2, _ = cell(x)  # nothing was remembered by the cell itself
    torch.testing.assert_close(y0, y2)
    assert set(dict(cell.named_parameters())) == {"gates.weight", "gates.bias"}
    assert cell.gates.out_channels == 12


def test_state_changes_output_and_wrong_state_shape_is_rejected():
    torch.manual_seed(2)
    cell = BConvCell(4, 3)
    x = torch.randn(2, 4, 5, 5)
    y0, _ = cell(x)
    y1, _ = cell(x, torch.ones(2, 3, 5, 5))
    assert not torch.allclose(y0, y1)
    with pytest.raises(ValueError, match="state has shape"):
        cell(x, torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(16, 8), (15, 7)])
def test_cell_geometry_gives_ceil_division(stride, size):
    cell = build_cell("v1", 3, 2, stride)
    k, p = cell_geometry(stride)
    assert (cell.kernel_size, cell.padding) == (k, p)
    y, c = cell(torch.randn(1, 3, *size))
    assert y.shape[-2:] == (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    assert cell.state_size(torch.zeros(1, 3, *size)) == tuple(c.shape)


def test_unknown_cell_version_lists_choices():
    with pytest.raises(KeyError, match="v1, v2"):
        build_cell("v3", 3, 4)


@pytest.mark.parametrize("stride", [1, 2])
@torch.no_grad()
def test_bconv_cell_v2_equations_by_hand(stride):
    torch.manual_seed(3)
    cell = BConvCellV2(3, 4, kernel_size=3, stride=stride, padding=1).double()
    x = torch.randn(2, 3, 8, 6, dtype=torch.double)
    size = cell.state_size(x)
    c_prev = torch.randn(size, dtype=torch.double)
    h_prev = torch.tanh(torch.randn(size, dtype=torch.double))
    recovered = F.conv_transpose2d(
        h_prev,
        cell.recover.weight,
        stride=stride,
        padding=1,
        output_padding=(
            x.shape[2] - ((size[2] - 1) * stride - 2 + 3),
            x.shape[3] - ((size[3] - 1) * stride - 2 + 3),
        ),
    )
    assert recovered.shape == x.shape  # hidden state mapped back to the input's shape
    pre = _gate_preacts(cell.gates.weight, cell.gates.bias, torch.cat([x, recovered], 1), stride, 1)
    i, f, o, g = pre.chunk(4, 1)
    c_hand = _sig(f) * c_prev + _sig(i) * torch.tanh(g)
    y_hand = _sig(o) * torch.tanh(c_hand)
    h_hand = _sig(f) * h_prev + (1 - _sig(f)) * y_hand

    y, (c, h) = cell(x, (c_prev, h_prev))
    torch.testing.assert_close(y, y_hand)
    torch.testing.assert_close(c, c_hand)
    torch.testing.assert_close(h, h_hand)
    assert h.abs().max() < 1  # convex combination of outputs in (-1, 1)


def test_v2_with_zero_state_is_eq1_on_the_input_part_of_its_gates():
    torch.manual_seed(4)
    v2 = BConvCellV2(3, 4)
    v1 = BConvCell(3, 4)
    with torch.no_grad():
        v1.gates.weight.copy_(v2.gates.weight[:, :3])
        v1.gates.bias.copy_(v2.gates.bias)
    x = torch.randn(2, 3, 6, 6)
    y2, (c2, h2) = v2(x)
    y1, c1 = v1(x)
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(c2, c1)
    f = torch.sigmoid(v1.gates(x).chunk(4, 1)[1])
    torch.testing.assert_close(h2, (1 - f) * y1)
    assert v2.recover.bias is None


def test_cell_init_defaults_to_the_codes_kaiming_normal():
    """MODEL.PTL.CELL_INIT: the paper's code initialises its cells Kaiming-normal (fan-in, gain
    sqrt(2)); PyTorch's default is about sqrt(6) = 2.45x narrower. Biases start at zero (the
    code's cells have none)."""
    torch.manual_seed(0)
    for version in ("v1", "v2"):
        cell = build_cell(version, 64, 32, 1)  # default init
        w = cell.gates.weight
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        assert abs(w.std().item() / (2.0 / fan_in) ** 0.5 - 1) < 0.02
        assert torch.count_nonzero(cell.gates.bias) == 0
        torch.manual_seed(0)
        plain = build_cell(version, 64, 32, 1, init="pytorch_default")
        assert abs(plain.gates.weight.std().item() / (1.0 / (3 * fan_in)) ** 0.5 - 1) < 0.02
        assert torch.count_nonzero(plain.gates.bias) > 0
        assert 2.3 < w.std().item() / plain.gates.weight.std().item() < 2.6
    with pytest.raises(KeyError, match="pytorch_default"):
        build_cell("v1", 3, 4, init="xavier")


def test_cell_init_key_reaches_every_cell_of_a_model():
    from reidbox.config import load_config
    from reidbox.modeling import build_model

    for mode, ok in (
        ("kaiming_normal", lambda b: torch.count_nonzero(b) == 0),
        ("pytorch_default", lambda b: torch.count_nonzero(b) > 0),
    ):
        cfg = load_config(
            None,
            [
                "MODEL.META_ARCHITECTURE",
                "ptl",
                "MODEL.BACKBONE.NAME",
                "resnet18",
                "MODEL.PTL.CELL_INIT",
                mode,
            ],
        )
        model = build_model(cfg, num_classes=5)
        cells = [c for _, c in model.ptl.named_cells()]
        assert len(cells) == 5 and all(ok(c.gates.bias) for c in cells)
