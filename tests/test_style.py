"""The code base is lint-clean and in the formatter's style (``make lint``), checked in CI."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ["reidbox", "tools", "tests", "benchmarks"]


def _ruff():
    exe = os.path.join(os.path.dirname(sys.executable), "ruff")
    return exe if os.path.isfile(exe) else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff not installed (pip install -e .[dev])")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(command):
    p = subprocess.run([_ruff(), *command, *PATHS], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, (
        f"ruff {' '.join(command)} failed (run `make lint`):\n" + (p.stdout + p.stderr)[-3000:]
    )
