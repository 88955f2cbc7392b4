"""The README's offline chain example, through the command line."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run_tool(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "transfer_chain.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )


def test_cli_reports_bad_chain_in_one_line(tmp_path):
    r = run_tool("Duke", "Marquet", "--no-progress", "OUTPUT_DIR", str(tmp_path / "c"))
    assert r.returncode == 2
    assert r.stderr.startswith("error: unknown chain step dataset 'Marquet'")


@pytest.mark.slow
def test_demo_chain_summary_has_one_row_per_step(tmp_path):
    out = tmp_path / "chain"
    # the demo config as in the README, with 3 epochs per step to bound the test's time
    r = run_tool(
        "synthetic_a",
        "synthetic_b",
        "synthetic_c",
        "--config-file",
        os.path.join(ROOT, "configs", "demo", "chain.yml"),
        "--no-progress",
        "OUTPUT_DIR",
        str(out),
        "DATASETS.ROOT",
        str(tmp_path / "data"),
        "SOLVER.MAX_EPOCHS",
        "3",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["name"] for row in rows] == ["synthetic_a", "synthetic_b", "synthetic_c"]
    assert all(row["synthetic_a mAP"] for row in rows)  # forgetting column filled every step
    assert (out / "chain_map.png").is_file() and (out / "summary.md").is_file()
