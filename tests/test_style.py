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


@pytest.mark.skipif(_ruff() is None, reason="ruff not installed (pip install -e .[dev])")
def test_ruff_sees_every_source_file():
    """An exclude pattern must not hide package files: a bare ``datasets`` exclude once
    matched ``reidbox/data/datasets`` and left every dataset parser unchecked."""
    p = subprocess.run(
        [_ruff(), "check", "--show-files", *PATHS], cwd=REPO, capture_output=True, text=True
    )
    seen = {os.path.realpath(line.strip()) for line in p.stdout.splitlines() if line.strip()}
    expected = set()
    for top in PATHS:
        for folder, _, files in os.walk(os.path.join(REPO, top)):
            if "__pycache__" in folder:
                continue
            expected |= {
                os.path.realpath(os.path.join(folder, f)) for f in files if f.endswith(".py")
            }
    missing = sorted(os.path.relpath(f, REPO) for f in expected - seen)
    assert not missing, f"ruff skips {len(missing)} source files, e.g. {missing[:5]}"
