import os

import numpy as np
import pytest
import torch
from PIL import Image

import reidbox
from reidbox.config import load_config
from reidbox.modeling import build_inference_model
from reidbox.evaluation import FeatureModel
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


def test_feature_extractor_refuses_untrained_and_empty_inputs(weights):
    cfg = load_config(None, OPTS)
    with pytest.raises(ValueError, match="needs trained weights.*allow_untrained=True"):
        reidbox.FeatureExtractor(cfg, device="cpu")  # random-weight features were returned
    fx = reidbox.FeatureExtractor(cfg, device="cpu", allow_untrained=True)
    assert fx(np.zeros((8, 4, 3), np.uint8)).shape == (512,)
    fx = reidbox.FeatureExtractor(cfg, weights, device="cpu")
    assert fx([]).shape == (0, 512)  # (0, D), stackable with other batches
    for empty in (np.zeros((0, 0, 3), np.uint8), Image.new("RGB", (0, 0))):
        with pytest.raises(ValueError, match="empty image") as e:
            fx([empty])
        assert "\n" not in str(e.value)


def test_weights_holding_nan_are_refused_naming_the_file(weights, tmp_path):
    from reidbox.utils.checkpoint import CheckpointError

    state = torch.load(weights)["model"]
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    bad = str(tmp_path / "diverged.pth")
    torch.save({"model": state}, bad)
    cfg = load_config(None, OPTS)
    with pytest.raises(CheckpointError) as e:
        reidbox.FeatureExtractor(cfg, bad, device="cpu")
    assert bad in str(e.value) and "NaN" in str(e.value) and key in str(e.value)


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "CMYK", "LA", "P"])
def test_images_of_every_mode_give_the_features_of_their_8bit_rgb(weights, tmp_path, mode):
    # 16-bit images read through Pillow's convert("RGB") clip to near-white: features of the
    # same picture at cosine 0.92-0.98 instead of 1
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (80, 40), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if mode == "I;16":
        img = Image.fromarray(grey.astype(np.uint16) * 257)
    elif mode == "I":
        img = Image.fromarray(grey.astype(np.int32) * 257)
    elif mode == "F":
        img = Image.fromarray(grey.astype(np.float32) / 255)
    elif mode == "CMYK":
        img = Image.fromarray(rgb).convert("CMYK")
    elif mode == "LA":
        img = Image.fromarray(grey).convert("LA")
    else:
        rgb = np.asarray(Image.fromarray(rgb).convert("P").convert("RGB"))
        img = Image.fromarray(rgb).convert("P")
    assert img.mode == mode
    path = str(tmp_path / ("x.tiff" if mode in ("I", "F", "CMYK") else "x.png"))
    img.save(path)
    assert Image.open(path).mode == mode
    fx = reidbox.FeatureExtractor(load_config(None, OPTS), weights, device="cpu")
    ref = fx(rgb)
    for got in (fx(path), fx(img)):
        assert torch.nn.functional.cosine_similarity(got, ref, dim=0) > 0.9999


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
    # the demo's PTL model: the BN-neck head's feature is the joined 512 + 128 vector
    assert meta["l2_normalised"] is True and "(B, 640)" in meta["output"]
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


@pytest.mark.parametrize(
    "fmt",
    ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)],  # onnx: 4 s more
)
def test_flip_at_test_features_agree_across_evaluation_export_and_api(market_root, tmp_path, fmt):
    # One FeatureModel: with TEST.FLIP_AUG on (as MGN's recipe), the exported graph and the
    # FeatureExtractor give the features test_net evaluates -- before, export never flipped.
    from reidbox.data.build import build_test_loader
    from reidbox.engine.tasks import build_task
    from reidbox.evaluation import EvalSettings
    from reidbox.evaluation.evaluator import evaluate_model
    from reidbox.export import read_metadata

    opts = ["TEST.FLIP_AUG", "True", "INPUT.SIZE_TEST", "[32, 16]", "DATALOADER.NUM_WORKERS", "0"]
    opts += ["DATASETS.TRAIN", "['market1501']", "DATASETS.TEST", "['market1501']"]
    cfg = load_config("configs/demo/baseline.yml", opts + ["DATASETS.ROOT", market_root])
    torch.manual_seed(0)
    weights = str(tmp_path / "model_final.pth")
    torch.save({"model": build_inference_model(cfg, None, "cpu").state_dict()}, weights)

    task = build_task(cfg)
    task.load_test()
    ts = task.test_sets[0]
    model = task.test_model(weights, torch.device("cpu"))
    settings = EvalSettings.from_config(cfg)
    assert settings.flip and settings.normalize
    _, feats = evaluate_model(
        model, ts.query, ts.gallery, lambda items: build_test_loader(cfg, items), "cpu", settings
    )
    images = torch.cat([b["images"] for b in build_test_loader(cfg, ts.query)])
    with torch.no_grad():
        unflipped = torch.nn.functional.normalize(model(images), dim=1)
    assert not torch.allclose(feats.query, unflipped, atol=1e-4)  # the flip changes features

    api = reidbox.FeatureExtractor(cfg, weights, device="cpu")
    assert torch.allclose(api([s.path for s in ts.query]), feats.query, atol=1e-5)

    exported = FeatureModel.from_config(build_inference_model(cfg, weights, "cpu"), cfg)
    out = export_model(exported, fmt, str(tmp_path / f"m.{fmt}"), (32, 16))
    assert read_metadata(out)["flip_averaged"] is True
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {"images": images.numpy()})[0])
    else:
        got = torch.jit.load(out)(images)
    assert torch.allclose(got, feats.query, atol=1e-5)


def test_feature_extractor_follows_norm_feat_unless_told(weights):
    raw = load_config(None, OPTS + ["TEST.NORM_FEAT", "False"])
    img = np.random.default_rng(1).integers(0, 255, (64, 32, 3), dtype=np.uint8)
    f_raw = reidbox.FeatureExtractor(raw, weights, device="cpu")(img)
    f_unit = reidbox.FeatureExtractor(raw, weights, device="cpu", normalize=True)(img)
    assert not torch.allclose(f_raw.norm(), torch.tensor(1.0), atol=1e-3)
    assert torch.allclose(f_unit, f_raw / f_raw.norm(), atol=1e-5)
