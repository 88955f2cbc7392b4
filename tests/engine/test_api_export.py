import os

import numpy as np
import pytest
import torch
from PIL import Image

import reidbox
from reidbox.config import load_config
from reidbox.modeling import build_inference_model
from reidbox.export import export_model

OPTS = ["MODEL.BACKBONE.NAME", "resnet18", "INPUT.SIZE_TEST", "[64, 32]", "DEVICE", "cpu"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    cfg = load_config(None, OPTS)
    model = build_inference_model(cfg, None, "cpu")
    path = str(tmp_path_factory.mktemp("w") / "model_final.pth")
    torch.save({"model": model.state_dict()}, path)
    return path


def test_feature_extractor_accepts_paths_arrays_and_pil(weights, tmp_path):
    cfg = load_config(None, OPTS)
    fx = reidbox.FeatureExtractor(cfg, weights, device="cpu", batch_size=2)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (80, 40, 3), dtype=np.uint8) for _ in range(3)]
    paths = []
    for i, a in enumerate(arrays):
        p = tmp_path / f"{i}.png"
        Image.fromarray(a).save(p)
        paths.append(str(p))
    f_paths = fx(paths)
    f_arrays = fx(arrays)
    f_pil = fx([Image.fromarray(a) for a in arrays])
    assert f_paths.shape == (3, 512)
    assert torch.allclose(f_paths.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(f_paths, f_arrays, atol=1e-5)
    assert torch.allclose(f_paths, f_pil, atol=1e-5)
    assert torch.allclose(fx(paths[1]), f_paths[1], atol=1e-5)  # a single image
    assert not torch.allclose(f_paths[0], f_paths[1])
    with pytest.raises(ValueError, match="HxWx3"):
        fx([np.zeros((4, 4), np.uint8)])


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_features_match_pytorch(weights, tmp_path, fmt):
    cfg = load_config(None, OPTS)
    model = build_inference_model(cfg, weights, "cpu")
    out = export_model(model, fmt, str(tmp_path / f"m.{fmt}"), input_size=(64, 32))
    x = torch.randn(3, 3, 64, 32)  # another batch size than the export example
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model(x), dim=1)
    if fmt == "torchscript":
        got = torch.jit.load(out)(x)
    else:
        ort = pytest.importorskip("onnxruntime")
        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
    assert os.path.getsize(out) > 1e6
    assert torch.allclose(got, ref, atol=1e-4)


def test_feature_extractor_array_dtypes(weights):
    """float arrays in [0, 1] are images (not black); other dtypes, ranges, shapes: one line."""
    cfg = load_config(None, OPTS)
    fx = reidbox.FeatureExtractor(cfg, weights, device="cpu", batch_size=4)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)
    ref = fx(a)
    for dt in (np.float32, np.float64, np.float16):
        got = fx(a.astype(dt) / dt(255))
        assert torch.allclose(got, ref, atol=1e-5), dt
    black = fx(np.zeros((80, 40, 3), np.uint8))
    assert not torch.allclose(ref, black, atol=1e-3)
    bad = [
        (a.astype(np.uint16) * 257, "dtype uint16"),
        (a.astype(np.int64), "dtype int64"),
        (a.astype(np.float32), r"\[0, 1\]"),  # 0-255 floats
        (np.full((8, 4, 3), np.nan, np.float32), r"\[0, 1\]"),
        (np.zeros((8, 4, 3, 1), np.uint8), "HxWx3"),
        (np.zeros((8, 4, 4), np.uint8), "HxWx3"),
    ]
    for x, msg in bad:
        with pytest.raises(ValueError, match=msg) as e:
            fx([a, x])
        assert "\n" not in str(e.value)
    with pytest.raises(TypeError, match="Tensor"):
        fx([torch.zeros(3, 8, 4)])


def test_classification_configs_are_refused_by_feature_extraction_and_export(tmp_path):
    # a classifier's output is class logits: extracting "features" from it gave a meaningless
    # (N, 1) output before, and export wrote a model with a 1-wide output
    import subprocess
    import sys

    from reidbox.config import ConfigError

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = load_config(os.path.join(root, "configs", "demo", "cifar.yml"))
    with pytest.raises(ConfigError, match="FeatureExtractor extracts ReID features.*TASK"):
        reidbox.FeatureExtractor(cfg)
    p = subprocess.run(
        [
            sys.executable,
            os.path.join(root, "tools", "export.py"),
            "--config-file",
            os.path.join(root, "configs", "demo", "cifar.yml"),
            "--allow-untrained",
            "--output",
            str(tmp_path / "m.onnx"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "error: tools/export.py extracts ReID features" in p.stderr
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_carries_its_preprocessing_and_warns_nothing(tmp_path, fmt, recwarn):
    # the PTL model (its shape checks are what the tracer warned about), random weights
    import warnings

    from reidbox.data.transforms import preprocessing
    from reidbox.export import read_metadata

    opts = ["INPUT.SIZE_TEST", "[32, 16]", "INPUT.PIXEL_MEAN", "[0.5, 0.4, 0.3]"]
    cfg = load_config("configs/demo/ptl.yml", opts)
    torch.manual_seed(0)
    model = build_inference_model(cfg, None, "cpu")
    out = str(tmp_path / f"m.{fmt}")
    warnings.simplefilter("always")
    export_model(model, fmt, out, (32, 16), preprocessing=preprocessing(cfg))
    assert not [str(w.message) for w in recwarn], "export warned"
    meta = read_metadata(out)
    assert meta["input_size_hw"] == [32, 16] and meta["color"] == "RGB"
    assert meta["pixel_mean"] == [0.5, 0.4, 0.3] and meta["pixel_std"] == [0.229, 0.224, 0.225]
    assert meta["l2_normalised"] is True and "(B, 512)" in meta["output"]
    x = torch.randn(3, 3, 32, 16)  # another batch size than the export example
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model(x), dim=1)
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        props = sess.get_modelmeta().custom_metadata_map
        assert props["reidbox.color"] == '"RGB"' and props["reidbox.input_size_hw"] == "[32, 16]"
        got = torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
    else:
        got = torch.jit.load(out)(x)
    assert torch.allclose(got, ref, atol=1e-4)
    assert torch.allclose(got.norm(dim=1), torch.ones(3), atol=1e-5)
