"""docs/custom_model.md's example runs as written: a registered StagedBackbone with PTL on it."""

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "custom_model.md")


def _blocks(lang):
    text = open(DOC, encoding="utf-8").read()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands():
    (block,) = _blocks("bash")
    return [shlex.split(c) for c in block.replace("\\\n", " ").strip().splitlines()]


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    module, _ = _blocks("python")
    first = module.splitlines()[0]
    assert first == "# my_backbones.py", "the doc's first block is the plugin module"
    (tmp_path / "my_backbones.py").write_text(module)
    monkeypatch.chdir(tmp_path)  # the doc: run from the folder holding my_backbones.py
    return tmp_path


def test_doc_python_example_builds_ptl_on_the_custom_backbone(plugin_dir):
    _, usage = _blocks("python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(usage, DOC, "exec"), {"__name__": "doc_example"})
    printed = out.getvalue().splitlines()
    # the printed stage specs are the ones the doc shows in its comment
    expected = re.search(r"# (\[\('block1'.*\])", usage).group(1)
    assert printed[0] == expected
    assert printed[1].startswith("model Baseline+PTL: ")
    from reidbox.registry import BACKBONES

    assert "tiny_convnet" in BACKBONES


def _as_written(plugin_dir):
    """The doc's commands run as written from the folder holding my_backbones.py (tools/ and
    configs/ beside it, as in a clone); reidbox itself on PYTHONPATH as an install puts it."""
    for d in ("tools", "configs"):
        os.symlink(os.path.join(ROOT, d), plugin_dir / d)
    return dict(os.environ, PYTHONPATH=ROOT)


def test_doc_model_info_command(plugin_dir):
    cmd = next(c for c in _commands() if "tools/model_info.py" in c)
    env = _as_written(plugin_dir)
    p = subprocess.run(
        [sys.executable] + cmd[1:],
        capture_output=True,
        text=True,
        cwd=plugin_dir,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert (
        "stages: stem(16ch, /2), block1(32ch, /4), block2(64ch, /8), block3(128ch, /8)" in p.stdout
    )


@pytest.mark.slow
def test_doc_train_command_with_tiny_sizes(plugin_dir, tmp_path):
    cmd = next(c for c in _commands() if "tools/train_net.py" in c)
    tiny = [
        "DATASETS.ROOT",
        str(tmp_path / "data"),
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
        "8",
        "DATASETS.SYNTHETIC.NUM_TEST_IDS",
        "5",
        "DATASETS.SYNTHETIC.IMAGE_SIZE",
        "[32, 16]",
        "INPUT.SIZE_TRAIN",
        "[32, 16]",
        "INPUT.SIZE_TEST",
        "[32, 16]",
        "SOLVER.MAX_EPOCHS",
        "1",
        "DATALOADER.NUM_WORKERS",
        "0",
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    env = _as_written(plugin_dir)
    p = subprocess.run(
        [sys.executable] + cmd[1:] + tiny,
        capture_output=True,
        text=True,
        cwd=plugin_dir,
        env=env,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "out" / "metrics.json").is_file()
