"""``make demo`` reruns: a finished run of the same config is reused, not retrained or replaced;
one whose schedule grew is resumed; a finished run of another config is refused before
anything is evaluated or trained."""

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
RUNS = [("resnet18", "configs/demo/baseline.yml")]


def test_demo_rerun_reuses_and_a_changed_config_is_refused_first(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "demo")
    opts = TINY_RUN + SMALL_SYNTHETIC + ["DATASETS.ROOT", str(tmp_path / "data")]
    demo.run_demo(out, RUNS, opts, progress=False)
    run_folder.release_lock(os.path.join(out, "resnet18"))
    final = os.path.join(out, "resnet18", "model_final.pth")
    stamp = os.stat(final).st_mtime_ns
    calls = []
    real_test, real_train = runner.test, runner.train

    def counting_test(*a, **k):
        calls.append("test")
        return real_test(*a, **k)

    def no_training(*a, **k):
        raise AssertionError("a finished run of the same config was trained again")

    monkeypatch.setattr(runner, "test", counting_test)
    monkeypatch.setattr(runner, "train", no_training)
    capsys.readouterr()
    demo.run_demo(out, RUNS, opts, progress=False)
    assert "resnet18: reused" in capsys.readouterr().out
    assert os.stat(final).st_mtime_ns == stamp and calls == ["test"]  # the untrained twin
    with pytest.raises(ConfigError, match="finished run of another config.*SOLVER.WEIGHT_DECAY"):
        demo.run_demo(out, RUNS, opts + ["SOLVER.WEIGHT_DECAY", "0.001"], progress=False)
    assert calls == ["test"]  # refused before the untrained twin was evaluated again
    # one more epoch: the finished run is continued from its checkpoint, as --resume does
    monkeypatch.setattr(runner, "train", real_train)
    demo.run_demo(out, RUNS, opts + ["SOLVER.MAX_EPOCHS", "3"], progress=False)
    run_folder.release_lock(os.path.join(out, "resnet18"))
    assert "resnet18: trained in" in capsys.readouterr().out
    assert os.path.isfile(os.path.join(out, "resnet18", "checkpoint_0003.pth"))
    assert os.stat(final).st_mtime_ns != stamp
