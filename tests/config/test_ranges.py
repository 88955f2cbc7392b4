"""Every numeric config key declares its valid range beside its default; load_config checks it."""

import glob
import os

import pytest
from yacs.config import CfgNode

from reidbox.config import ConfigError, get_cfg_defaults, load_config
from reidbox.config.defaults import RANGES
from reidbox.config.ranges import check_value, range_errors


def _flat(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, CfgNode):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _numeric(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, (list, tuple)) and v and all(_numeric(x) for x in v)


def test_every_numeric_key_has_a_range_and_every_range_a_key():
    keys = dict(_flat(get_cfg_defaults()))
    missing = [k for k, v in keys.items() if _numeric(v) and k not in RANGES]
    assert not missing, f"declare a range in defaults.RANGES for {missing}"
    assert not [k for k in RANGES if k not in keys]


def test_defaults_and_shipped_configs_are_in_range():
    assert range_errors(get_cfg_defaults()) == []
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    files = glob.glob(os.path.join(root, "configs", "**", "*.yml"), recursive=True)
    assert files
    for f in files:
        load_config(f)  # raises ConfigError when out of range


@pytest.mark.parametrize(
    "key,value,needle",
    [
        (
            "SOLVER.MAX_EPOCHS",
            "-1",
            "SOLVER.MAX_EPOCHS is -1; it must be in [1, inf) (e.g. SOLVER.MAX_EPOCHS 1)",
        ),
        ("DATALOADER.NUM_INSTANCES", "0", "DATALOADER.NUM_INSTANCES is 0"),
        ("INPUT.FLIP_PROB", "1.5", "e.g. INPUT.FLIP_PROB 1.0"),
        ("SOLVER.BASE_LR", "-0.1", "SOLVER.BASE_LR is -0.1; it must be in [0, inf)"),
        ("INPUT.SIZE_TRAIN", "[256]", "list of 2 values"),
        ("INPUT.SIZE_TEST", "[256, 0]", "INPUT.SIZE_TEST[1] is 0"),
        ("DATASETS.CUHK03.VARIANT", "detcted", "one of labeled, detected"),
        ("DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "1", "[2, inf)"),
    ],
)
def test_out_of_range_values_are_one_config_error(key, value, needle):
    with pytest.raises(ConfigError) as e:
        load_config(None, [key, value])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_range_spec_forms():
    assert check_value("K", 3, "[1, 3]") is None
    assert check_value("K", 3, "[1, 3)") is not None
    assert check_value("K", float("nan"), "[0, 1]") is not None
    assert check_value("K", [1, 2, 3], "each [1, inf)") is None
    assert "K[0]" in check_value("K", [0], "each [1, inf)")
    assert check_value("K", "b", "{a, b}") is None
