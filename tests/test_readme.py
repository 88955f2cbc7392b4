"""Every shell command of the README runs (issue 14.8), so the README cannot go stale.

The README's ```bash blocks are parsed; each command must have an entry in ``SPECS`` (a new
README command without one fails ``test_every_readme_command_has_a_spec``). A spec says how the
command runs here: as written, with trailing ``KEY VALUE`` overrides that shrink it to tiny
sizes (every tool takes flags and overrides anywhere, so appending keeps the command as
written), in the fast suite or marked slow, or not at all with the reason. Commands run in a
sandbox folder holding links to ``configs/`` and ``tools/``, a ``.venv/bin/activate`` that
puts this interpreter first on ``PATH``, the ``reidbox`` command (``.venv/bin/reidbox``, as pip
installs it), and stand-in datasets in their real layouts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import pytest

from tests.conftest import write_market_tree
from tests.data.fixtures import make_msmt17

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")

# Shrink the embedded synthetic dataset and the input; one epoch. The same dataset options on
# every command that reads it (a generated folder must match its options).
SYNTH = [
    "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
    "8",
    "DATASETS.SYNTHETIC.NUM_TEST_IDS",
    "5",
    "DATASETS.SYNTHETIC.IMAGE_SIZE",
    "[32, 16]",
]
TINY = SYNTH + [
    "INPUT.SIZE_TRAIN",
    "[32, 16]",
    "INPUT.SIZE_TEST",
    "[32, 16]",
    "SOLVER.MAX_EPOCHS",
    "1",
    "SOLVER.IMS_PER_BATCH",
    "16",
    "DATALOADER.NUM_WORKERS",
    "0",
    "TEST.IMS_PER_BATCH",
    "32",
    "--no-progress",
]
# A paper config on stand-in data: ImageNet weights off, small input (DenseNet-161's last map
# is 1/16 of it: 64x32 is the smallest that pools), one epoch.
PAPER_TINY = [
    "MODEL.BACKBONE.PRETRAINED",
    "False",
    "INPUT.SIZE_TRAIN",
    "[64, 32]",
    "INPUT.SIZE_TEST",
    "[64, 32]",
    "SOLVER.MAX_EPOCHS",
    "1",
    "SOLVER.IMS_PER_BATCH",
    "8",
    "DATALOADER.NUM_INSTANCES",
    "2",
    "DATALOADER.NUM_WORKERS",
    "0",
    "DEVICE",
    "cpu",
    "TEST.IMS_PER_BATCH",
    "16",
    "--no-progress",
]
CIFAR_TINY = ["SOLVER.MAX_EPOCHS", "1", "--no-progress"]


@dataclass
class Spec:
    """How one README command runs in the tests.

    ``kind``: "fast" (default suite), "slow" (``-m slow``) or "skip" (with ``reason``).
    ``append``: tokens added at the end; ``rewrite``: replaces the command line (for ``make``
    targets: the tool call behind them). ``xfail``: a known failure owned elsewhere (reason).
    ``needs``: README commands whose output this one reads (run first when it runs alone).
    """

    kind: str = "fast"
    append: List[str] = field(default_factory=list)
    rewrite: Optional[Callable[[str], str]] = None
    reason: str = ""
    xfail: str = ""
    needs: List[str] = field(default_factory=list)


TRAIN_DEMO = "python tools/train_net.py --config-file configs/demo/ptl.yml"
CHAIN = (
    "python tools/transfer_chain.py synthetic_a synthetic_b synthetic_c --config-file "
    "configs/demo/chain.yml"
)
CIFAR_PTL = (
    "python tools/train_net.py --config-file configs/demo/cifar.yml OUTPUT_DIR "
    "output/demo/cifar_ptl_v2"
)
CIFAR_PLAIN = (
    "python tools/train_net.py --config-file configs/demo/cifar.yml OUTPUT_DIR "
    "output/demo/cifar_plain MODEL.META_ARCHITECTURE classifier MODEL.PTL.ENABLED False"
)

SPECS: Dict[str, Spec] = {
    "make demo": Spec(
        "slow",
        rewrite=lambda c: "python tools/demo.py --output-dir output/demo " + shlex.join(TINY),
    ),
    "make test": Spec("skip", reason="runs this test suite itself (recursion); CI runs it"),
    ". .venv/bin/activate": Spec(),
    TRAIN_DEMO: Spec(append=TINY),
    TRAIN_DEMO + " --resume": Spec(append=TINY, needs=[TRAIN_DEMO]),
    (
        "python tools/train_net.py --config-file configs/msmt17/ptl_d161.yml DATASETS.ROOT /data "
        "SOLVER.MAX_EPOCHS 50"
    ): Spec(
        # 10 stand-in images in batches of 8: a remainder of 2 (the random sampler drops it)
        "slow",
        append=["DATASETS.ROOT", "msmt_data"] + PAPER_TINY,
    ),
    (
        "python tools/test_net.py --config-file configs/demo/ptl.yml MODEL.WEIGHTS "
        "output/resnet18_ptl/model_final.pth TEST.RERANK.ENABLED True TEST.FLIP_AUG True"
    ): Spec("slow", append=TINY, needs=[TRAIN_DEMO]),
    (
        "reidbox test --config-file configs/demo/ptl.yml MODEL.WEIGHTS "
        "output/resnet18_ptl/model_final.pth --output-dir output/resnet18_ptl --vis-ranks 10 "
        "--vis-order worst"
    ): Spec("slow", append=TINY, needs=[TRAIN_DEMO]),
    "python tools/model_info.py --config-file configs/msmt17/ptl_d161.yml": Spec("slow"),
    (
        "torchrun --nproc_per_node 4 tools/train_net.py --config-file "
        "configs/market1501/ptl_d161.yml"
    ): Spec(
        "slow",
        rewrite=lambda c: (
            c.replace("--nproc_per_node 4", "--standalone --nproc_per_node 2")
            + " "
            + shlex.join(
                ["DATASETS.ROOT", "datasets", "OUTPUT_DIR", "output/torchrun"] + PAPER_TINY
            )
        ),
    ),
    (
        "python tools/export.py --config-file configs/demo/ptl.yml MODEL.WEIGHTS "
        "output/resnet18_ptl/model_final.pth --format onnx"
    ): Spec("slow", append=["INPUT.SIZE_TEST", "[32, 16]"], needs=[TRAIN_DEMO]),
    "python tools/dataset_stats.py market1501 --root datasets": Spec(),
    CHAIN: Spec("slow", append=TINY),
    "cat output/demo/chain/summary.md": Spec("slow", needs=[CHAIN]),
    CIFAR_PTL: Spec("slow", append=CIFAR_TINY),
    CIFAR_PLAIN: Spec("slow", append=CIFAR_TINY),
    (
        "python tools/loss_surface.py --runs output/demo/cifar_ptl_v2 output/demo/cifar_plain "
        "--labels PTL-v2 plain --output-dir output/demo/loss_surface --points 7 --num-samples 100"
    ): Spec(
        "slow",
        append=["--points", "3", "--num-samples", "32", "--no-progress"],
        needs=[CIFAR_PTL, CIFAR_PLAIN],
    ),
    "make test-slow": Spec("skip", reason="runs this test suite's slow part itself; CI runs it"),
    "make lint": Spec(
        rewrite=lambda c: f"cd {shlex.quote(ROOT)} && ruff check reidbox tools tests benchmarks"
    ),
}


def readme_commands() -> List[List[str]]:
    """The README's ```bash blocks as lists of commands (continuations joined, comments cut)."""
    text = open(README, encoding="utf-8").read()
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        cmds = []
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                cmds.append(" ".join(shlex.quote(t) if t != "." else t for t in tokens))
        blocks.append(cmds)
    return blocks


def _all() -> List[str]:
    return [c for block in readme_commands() for c in block]


def test_every_readme_command_has_a_spec():
    cmds = _all()
    assert len(cmds) >= 15
    missing = [c for c in cmds if c not in SPECS]
    assert not missing, f"README commands without an entry in tests/test_readme.py: {missing}"
    stale = [c for c in SPECS if c not in cmds]
    assert not stale, f"SPECS entries no longer in the README: {stale}"
    for c, s in SPECS.items():
        assert s.kind in ("fast", "slow", "skip") and (s.kind != "skip" or s.reason), c
        assert all(n in SPECS and _all().index(n) < _all().index(c) for n in s.needs), c


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder laid out like a checkout after ``make setup``, with stand-in datasets."""
    box = tmp_path_factory.mktemp("readme")
    for name in ("configs", "tools"):
        os.symlink(os.path.join(ROOT, name), box / name)
    venv = box / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text(
        f"export PATH={shlex.quote(str(venv))}:{shlex.quote(os.path.dirname(sys.executable))}"
        ':"$PATH"\n'
    )
    # the console command pip installs (setup.py's entry point), here without installing
    (venv / "reidbox").write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m reidbox.commands "$@"\n'
    )
    (venv / "reidbox").chmod(0o755)
    write_market_tree(str(box / "datasets"))  # market1501 in its real layout
    make_msmt17(str(box / "msmt_data"))  # the README's /data, for the MSMT17 paper config
    return box


def _command_line(cmd: str) -> str:
    spec = SPECS[cmd]
    line = spec.rewrite(cmd) if spec.rewrite else cmd
    return line + (" " + shlex.join(spec.append) if spec.append else "")


def run_in_sandbox(argv: List[str], box, label: str) -> subprocess.CompletedProcess:
    """``argv`` in the sandbox with this interpreter first on PATH and the repository on
    PYTHONPATH; fails the test with the output's tail unless it exits 0."""
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        PATH=os.pathsep.join(
            [str(box / ".venv" / "bin"), os.path.dirname(sys.executable), os.environ["PATH"]]
        ),
    )
    env.pop("REIDBOX_DATASETS", None)
    p = subprocess.run(argv, cwd=box, env=env, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, f"{label}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def _run(cmd: str, box) -> None:
    run_in_sandbox(["bash", "-c", _command_line(cmd)], box, cmd)


_done: set = set()


def _run_with_needs(cmd: str, box) -> None:
    for need in SPECS[cmd].needs:
        if need not in _done:
            _run_with_needs(need, box)
    _run(cmd, box)
    _done.add(cmd)


def _params(kind: str):
    out = []
    for cmd in _all():
        spec = SPECS.get(cmd)
        if spec is None or spec.kind != kind:
            continue
        marks = [pytest.mark.slow] if kind == "slow" else []
        if spec.xfail:
            marks.append(pytest.mark.xfail(strict=False, reason=spec.xfail))
        out.append(pytest.param(cmd, marks=marks, id=cmd[:60]))
    return out


@pytest.mark.parametrize("cmd", _params("fast"))
def test_readme_command(cmd, sandbox):
    _run_with_needs(cmd, sandbox)


@pytest.mark.parametrize("cmd", _params("slow"))
def test_readme_heavy_command(cmd, sandbox):
    _run_with_needs(cmd, sandbox)


@pytest.mark.parametrize("cmd", _params("skip"))
def test_readme_command_not_run_here(cmd):
    pytest.skip(SPECS[cmd].reason)


def readme_python_blocks() -> List[str]:
    """The README's ```python blocks, as written."""
    return re.findall(r"```python\n(.*?)```", open(README, encoding="utf-8").read(), flags=re.S)


@pytest.mark.slow  # trains and tests a model (~25 s): the default suite's 5-minute budget
def test_readme_python_blocks_run_as_written(sandbox):
    """The Python API block runs unchanged in a checkout-like folder (issue 22.8): no
    undefined names, no dataset to download; printing a result is one line."""
    blocks = readme_python_blocks()
    assert blocks and any("reidbox.train(" in b and "reidbox.test(" in b for b in blocks)
    for block in blocks:
        p = run_in_sandbox([sys.executable, "-c", block], sandbox, block)
        assert "\r" not in p.stdout + p.stderr  # no progress-bar debris off a terminal
        (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("EvalResult(")]
        assert "queries" in line and "array(" not in line
