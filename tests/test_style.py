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


def test_no_function_in_the_package_runs_over_sixty_lines():
    """The length budget beside ruff's complexity rules (C901, PLR0915 in pyproject.toml): a
    body that outgrows 60 lines is split into named steps (issue 23 found 14 such bodies)."""
    import ast

    long = []
    for folder, _, files in os.walk(os.path.join(REPO, "reidbox")):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(folder, f)
            tree = ast.parse(open(path, encoding="utf-8").read())
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > 60:
                        long.append(
                            f"{os.path.relpath(path, REPO)}:{node.lineno} {node.name} ({n})"
                        )
    assert not long, "split these into named steps:\n" + "\n".join(long)
