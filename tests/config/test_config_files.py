"""A config file that cannot mean what its user wants is refused in one line, before a run."""

import pytest

from reidbox.config import ConfigError, load_config


def test_an_empty_file_does_not_train_the_defaults(tmp_path):
    (tmp_path / "empty.yml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="empty.yml is empty.*built-in defaults"):
        load_config(str(tmp_path / "empty.yml"))


def test_a_key_given_twice_is_refused_at_any_depth(tmp_path):
    (tmp_path / "a.yml").write_text("SOLVER:\n  BASE_LR: 0.1\n  BASE_LR: 0.2\n")
    with pytest.raises(ConfigError, match="key BASE_LR is given twice \\(lines 2 and 3\\)"):
        load_config(str(tmp_path / "a.yml"))
    (tmp_path / "b.yml").write_text("SEED: 1\nSOLVER:\n  BASE_LR: 0.1\nSEED: 1\n")
    with pytest.raises(ConfigError, match="SEED is given twice"):
        load_config(str(tmp_path / "b.yml"))


def test_a_folder_is_not_a_config_file(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("SEED: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path / "run"))
    assert "is a folder" in str(e.value) and "config.yaml" in str(e.value)
    assert "not found" not in str(e.value)


def test_a_byte_order_mark_is_read_as_the_valid_utf8_it_is(tmp_path):
    (tmp_path / "bom.yml").write_bytes(b"\xef\xbb\xbfSEED: 7\n")
    assert load_config(str(tmp_path / "bom.yml")).SEED == 7


def test_a_negative_lr_suggests_a_working_lr_not_zero():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["SOLVER.BASE_LR", "-0.1"])
    assert "e.g. SOLVER.BASE_LR 0.01" in str(e.value)
