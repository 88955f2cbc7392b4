"""One CLI convention for every tool: flags anywhere, fast-reid flags, --debug (issue 14.2)."""

import glob
import json
import re
import os
import subprocess
import sys

import pytest

from reidbox.cli import UsageError, argument_parser, default_argument_parser, parse_args
from tests.conftest import TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name, *args, env=None, timeout=300):
    e = {k: v for k, v in os.environ.items() if k != "REIDBOX_DEBUG"}
    e.update(env or {})
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", name), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=e,
        timeout=timeout,
    )


def test_flags_before_and_after_overrides_parse_the_same():
    p = default_argument_parser("t")
    p.add_argument("--format", default="onnx")
    p.add_argument("--resume", action="store_true")
    before = parse_args(
        p,
        [
            "--format",
            "torchscript",
            "--resume",
            "--config-file",
            "c.yml",
            "MODEL.WEIGHTS",
            "w.pth",
            "SOLVER.BASE_LR",
            "-5e-4",
        ],
    )
    after = parse_args(
        p,
        [
            "--config-file",
            "c.yml",
            "MODEL.WEIGHTS",
            "w.pth",
            "SOLVER.BASE_LR",
            "-5e-4",
            "--format",
            "torchscript",
            "--resume",
        ],
    )
    mixed = parse_args(
        p,
        [
            "MODEL.WEIGHTS",
            "w.pth",
            "--format",
            "torchscript",
            "SOLVER.BASE_LR",
            "-5e-4",
            "--resume",
            "--config-file",
            "c.yml",
        ],
    )
    for a in (before, after, mixed):
        assert (a.format, a.resume, a.config_file) == ("torchscript", True, "c.yml")
        assert a.opts == ["MODEL.WEIGHTS", "w.pth", "SOLVER.BASE_LR", "-5e-4"]


def test_variable_length_option_stops_at_a_config_key():
    p = argument_parser("t")
    p.add_argument("--runs", nargs="+")
    p.add_argument("--range", type=float, nargs=2)
    p.add_argument("opts", nargs="*")
    a = parse_args(p, ["--runs", "a", "b", "DATASETS.ROOT", "/d", "--range", "-1", "1"])
    assert a.runs == ["a", "b"] and a.opts == ["DATASETS.ROOT", "/d"] and a.range == [-1.0, 1.0]
    with pytest.raises(UsageError, match="SOLVER.MAX_EPOCHS VALUE"):
        parse_args(p, ["SOLVER.MAX_EPOCHS"])


def test_every_tool_parses_through_the_shared_convention():
    tools = sorted(glob.glob(os.path.join(ROOT, "tools", "*.py")))
    bodies = sorted(glob.glob(os.path.join(ROOT, "reidbox", "commands", "[!_]*.py")))
    assert len(tools) >= 11 and len(bodies) >= len(tools)
    for path in tools:  # a tool is a shim: its body lives in reidbox/commands
        name = os.path.basename(path)
        src = open(path, encoding="utf-8").read()
        assert f"from reidbox.commands.{name[:-3]} import main" in src, name
        assert len(src.splitlines()) <= 12, f"{name} holds more than the shim"
    for path in bodies:
        src = open(path, encoding="utf-8").read()
        name = os.path.basename(path)
        body = re.search(r"from reidbox\.commands\.(\w+) import main", src)
        if body:  # a shim: the body in reidbox/commands/ parses
            path = os.path.join(ROOT, "reidbox", "commands", body.group(1) + ".py")
            src = open(path, encoding="utf-8").read()
        assert re.search(r"parse_args\(\s*p,\s*argv", src), (
            f"{name} does not use reidbox.cli.parse_args"
        )
        assert ".parse_args(" not in src and "parse_intermixed_args" not in src, name
        assert "REMAINDER" not in src, name  # REMAINDER swallows every flag after it


@pytest.mark.slow  # trains a model first: the default suite's 5-minute budget
def test_readme_export_line_flag_after_overrides(tmp_path):
    out = tmp_path / "m.pt"
    p = _tool(
        "export.py",
        "--config-file",
        "configs/demo/ptl.yml",
        "MODEL.BACKBONE.NAME",
        "resnet18",
        "INPUT.SIZE_TEST",
        "[64, 32]",
        "OUTPUT_DIR",
        str(tmp_path),
        "--format",
        "torchscript",
        "--output",
        str(out),
        "--allow-untrained",
    )
    assert p.returncode == 0, p.stderr
    assert out.is_file() and f"wrote {out}" in p.stdout


@pytest.mark.slow  # trains a model first: the default suite's 5-minute budget
def test_test_net_accepts_eval_only_after_overrides(market_root, tmp_path):
    p = _tool(
        "test_net.py",
        *TINY_OPTS,
        "DATASETS.ROOT",
        market_root,
        "OUTPUT_DIR",
        str(tmp_path),
        "--eval-only",
        "TEST.RERANK.ENABLED",
        "True",
        "TEST.FLIP_AUG",
        "True",
        "TEST.ROC.ENABLED",
        "True",
        "--no-progress",
    )
    assert p.returncode == 0, p.stderr
    (metrics,) = glob.glob(str(tmp_path / "eval" / "*" / "metrics.json"))  # its own folder
    market = json.load(open(metrics))["per_dataset"]["market1501"]
    assert market["num_query"] and 0 <= market["TPR@FPR=1e-02"] <= 1  # verification metrics
    # the settings behind the numbers are stated beside them (issue 14.6)
    assert (
        "results (protocol market1501, euclidean distance, flip-averaged, re-ranked (k1 20, "
        "k2 6, lambda 0.3), L2-normalised features):\n| run | mAP |"
    ) in re.sub(" +", " ", p.stdout + p.stderr)  # table cells are padded to their column


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
def test_dataset_stats_and_collect_results_flags_anywhere(market_root, tmp_path):
    p = _tool("dataset_stats.py", "--root", market_root, "market1501")
    q = _tool("dataset_stats.py", "market1501", "--root", market_root)
    assert p.returncode == q.returncode == 0, p.stderr + q.stderr
    assert p.stdout == q.stdout and "| train" in p.stdout


@pytest.mark.parametrize(
    "argv,needle",
    [
        (
            ["--num-gpus", "4", "--config-file", "configs/demo/ptl.yml"],
            "torchrun --nproc_per_node 4 tools/train_net.py --config-file configs/demo/ptl.yml",
        ),
        # a subprocess each (the default suite's 5-minute budget): the slow suite runs these
        pytest.param(["--dist-url", "tcp://x:1"], "--master_addr", marks=pytest.mark.slow),
        pytest.param(
            ["--opts", "SOLVER.MAX_EPOCHS", "1"], "KEY VALUE pairs anywhere", marks=pytest.mark.slow
        ),
    ],
)
def test_fast_reid_flags_say_what_to_use(argv, needle):
    p = _tool("train_net.py", *argv)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: ") and needle in p.stderr, p.stderr


def test_test_net_resume_says_what_to_use():
    p = _tool("test_net.py", "--resume")
    assert p.returncode == 2 and "tools/train_net.py" in p.stderr and "--resume" in p.stderr


@pytest.mark.parametrize(
    "flag,needle",
    [
        ("--resume", "tools/train_net.py --config-file F --resume"),
        ("--eval-only", "tools/test_net.py evaluates"),
    ],
)
def test_other_tools_answer_fast_reid_flags(flag, needle):
    p = default_argument_parser("export")
    with pytest.raises(UsageError, match=needle):
        parse_args(p, ["--config-file", "c.yml", flag])


def test_num_gpus_one_is_a_plain_run():
    p = default_argument_parser("t")
    assert parse_args(p, ["--num-gpus", "1", "SEED", "3"]).opts == ["SEED", "3"]


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_behind_the_error(how):
    args = ["SOLVER.NOT_A_KEY", "1"] + (["--debug"] if how == "flag" else [])
    p = _tool("train_net.py", *args, env={"REIDBOX_DEBUG": "1"} if how == "env" else None)
    assert p.returncode == 2
    assert "Traceback (most recent call last)" in p.stderr and "merge_opts" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: command line: ")
    plain = _tool("train_net.py", "SOLVER.NOT_A_KEY", "1")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1


def test_one_output_flag_for_every_tool():
    """``--output-dir DIR`` everywhere (issue 22.3); older spellings work but are not shown."""
    import contextlib
    import io

    from reidbox.commands import _console

    for c in _console.commands():
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            __import__(f"reidbox.commands.{c.module}", fromlist=["main"]).main(["--help"])
        text = re.sub(r"\s+", " ", out.getvalue())
        assert not re.search(r"--out(put)? ", text), c.module
        if c.module not in ("model_info", "dataset_stats"):  # these only print
            assert "--output-dir DIR" in text, c.module


def test_output_dir_is_output_dir_key_and_conflicts_are_refused():
    p = default_argument_parser("t")
    from reidbox.cli import add_output_dir

    add_output_dir(p, "run folder", config_key=True)
    assert parse_args(p, ["--output-dir", "o", "SEED", "1"]).opts == [
        "SEED",
        "1",
        "OUTPUT_DIR",
        "o",
    ]
    assert parse_args(p, ["OUTPUT_DIR", "o/", "--output-dir", "o"]).opts[-2:] == ["OUTPUT_DIR", "o"]
    with pytest.raises(UsageError, match="--output-dir a and OUTPUT_DIR b disagree"):
        parse_args(p, ["OUTPUT_DIR", "b", "--output-dir", "a"])
    q = argument_parser("t")
    add_output_dir(q, "folder", old=["--out"], required=True)
    assert parse_args(q, ["--out", "x"]).output_dir == "x"
    with pytest.raises(UsageError, match="--output-dir DIR is required"):
        parse_args(q, [])


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
def test_collect_results_output_dir_and_old_out_write_the_same(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps({"task": "reid", "mAP": 0.5, "rank1": 0.6, "rank5": 0.7, "rank10": 0.8})
    )
    new = _tool("collect_results.py", str(run), "--output-dir", str(tmp_path / "tables"))
    old = _tool("collect_results.py", str(run), "--out", str(tmp_path / "old.md"))
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    written = (tmp_path / "tables" / "results.md").read_text()
    assert written == (tmp_path / "old.md").read_text() and "| 50.00 " in written
