"""PLUGINS imports code, so only the user's own act imports a module: a yml file never does."""

import logging
import os
import sys

import pytest
import yaml

from reidbox.config import ConfigError, load_config
from reidbox.config.loader import PLUGINS_ENV, imported_plugins


def _plugin(folder, name):
    """A module that leaves a mark when imported (and registers nothing)."""
    mark = folder / f"{name}.ran"
    (folder / f"{name}.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    return mark


def _yml(folder, plugins, base=None):
    data = {"PLUGINS": plugins}
    if base:
        data["_BASE_"] = base
    path = folder / "downloaded.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the module lies beside the config, in the working folder
    monkeypatch.delenv(PLUGINS_ENV, raising=False)
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("pl21_")]:
        del sys.modules[name]


def test_a_yml_file_alone_imports_nothing(here):
    mark = _plugin(here, "pl21_a")
    with pytest.raises(ConfigError) as e:
        load_config(_yml(here, ["pl21_a"]))
    msg = str(e.value)
    assert "downloaded.yml" in msg and "'pl21_a'" in msg
    assert "PLUGINS \"['pl21_a']\"" in msg and f"{PLUGINS_ENV}=pl21_a" in msg
    assert not mark.exists() and "pl21_a" not in sys.modules


def test_a_yml_cannot_import_the_standard_library_either(here):
    with pytest.raises(ConfigError, match="cannot run code on its own"):
        load_config(_yml(here, ["antigravity"]))
    assert "antigravity" not in sys.modules


def test_a_base_file_cannot_smuggle_plugins_in(here):
    mark = _plugin(here, "pl21_b")
    base = _yml(here, ["pl21_b"])
    os.rename(base, here / "base.yml")
    (here / "leaf.yml").write_text(yaml.safe_dump({"_BASE_": "base.yml", "SEED": 3}))
    with pytest.raises(ConfigError, match="pl21_b"):
        load_config(str(here / "leaf.yml"))
    assert not mark.exists()


def test_plugins_on_the_command_line_import_from_the_working_folder_and_are_logged(here, caplog):
    mark = _plugin(here, "pl21_c")
    assert str(here) not in sys.path
    with caplog.at_level(logging.INFO, logger="reidbox"):
        cfg = load_config(_yml(here, ["pl21_c"]), ["PLUGINS", "['pl21_c']"])
    assert cfg.PLUGINS == ["pl21_c"] and mark.exists()
    assert imported_plugins()["pl21_c"] == str(here / "pl21_c.py")
    assert f"plugin pl21_c imported from {here / 'pl21_c.py'}" in caplog.text
    assert str(here) not in sys.path  # searched for the import only
    # the same process may now read a run folder's config.yaml naming it (a teacher, a resume)
    load_config(_yml(here, ["pl21_c"]))


def test_the_environment_variable_opts_in_and_imports(here, monkeypatch):
    mark = _plugin(here, "pl21_d")
    monkeypatch.setenv(PLUGINS_ENV, "pl21_d")
    load_config(None, ["SEED", "1"])  # imported in every run, even a config without PLUGINS
    assert mark.exists()
    assert load_config(_yml(here, ["pl21_d"])).PLUGINS == ["pl21_d"]


def test_a_missing_plugin_says_where_it_was_looked_for(here):
    with pytest.raises(ConfigError, match="cannot import 'pl21_none'.*PYTHONPATH"):
        load_config(None, ["PLUGINS", "['pl21_none']"])
