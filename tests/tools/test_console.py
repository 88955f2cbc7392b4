"""The ``reidbox`` console command (issue 22.3): one subcommand per reidbox/commands module,
each running its tool's code, with help that shows the console spelling."""

import contextlib
import glob
import io
import json
import os
import subprocess
import sys
import time

import pytest

from reidbox.cli import run_main, set_command_names
from reidbox.commands import _console
from tests.test_packaging import _setup_kwargs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _reidbox(*argv):
    """``reidbox argv`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_main(_console.dispatch, list(argv))
    except SystemExit as e:
        code = e.code or 0
    finally:
        set_command_names(None)  # later parsers in this process are the tools' again
    return code, out.getvalue(), err.getvalue()


def test_setup_installs_the_reidbox_command(monkeypatch):
    (line,) = _setup_kwargs(monkeypatch)["entry_points"]["console_scripts"]
    name, target = (s.strip() for s in line.split("="))
    module, func = target.split(":")
    assert name == "reidbox" and callable(getattr(__import__(module, fromlist=[func]), func))


def test_every_commands_module_is_a_subcommand():
    modules = {
        os.path.basename(p)[:-3]
        for p in glob.glob(os.path.join(ROOT, "reidbox", "commands", "[!_]*.py"))
    }
    table = _console.commands()
    assert {c.module for c in table} == modules  # a new module needs no table entry
    # without installing: python -m reidbox.commands, from another folder, imports no torch
    p = subprocess.run(
        [sys.executable, "-m", "reidbox.commands", "--help"],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert p.returncode == 0, p.stderr
    for name in ("train", "test", "chain", "export", "info", "stats", "demo"):
        assert f"\n  {name} " in p.stdout, name
    for c in table:
        assert f"  {c.name} " in p.stdout and c.summary in p.stdout


def test_each_subcommand_help_shows_an_example_of_itself():
    for c in _console.commands():
        code, out, err = _reidbox(c.name, "--help")
        assert code == 0, (c.name, err)
        usage, _, description = out.partition("\n\n")
        assert usage.startswith(f"usage: reidbox {c.name} "), usage
        example = description.split("\n\n")[0] + description  # first paragraph or later
        assert f"reidbox {c.name} " in example, f"reidbox {c.name} --help shows no example"
        assert "tools/" not in description.split("options:")[0], c.name
    # the module name works as well as the short name
    assert _reidbox("train_net", "--help")[1] == _reidbox("train", "--help")[1]


def test_unknown_command_is_one_line_with_the_list():
    code, out, err = _reidbox("trian", "--config-file", "x.yml")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no command 'trian'" in err and "train" in err and "test" in err


def test_torchrun_line_runs_the_module():
    code, _, err = _reidbox("train", "--num-gpus", "2", "SEED", "1")
    assert code == 2 and "torchrun --nproc_per_node 2 -m reidbox.commands train SEED 1" in err


def test_reidbox_train_then_test_end_to_end(tiny_opts, tmp_path):
    """``reidbox train`` then ``reidbox test`` run the tools' code; both results record the
    same test data and the same (test-time) parameter count (issue 22.1, 22.6)."""
    code, out, err = _reidbox("train", *tiny_opts, "SOLVER.MAX_EPOCHS", "1", "--no-progress")
    assert code == 0, err
    run = tmp_path / "out"
    trained = json.load(open(run / "metrics.json"))
    weights = ["MODEL.WEIGHTS", str(run / "model_final.pth")]
    code, out, err = _reidbox("test", *tiny_opts, *weights, "--no-progress")
    assert code == 0, err
    assert "\r" not in out + err  # off a terminal: no progress-bar debris
    (metrics,) = glob.glob(str(run / "eval" / "*" / "metrics.json"))
    first = open(os.path.join(os.path.dirname(metrics), "log.txt")).readline()
    assert "] command: " in first  # an evaluation's log starts with what ran it
    assert "done: weights" in open(run / "log.txt").read()  # training says where things went
    tested = json.load(open(metrics))
    assert tested["per_dataset"]["market1501"]["num_query"] == 10
    fingerprint = tested["per_dataset"]["market1501"]["test_data"]
    assert (
        len(fingerprint) == 12 and trained["per_dataset"]["market1501"]["test_data"] == fingerprint
    )
    assert tested["parameters_m"] == trained["parameters_m"] < trained["train_parameters_m"]
    assert tested["date"][:4] == trained["date"][:4] == time.strftime("%Y", time.gmtime())


@pytest.mark.parametrize("word", ["help", "-h"])
def test_help_words(word):
    code, out, _ = _reidbox(word)
    assert code == 0 and "reidbox <command>" in out
    code, out, _ = _reidbox("help", "stats")
    assert code == 0 and out.startswith("usage: reidbox stats ")


def test_a_closed_pipe_is_not_an_error():
    """``reidbox --help | head -1``: the reader leaves first; no traceback, exit 0."""
    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written
    p = subprocess.run(
        [sys.executable, "-m", "reidbox.commands", "--help"],
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    os.close(w)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
