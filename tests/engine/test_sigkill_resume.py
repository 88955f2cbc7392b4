"""A run killed with SIGKILL and resumed ends with the same weights as an uninterrupted run."""

import pytest
import os
import signal
import subprocess
import sys
import time

import torch

from tests.conftest import TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cmd(market_root, out, *extra):
    return [
        sys.executable,
        os.path.join(ROOT, "tools", "train_net.py"),
        "--no-progress",
        *TINY_OPTS,
        "DATASETS.ROOT",
        market_root,
        "OUTPUT_DIR",
        str(out),
        "SOLVER.MAX_EPOCHS",
        "4",
        *extra,
    ]


def _weights(out):
    return torch.load(os.path.join(out, "model_final.pth"), weights_only=True)["model"]


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
def test_sigkill_then_resume_matches_uninterrupted(market_root, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        _cmd(market_root, tmp_path / "full"),
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=600,
    )
    out = tmp_path / "killed"
    p = subprocess.Popen(
        _cmd(market_root, out),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint_0002.pth").exists():
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)  # somewhere inside epoch 3, possibly mid-write
    p.wait()
    assert not (out / "model_final.pth").exists(), "killed too late to test anything"
    cmd = _cmd(market_root, out)
    r = subprocess.run(
        cmd[:2] + ["--resume"] + cmd[2:],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in (out / "log.txt").read_text()
    a, b = _weights(tmp_path / "full"), _weights(out)
    for k in a:
        assert torch.equal(a[k], b[k]), k
