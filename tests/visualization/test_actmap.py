"""Activation maps (tools/visualize_actmap.py): the last stage's and PTL's side network's maps."""

import os

import cv2
import numpy as np
import pytest
import torch

from reidbox.commands.visualize_actmap import main as actmap
from reidbox.config import load_config
from reidbox.modeling import build_inference_model
from reidbox.visualization.actmap import activation_maps, overlay

SMALL = ["INPUT.SIZE_TEST", "[64, 32]", "DEVICE", "cpu"]


@pytest.mark.parametrize("config", ["configs/demo/ptl.yml", "configs/demo/baseline.yml"])
def test_maps_are_the_squared_channel_sums_of_the_drawn_layers(config):
    torch.manual_seed(0)
    model = build_inference_model(load_config(config, SMALL), None, "cpu")
    x = torch.randn(2, 3, 64, 32)
    maps = activation_maps(model, x)
    with torch.no_grad():
        taps = model.backbone.forward_taps(x)
        last = taps[-1]
    assert set(maps) == ({"last stage", "PTL side network"} if "ptl" in config else {"last stage"})
    want = torch.nn.functional.normalize(last.pow(2).sum(1).flatten(1), dim=1).view(2, 4, 2)
    np.testing.assert_allclose(maps["last stage"], want.numpy(), atol=1e-5)
    if "ptl" in config:
        with torch.no_grad():
            (y,) = model.ptl(x, taps[:-1])
        side = torch.nn.functional.normalize(y.pow(2).sum(1).flatten(1), dim=1)
        np.testing.assert_allclose(maps["PTL side network"].reshape(2, -1), side, atol=1e-5)
    assert not model.training


def test_overlay_puts_the_hot_end_where_the_map_peaks():
    img = np.full((64, 32, 3), 128, np.uint8)
    am = np.zeros((4, 2), np.float32)
    am[0, 0] = 1.0  # top-left cell hot
    out = overlay(img, am)
    assert out.shape == img.shape
    top, bottom = out[2, 2].astype(int), out[60, 30].astype(int)
    assert top[2] > top[0] and bottom[0] > bottom[2]  # BGR: red at the peak, blue far away


def test_tool_writes_one_readable_grid(market_root, tmp_path):
    query = os.path.join(market_root, "market1501", "Market-1501-v15.09.15", "query")
    out = tmp_path / "am"
    args = ["--config-file", "configs/demo/ptl.yml", *SMALL, "--images", query]
    actmap([*args, "--num-images", "3", "--output-dir", str(out), "--allow-untrained"])
    grid = cv2.imread(str(out / "actmap.png"))
    th, tw = 256, 128  # 64 x 32 tiles are scaled up to 256 px high
    assert grid.shape == (30 + 3 * (30 + th + 8), 3 * (tw + 6) - 6, 3)
    with pytest.raises(ValueError, match="MODEL.WEIGHTS"):
        actmap([*args, "--output-dir", str(out)])
