"""benchmarks/train_loop.py runs end to end on the CPU at its --tiny sizes."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_train_loop_benchmark_tiny(tmp_path):
    cmd = [
        sys.executable,
        os.path.join(ROOT, "benchmarks", "train_loop.py"),
        "--tiny",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--workers",
        "0",
        "--data",
        "--data-root",
        str(tmp_path),
    ]
    r = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    table = r.stdout.split("\n\n")[-2]
    rows = {
        m.group(1): m.groups()[1:]
        for m in re.finditer(
            r"^\| (\S+) \| \d+x\d+ \| ([\d.]+) \| ([\d.]+) \| (\d+)% \| (\d+)% \|", table, re.M
        )
    }
    assert set(rows) == {
        "resnet50",
        "resnet50+PTL",
        "densenet161",
        "densenet161+PTL",
        "mgn",
        "mgn+PTL",
    }, r.stdout
    for name, (bare, loop, ratio, wait) in rows.items():
        assert float(bare) > 0 and float(loop) > 0 and int(ratio) > 0, name
        assert 0 <= int(wait) <= 100, name
    assert re.search(r"^\| 0 workers \| \d+ \| \d+ \|$", r.stdout, re.M), r.stdout
