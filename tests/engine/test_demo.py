"""``make demo`` reruns: a finished run of the same config is reused, not retrained or replaced;
one whose schedule grew is resumed; a finished run of another config is refused before
anything trains."""

import json
import os

import pytest

from reidbox.config import ConfigError
from reidbox.engine import demo, runner
from reidbox.utils import run_folder
from tests.conftest import TINY_RUN

SMALL_SYNTHETIC = [
    "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
    "6",
    "DATASETS.SYNTHETIC.NUM_TEST_IDS",
    "4",
    "DATASETS.SYNTHETIC.NUM_CAMERAS",
    "2",
    "DATASETS.SYNTHETIC.IMAGE_SIZE",
    "[32, 16]",
]
VARIANTS = ["resnet18: MODEL.PTL.ENABLED False", "resnet18+PTL: MODEL.PTL.ENABLED True"]


def _release(out):
    for v in ("resnet18", "resnet18_ptl"):
        run_folder.release_lock(os.path.join(out, v, "seed0"))


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
def test_demo_rerun_reuses_and_a_changed_config_is_refused_first(tmp_path, monkeypatch):
    out = str(tmp_path / "demo")
    opts = TINY_RUN + SMALL_SYNTHETIC + ["DATASETS.ROOT", str(tmp_path / "data")]
    first = demo.run_demo(out, [0], opts, progress=False, variants=VARIANTS)
    _release(out)
    assert [p["a"] + " - " + p["b"] for p in first["pairs"]][:1] == ["resnet18+PTL - resnet18"]
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["model"] == "resnet18+PTL"  # the main model's first seed
    final = os.path.join(out, "resnet18", "seed0", "model_final.pth")
    stamp = os.stat(final).st_mtime_ns
    real_train = runner.train

    def no_training(*a, **k):
        raise AssertionError("a finished run of the same config was trained again")

    monkeypatch.setattr(runner, "train", no_training)
    again = demo.run_demo(out, [0], opts, progress=False, variants=VARIANTS)
    assert again["per_seed"] == first["per_seed"] and os.stat(final).st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="finished run of another config.*SOLVER.WEIGHT_DECAY"):
        demo.run_demo(
            out, [0], opts + ["SOLVER.WEIGHT_DECAY", "0.001"], progress=False, variants=VARIANTS
        )
    # more epochs: the finished runs are continued from their checkpoints, as --resume does
    monkeypatch.setattr(runner, "train", real_train)
    demo.run_demo(out, [0], opts + ["SOLVER.MAX_EPOCHS", "3"], progress=False, variants=VARIANTS)
    _release(out)
    assert os.path.isfile(os.path.join(out, "resnet18", "seed0", "checkpoint_0003.pth"))
    assert os.stat(final).st_mtime_ns != stamp
