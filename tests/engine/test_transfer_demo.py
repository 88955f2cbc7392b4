"""The transfer demo (``make demo-transfer``): pre-train once, fine-tune plain and PTL twins
from it over several seeds, report mean ± sample std and the paired difference."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from reidbox.config import load_config
from reidbox.engine.demo import TRANSFER_FINETUNE, TRANSFER_PRETRAIN, _mean_std, transfer_table
from reidbox.utils.checkpoint import is_classifier_key

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_table_reports_each_seed_the_sample_spread_and_the_paired_difference():
    per_seed = {
        "plain": [
            {"mAP": 0.5, "rank1": 0.6},
            {"mAP": 0.7, "rank1": 0.8},
            {"mAP": 0.6, "rank1": 0.7},
        ],
        "ptl": [{"mAP": 0.6, "rank1": 0.6}, {"mAP": 0.6, "rank1": 0.9}, {"mAP": 0.7, "rank1": 0.7}],
    }
    text = transfer_table(per_seed, {"mAP": 0.2, "rank1": 0.3}, [0, 1, 2])
    lines = text.splitlines()
    assert lines[0] == (
        "| model | seed 0 mAP / R1 | seed 1 mAP / R1 | seed 2 mAP / R1 | "
        "mAP mean ± std | R1 mean ± std |"
    )
    assert lines[2] == (
        "| pre-trained, not fine-tuned |  |  |  | 20.0 (one model) | 30.0 (one model) |"
    )
    # sample std (n - 1): 50, 70, 60 -> 10.0 (the population std would be 8.2)
    assert lines[3] == (
        "| plain, fine-tuned | 50.0 / 60.0 | 70.0 / 80.0 | 60.0 / 70.0 | "
        "60.0 ± 10.0 | 70.0 ± 10.0 |"
    )
    assert lines[5] == (
        "| ptl - plain, paired | +10.0 / +0.0 | -10.0 / +10.0 | +10.0 / +0.0 | "
        "+3.3 ± 11.5 | +3.3 ± 5.8 |"
    )
    assert "ptl scored higher than plain in 2 of 3 seeds by mAP, 1 of 3 by rank-1" in text
    assert _mean_std([3.0]) == (3.0, 0.0)
    assert _mean_std([1.0, 3.0]) == (2.0, 2**0.5)


def test_demo_configs_are_the_papers_setting_in_miniature():
    pre = load_config(os.path.join(ROOT, TRANSFER_PRETRAIN))
    fine = load_config(os.path.join(ROOT, TRANSFER_FINETUNE))
    assert pre.DATASETS.TRAIN == ["synthetic_a"] and fine.DATASETS.TRAIN == ["synthetic_b"]
    assert fine.DATASETS.TEST == ["synthetic_b"]
    assert pre.MODEL.META_ARCHITECTURE == fine.MODEL.META_ARCHITECTURE == "baseline"
    assert pre.MODEL.BACKBONE == fine.MODEL.BACKBONE and not fine.MODEL.BACKBONE.PRETRAINED
    assert fine.SOLVER.OPTIMIZER == "SGD" and fine.SOLVER.BASE_LR == 0.01
    # written at the input size: nothing to resize
    for cfg in (pre, fine):
        assert list(cfg.DATASETS.SYNTHETIC.IMAGE_SIZE) == list(cfg.INPUT.SIZE_TRAIN)


@pytest.mark.slow
def test_transfer_demo_pretrains_once_and_fine_tunes_both_twins_per_seed(tmp_path):
    out = tmp_path / "transfer"
    tiny = [
        "DATASETS.ROOT",
        str(tmp_path / "data"),
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
        "6",
        "DATASETS.SYNTHETIC.NUM_TEST_IDS",
        "4",
        "DATASETS.SYNTHETIC.IMAGE_SIZE",
        "[32, 16]",
        "INPUT.SIZE_TRAIN",
        "[32, 16]",
        "INPUT.SIZE_TEST",
        "[32, 16]",
        "SOLVER.MAX_EPOCHS",
        "1",
        "SOLVER.WARMUP_EPOCHS",
        "0.0",
        "SOLVER.IMS_PER_BATCH",
        "16",
        "SOLVER.CHECKPOINT_PERIOD",
        "1",
    ]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        os.path.join(ROOT, "tools", "demo.py"),
        "--transfer",
        "--output-dir",
        str(out),
        "--seeds",
        "0",
        "1",
        "--no-progress",
        *tiny,
    ]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(out / "results.json") as f:
        res = json.load(f)
    assert res["source"] == ["synthetic_a"] and res["target"] == "synthetic_b"
    assert list(res["pretrained_on_source"]) == ["synthetic_a"]
    assert {k: len(v) for k, v in res["per_seed"].items()} == {"resnet18": 2, "resnet18+PTL": 2}
    assert res["cpu_seconds"] > 0 and res["total_seconds"] > 0
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "mAP mean ± std" in text and "| resnet18+PTL - resnet18, paired |" in text
    # the "not fine-tuned" row is the pre-trained file itself, tested on the target domain
    direct = [
        json.load(open(os.path.join(d, "metrics.json")))
        for d, _, files in os.walk(out / "pretrain" / "eval")
        if "metrics.json" in files
    ]
    assert len(direct) == 1 and direct[0]["weights"].endswith("pretrain/model_final.pth")
    assert direct[0]["per_dataset"]["synthetic_b"]["mAP"] == res["pretrained_on_target"]["mAP"]
    # one pre-training; both twins of a seed start from its backbone, bit for bit, and the
    # classifier (PTL: side network and 3-layer classifier too) is left freshly initialised
    pre = torch.load(out / "pretrain" / "model_final.pth", weights_only=True)["model"]
    backbone = [k for k in pre if k.startswith("backbone.")]
    assert backbone and any(is_classifier_key(k) for k in pre)
    inits = {}
    for run in ("resnet18_seed0", "resnet18_ptl_seed0", "resnet18_seed1", "resnet18_ptl_seed1"):
        inits[run] = torch.load(out / run / "init_weights.pth", weights_only=True)
        init = inits[run]["model"]
        assert all(torch.equal(init[k], pre[k]) for k in backbone)
        assert not any(is_classifier_key(k) or k.startswith("ptl.") for k in init)
        assert any(is_classifier_key(k) for k in inits[run]["fresh"])
    assert any(k.startswith("ptl.") for k in inits["resnet18_ptl_seed0"]["fresh"])
    assert not any(k.startswith("ptl.") for k in inits["resnet18_seed0"]["fresh"])
    cfg = (out / "resnet18_ptl_seed1" / "config.yaml").read_text()
    assert "META_ARCHITECTURE: ptl" in cfg and "SEED: 1" in cfg
    # the seed changes the fine-tuning: same start, different fine-tuned backbones
    fin = {
        s: torch.load(out / f"resnet18_seed{s}" / "model_final.pth", weights_only=True)["model"]
        for s in (0, 1)
    }
    assert not all(torch.equal(fin[0][k], fin[1][k]) for k in backbone)
    assert not all(torch.equal(fin[0][k], pre[k]) for k in backbone)
    # a rerun reuses every finished run: same numbers, nothing retrained
    mtime = os.path.getmtime(out / "resnet18_seed0" / "model_final.pth")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.getmtime(out / "resnet18_seed0" / "model_final.pth") == mtime
    with open(out / "results.json") as f:
        assert json.load(f)["per_seed"] == res["per_seed"]
    # a finished run of another config is refused, not mixed into the table; so is a
    # fine-tuning made from an earlier pre-training
    r = subprocess.run(
        cmd + ["SOLVER.GAMMA", "0.5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {out / 'pretrain'} holds a finished run of another config: SOLVER.GAMMA "
        "(0.1 -> 0.5); delete that folder or pass another --output-dir"
    )
    shutil.rmtree(out / "pretrain")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "resnet18_seed0 was fine-tuned from an earlier pre-training" in r.stderr
    assert os.path.getmtime(out / "resnet18_seed0" / "model_final.pth") == mtime
