"""Config lookup: a path as given, else the shipped config of that name, from any directory."""

import os

import pytest
import yaml

from reidbox.config import ConfigError, find_config, load_config
from reidbox.config import loader
from reidbox.engine.chain import parse_steps, step_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(REPO, "configs")


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return str(path)


def test_shipped_configs_are_the_repository_configs_in_a_clone():
    assert os.path.samefile(loader.packaged_config_dir(), SHIPPED)


def test_an_existing_path_is_used_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "configs" / "demo" / "ptl.yml", {"SEED": 123})  # shadows the shipped one
    assert find_config("configs/demo/ptl.yml") == "configs/demo/ptl.yml"
    assert load_config("configs/demo/ptl.yml").SEED == 123


@pytest.mark.parametrize(
    "name",
    [
        "configs/cuhk03/mgn_ptl_detected.yml",
        "cuhk03/mgn_ptl_detected.yml",
        "./configs/cuhk03/mgn_ptl_detected.yml",
    ],
)
def test_a_shipped_config_is_found_from_another_directory(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert os.path.samefile(
        find_config(name), os.path.join(SHIPPED, "cuhk03", "mgn_ptl_detected.yml")
    )
    cfg = load_config(name)
    # its _BASE_ files (../_base_/cuhk03_detected.yml, then eval_openreid.yml) were merged
    assert cfg.DATASETS.CUHK03.VARIANT == "detected"
    assert cfg.TEST.PROTOCOL == "openreid_market1501"


def test_a_users_file_may_name_a_shipped_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = _write(
        tmp_path / "mine" / "exp.yml",
        {"_BASE_": ["_base_/cuhk03_detected.yml", "configs/_base_/paper_sgd.yml"], "SEED": 4},
    )
    cfg = load_config(mine)
    assert cfg.DATASETS.CUHK03.VARIANT == "detected" and cfg.SEED == 4
    assert cfg.SOLVER.OPTIMIZER == load_config("configs/_base_/paper_sgd.yml").SOLVER.OPTIMIZER


def test_a_missing_config_is_one_line_naming_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("configs/market1501/nope.yml")
    msg = str(e.value)
    assert "\n" not in msg
    assert "configs/market1501/nope.yml" in msg and str(tmp_path) in msg and SHIPPED in msg
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yml"))  # an absolute path is never looked up elsewhere
    bad = _write(tmp_path / "bad.yml", {"_BASE_": ["_base_/nope.yml"]})
    with pytest.raises(ConfigError, match=r"bad.yml: _BASE_ file _base_/nope.yml not found"):
        load_config(bad)


def test_an_installed_package_uses_its_own_configs(tmp_path, monkeypatch):
    pkg = tmp_path / "site-packages" / "reidbox"
    _write(pkg / "configs" / "_base_" / "x.yml", {"SEED": 9})
    monkeypatch.setattr(loader, "_PACKAGE", str(pkg))
    monkeypatch.chdir(tmp_path)
    assert loader.packaged_config_dir() == str(pkg / "configs")
    assert load_config("configs/_base_/x.yml").SEED == 9


@pytest.mark.parametrize("step", ["CUHK03-detected", "Market"])
def test_a_missing_chain_fragment_is_an_error(tmp_path, monkeypatch, step):
    """A package whose configs lack the dataset's fragment must not train with defaults (a
    CUHK03-detected step would silently train on the labeled boxes)."""
    pkg = tmp_path / "reidbox"
    _write(pkg / "configs" / "_base_" / "other.yml", {})
    monkeypatch.setattr(loader, "_PACKAGE", str(pkg))
    with pytest.raises(ConfigError, match=r"shipped config _base_/\S+\.yml is missing"):
        step_config(None, [], parse_steps([step])[0], str(tmp_path / "chain"), [step], None, [])


def test_a_chain_fragment_is_merged_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, _ = step_config(
        None,
        [],
        parse_steps(["CUHK03-detected"])[0],
        str(tmp_path / "c"),
        ["CUHK03-detected"],
        None,
        [],
    )
    assert cfg.DATASETS.CUHK03.VARIANT == "detected"
    assert cfg.TEST.PROTOCOL == "openreid_market1501"


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("configs/msmt17/ptl_d16.yml", "configs/msmt17/ptl_d161.yml"),
        ("market/ptl_d161.yml", "configs/market1501/ptl_d161.yml"),
        ("demo/ptl.yaml", "configs/demo/ptl.yml"),
        ("configs/market1501/mgn-ptl.yml", "configs/market1501/mgn_ptl.yml"),
    ],
)
def test_a_mistyped_config_name_names_the_shipped_one_meant(typo, meant, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="did you mean") as e:
        find_config(typo)
    assert str(e.value).split("did you mean ")[1].split(" or ")[0].rstrip("?") == meant


def test_an_unrelated_config_name_gets_no_guess(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="shipped name such as") as e:
        find_config("nothing_like_it.yml")
    assert "did you mean" not in str(e.value)
    assert all(os.path.isfile(os.path.join(REPO, n)) for n in loader.shipped_names())
