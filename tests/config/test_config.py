import os

import pytest
import yaml

from reidbox.config import ConfigError, load_config, save_config


def _write(path, data):
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return str(path)


def test_base_list_is_merged_in_order_then_file_then_opts(tmp_path):
    (tmp_path / "base").mkdir()
    a = _write(tmp_path / "base" / "a.yml", {"SOLVER": {"BASE_LR": 0.1, "MAX_EPOCHS": 7}})
    b = _write(tmp_path / "base" / "b.yml", {"SOLVER": {"BASE_LR": 0.2}, "SEED": 3})
    leaf = _write(
        tmp_path / "leaf.yml",
        {
            "_BASE_": ["base/a.yml", "base/b.yml"],
            "SEED": 5,
            "MODEL": {"BACKBONE": {"NAME": "resnet18"}},
        },
    )
    cfg = load_config(leaf, ["SOLVER.MAX_EPOCHS", "9"])
    assert cfg.SOLVER.BASE_LR == 0.2  # b after a
    assert cfg.SEED == 5  # the file after its bases
    assert cfg.SOLVER.MAX_EPOCHS == 9  # opts last
    assert cfg.MODEL.BACKBONE.NAME == "resnet18"
    assert cfg.is_frozen()
    assert os.path.isfile(a) and os.path.isfile(b)


def test_base_may_be_a_string_and_nested(tmp_path):
    _write(tmp_path / "root.yml", {"SEED": 1, "SOLVER": {"GAMMA": 0.5}})
    _write(tmp_path / "mid.yml", {"_BASE_": "root.yml", "SEED": 2})
    leaf = _write(tmp_path / "leaf.yml", {"_BASE_": ["mid.yml"]})
    cfg = load_config(leaf)
    assert cfg.SEED == 2 and cfg.SOLVER.GAMMA == 0.5


def test_unknown_key_names_key_and_file(tmp_path):
    leaf = _write(tmp_path / "bad.yml", {"SOLVER": {"BASE_LRR": 0.1}})
    with pytest.raises(ConfigError) as e:
        load_config(leaf)
    assert "SOLVER.BASE_LRR" in str(e.value) and "bad.yml" in str(e.value)


def test_unknown_key_in_a_base_names_the_base(tmp_path):
    _write(tmp_path / "base.yml", {"MODEL": {"NOPE": 1}})
    leaf = _write(tmp_path / "leaf.yml", {"_BASE_": ["base.yml"]})
    with pytest.raises(ConfigError, match=r"base\.yml.*MODEL\.NOPE"):
        load_config(leaf)


def test_wrong_type_names_key_and_file(tmp_path):
    leaf = _write(tmp_path / "t.yml", {"SOLVER": {"MAX_EPOCHS": "ten"}})
    with pytest.raises(ConfigError) as e:
        load_config(leaf)
    assert "SOLVER.MAX_EPOCHS" in str(e.value) and "t.yml" in str(e.value)


def test_bad_opts(tmp_path):
    with pytest.raises(ConfigError, match="command line.*SOLVER.NOPE"):
        load_config(None, ["SOLVER.NOPE", "1"])
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config(None, ["SOLVER.MAX_EPOCHS"])


def test_missing_file_and_cycle_and_unsafe_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yml"))
    _write(tmp_path / "x.yml", {"_BASE_": ["y.yml"]})
    _write(tmp_path / "y.yml", {"_BASE_": ["x.yml"]})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "x.yml"))
    evil = tmp_path / "evil.yml"
    evil.write_text("SEED: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(evil))


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(None, ["SOLVER.BASE_LR", "0.123", "DATASETS.TRAIN", "['a', 'b']"])
    path = save_config(cfg, str(tmp_path / "out"))
    again = load_config(path)
    assert again == cfg


def test_plugins_are_imported(tmp_path, monkeypatch):
    mod = tmp_path / "my_plugin_mod.py"
    mod.write_text(
        "from reidbox.registry import LOSSES\n@LOSSES.register('plugin_loss')\nclass L: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    load_config(None, ["PLUGINS", "['my_plugin_mod']"])
    from reidbox.registry import LOSSES

    assert "plugin_loss" in LOSSES
    with pytest.raises(ConfigError, match="cannot import"):
        load_config(None, ["PLUGINS", "['no_such_module_xyz']"])


def test_int_accepted_where_default_is_float(tmp_path):
    leaf = _write(tmp_path / "f.yml", {"SOLVER": {"BASE_LR": 1, "WARMUP_EPOCHS": 2}})
    cfg = load_config(leaf)
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.SOLVER.WARMUP_EPOCHS == 2.0
