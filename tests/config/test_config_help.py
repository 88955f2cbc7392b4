"""Config help: "did you mean", other toolboxes' spellings, REIDBOX_DATASETS, ints for floats."""

import os
import subprocess
import sys

import pytest

from reidbox.config import ConfigError, load_config
from reidbox.config.aliases import ALIASES, all_keys
from reidbox.config.defaults import get_cfg_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "key,meant",
    [
        ("SOLVER.MAX_EPOCH", "SOLVER.MAX_EPOCHS"),  # fast-reid
        ("DATASETS.NAMES", "DATASETS.TRAIN"),  # fast-reid
        ("DATALOADER.NUM_INSTANCE", "DATALOADER.NUM_INSTANCES"),  # fast-reid
        ("MODEL.PRETRAIN_PATH", "MODEL.BACKBONE.WEIGHTS"),  # reid-strong-baseline
        ("train.max_epoch", "SOLVER.MAX_EPOCHS"),  # torchreid, lower case
        ("SOLVER.BASE_LRR", "SOLVER.BASE_LR"),  # a typo: difflib
        ("OUTPUTDIR", "OUTPUT_DIR"),
        ("SOLVER.EVAL_PERIOD", "TEST.EVAL_PERIOD"),  # right name, other group
    ],
)
def test_unknown_key_says_did_you_mean(key, meant):
    with pytest.raises(ConfigError, match=f"{key}; did you mean [^?]*{meant}"):
        load_config(None, [key, "1"])


def test_unknown_key_in_a_file_says_did_you_mean(tmp_path):
    f = tmp_path / "fastreid.yml"
    f.write_text("SOLVER:\n  MAX_EPOCH: 3\n")
    with pytest.raises(
        ConfigError, match="fastreid.yml: .*SOLVER.MAX_EPOCH; did you mean SOLVER.MAX_EPOCHS"
    ):
        load_config(str(f))


def test_group_key_lists_its_keys():
    with pytest.raises(ConfigError, match="TEST.RERANK is a group.*TEST.RERANK.ENABLED"):
        load_config(None, ["TEST.RERANK", "True"])


def test_every_alias_points_at_a_real_key():
    keys = set(all_keys(get_cfg_defaults()))
    for other, (ours, _) in ALIASES.items():
        assert ours in keys, (other, ours)
        assert other not in keys, f"{other} is a reidbox key, not another toolbox's"


def test_whole_number_for_a_float_key_on_the_command_line():
    cfg = load_config(
        None, ["SOLVER.WARMUP_EPOCHS", "0", "SOLVER.BASE_LR", "1", "SOLVER.MAX_EPOCHS", "3"]
    )
    assert cfg.SOLVER.WARMUP_EPOCHS == 0.0 and isinstance(cfg.SOLVER.WARMUP_EPOCHS, float)
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.MAX_EPOCHS, int)
    with pytest.raises(ConfigError, match="SOLVER.MAX_EPOCHS"):  # no float for an int key
        load_config(None, ["SOLVER.MAX_EPOCHS", "2.5"])


def test_datasets_env_var_sets_the_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDBOX_DATASETS", "/data/reid")
    assert load_config().DATASETS.ROOT == "/data/reid"
    assert load_config(None, ["DATASETS.ROOT", "mine"]).DATASETS.ROOT == "mine"
    f = tmp_path / "c.yml"
    f.write_text("DATASETS:\n  ROOT: here\n")
    assert load_config(str(f)).DATASETS.ROOT == "here"
    # paper CIFAR configs must not pin the root, or the variable would not reach them
    assert (
        load_config(os.path.join(ROOT, "configs/cifar10/densenet100.yml")).DATASETS.ROOT
        == "/data/reid"
    )
    monkeypatch.delenv("REIDBOX_DATASETS")
    assert load_config().DATASETS.ROOT == "datasets"


def test_train_net_names_the_fast_reid_key_in_one_line():
    p = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "SOLVER.MAX_EPOCH", "5"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert p.returncode == 2
    assert p.stderr.strip() == (
        "error: command line: Non-existent config key: SOLVER.MAX_EPOCH; "
        "did you mean SOLVER.MAX_EPOCHS?"
    )
