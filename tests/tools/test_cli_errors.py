"""Each bad input gives one clear message (no traceback) and a non-zero exit."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--no-progress", *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=ROOT,
        timeout=300,
    )


def _assert_clean_error(p, *needles):
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("error: ")
    for n in needles:
        assert n in p.stderr, p.stderr


@pytest.mark.slow  # a subprocess each; tests/tools/test_catalogue.py holds the fast kin
def test_bad_config_key(tmp_path):
    p = _run(["SOLVER.NOT_A_KEY", "1", "OUTPUT_DIR", str(tmp_path)])
    _assert_clean_error(p, "SOLVER.NOT_A_KEY")


@pytest.mark.slow  # a subprocess each; tests/tools/test_catalogue.py holds the fast kin
def test_bad_key_in_file(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("MODEL:\n  BACKBONE:\n    NAMEE: resnet18\n")
    p = _run(["--config-file", str(cfg)])
    _assert_clean_error(p, "MODEL.BACKBONE.NAMEE", "c.yml")


def test_missing_dataset_folder(tmp_path):
    p = _run(
        TINY_OPTS + ["DATASETS.ROOT", str(tmp_path / "nowhere"), "OUTPUT_DIR", str(tmp_path / "o")]
    )
    _assert_clean_error(p, str(tmp_path / "nowhere"), "bounding_box_train")


@pytest.mark.slow  # a subprocess each; tests/tools/test_catalogue.py holds the fast kin
def test_missing_pretrained_weights(market_root, tmp_path):
    p = _run(
        TINY_OPTS
        + [
            "DATASETS.ROOT",
            market_root,
            "OUTPUT_DIR",
            str(tmp_path / "o"),
            "MODEL.BACKBONE.PRETRAINED",
            "True",
        ],
        env={"TORCH_HOME": str(tmp_path / "th")},
    )
    _assert_clean_error(p, "resnet18-f37072fd.pth", str(tmp_path / "th"))


@pytest.mark.slow  # a subprocess each; tests/tools/test_catalogue.py holds the fast kin
def test_unknown_backbone(market_root, tmp_path):
    p = _run(TINY_OPTS + ["DATASETS.ROOT", market_root, "MODEL.BACKBONE.NAME", "resnet9000"])
    _assert_clean_error(p, "resnet9000", "available")


@pytest.mark.parametrize("workers", ["0", pytest.param("1", marks=pytest.mark.slow)])
def test_corrupt_image_names_the_file(market_root, tmp_path, workers):
    root = tmp_path / "ds"
    shutil.copytree(market_root, root)
    train = root / "market1501" / "Market-1501-v15.09.15" / "bounding_box_train"
    bad = sorted(train.iterdir())[0]
    bad.write_bytes(b"not a jpeg at all")
    p = _run(
        TINY_OPTS
        + [
            "DATASETS.ROOT",
            str(root),
            "OUTPUT_DIR",
            str(tmp_path / "o"),
            "DATALOADER.NUM_WORKERS",
            workers,
        ]
    )
    _assert_clean_error(p, bad.name)
