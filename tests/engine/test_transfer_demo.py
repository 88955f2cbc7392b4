"""The transfer demo (``make demo-transfer``): pre-train once, fine-tune plain and PTL twins
from it over several seeds, report mean +- std and the paired difference."""

import json
import os
import subprocess
import sys

import pytest
import torch

from reidbox.engine.demo import _mean_std, transfer_table

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_table_reports_each_seed_the_spread_and_the_paired_difference():
    per_seed = {"plain": [{"mAP": 0.5, "rank1": 0.6}, {"mAP": 0.7, "rank1": 0.8}],
                "ptl": [{"mAP": 0.6, "rank1": 0.6}, {"mAP": 0.6, "rank1": 0.9}]}
    text = transfer_table(per_seed, {"mAP": 0.2, "rank1": 0.3}, [0, 1])
    lines = text.splitlines()
    assert lines[2].startswith("| pre-trained, not fine-tuned | 20.0 / 30.0 |")
    assert lines[3] == "| plain | 50.0 / 60.0 | 70.0 / 80.0 | 60.0 +- 14.1 | 70.0 +- 14.1 |"
    assert lines[5] == "| ptl - plain | +10.0 / +0.0 | -10.0 / +10.0 | +0.0 +- 14.1 | +5.0 +- 7.1 |"
    assert _mean_std([3.0]) == (3.0, 0.0)


@pytest.mark.slow
def test_transfer_demo_pretrains_once_and_fine_tunes_both_twins_per_seed(tmp_path):
    out = tmp_path / "transfer"
    tiny = ["DATASETS.ROOT", str(tmp_path / "data"), "DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "12",
            "DATASETS.SYNTHETIC.NUM_TEST_IDS", "8", "SOLVER.MAX_EPOCHS", "1",
            "SOLVER.WARMUP_EPOCHS", "0.0", "SOLVER.IMS_PER_BATCH", "16",
            "SOLVER.CHECKPOINT_PERIOD", "1", "DATALOADER.NUM_WORKERS", "0"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--transfer",
           "--output-dir", str(out), "--seeds", "0", "1", "--no-progress", *tiny]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(out / "results.json") as f:
        res = json.load(f)
    assert res["source"] == ["synthetic_a"] and res["target"] == "synthetic_b"
    assert {k: len(v) for k, v in res["per_seed"].items()} == {"resnet18": 2, "resnet18+PTL": 2}
    text = (out / "results.md").read_text()
    assert "+- " in text and "resnet18+PTL - resnet18" in text
    # every fine-tuning started from the pre-trained backbone; PTL's side network is fresh
    pre = torch.load(out / "pretrain" / "model_final.pth", weights_only=True)["model"]
    for run in ("resnet18_seed0", "resnet18_ptl_seed1"):
        init = torch.load(out / run / "init_weights.pth", weights_only=True)["model"]
        backbone = [k for k in pre if k.startswith("backbone.")]
        assert backbone and all(torch.equal(init[k], pre[k]) for k in backbone)
        assert not any(k.startswith(("head.classifier", "ptl.", "classifier.")) for k in init)
    cfg = (out / "resnet18_ptl_seed1" / "config.yaml").read_text()
    assert "META_ARCHITECTURE: ptl" in cfg and "SEED: 1" in cfg
    # a rerun reuses every finished run: same numbers, nothing retrained
    mtime = os.path.getmtime(out / "resnet18_seed0" / "model_final.pth")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.getmtime(out / "resnet18_seed0" / "model_final.pth") == mtime
    with open(out / "results.json") as f:
        assert json.load(f)["per_seed"] == res["per_seed"]
