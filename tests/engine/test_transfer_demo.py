"""The transfer demo (``make demo-transfer``): pre-train once, fine-tune the four variants (plain
and PTL twins under two heads) from it over several seeds through the paired comparison."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from reidbox.config import load_config
from reidbox.commands.demo import TRANSFER_FINETUNE, TRANSFER_PRETRAIN
from reidbox.engine.compare import format_compare
from reidbox.utils.checkpoint import is_classifier_key

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_demo_configs_are_the_papers_setting_in_miniature():
    pre = load_config(TRANSFER_PRETRAIN)  # shipped names, found from any directory
    fine = load_config(TRANSFER_FINETUNE)
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
    assert {k: len(v) for k, v in res["per_seed"].items()} == {
        "resnet18": 2,
        "resnet18+PTL": 2,
        "resnet18-paperhead": 2,
        "resnet18-paperhead+PTL": 2,
    }
    assert res["cpu_seconds"] > 0 and res["total_seconds"] > 0
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "mAP mean ± std" in text and "| resnet18+PTL - resnet18 " in text
    assert "95% t-interval" in text and "not fine-tuned" in text
    assert f"\n\n{format_compare(res)}\n\n" in text  # the comparison's own table
    # the "not fine-tuned" figure is the pre-trained file itself, tested on the target domain
    direct = [
        json.load(open(os.path.join(d, "metrics.json")))
        for d, _, files in os.walk(out / "pretrain" / "eval")
        if "metrics.json" in files
    ]
    assert len(direct) == 1 and direct[0]["weights"].endswith("pretrain/model_final.pth")
    assert direct[0]["per_dataset"]["synthetic_b"]["mAP"] == res["pretrained_on_target"]["mAP"]
    # one pre-training; every variant of a seed starts from one file: the pre-trained backbone
    # bit for bit and the seed's fresh classifier, shared by the twins
    pre = torch.load(out / "pretrain" / "model_final.pth", weights_only=True)["model"]
    backbone = [k for k in pre if k.startswith("backbone.")]
    assert backbone and any(is_classifier_key(k) for k in pre)
    inits = sorted(os.listdir(out / "init"))
    assert len(inits) == 4  # (BN-neck, paper head) x 2 seeds
    for f in inits:
        init = torch.load(out / "init" / f, weights_only=True)["model"]
        assert all(torch.equal(init[k], pre[k]) for k in backbone)
        assert not any(k.startswith("ptl.") for k in init)
    cfg = (out / "resnet18_ptl" / "seed1" / "config.yaml").read_text()
    assert "ENABLED: true" in cfg and "SEED: 1" in cfg and "/init/init_" in cfg
    # the seed changes the fine-tuning: same start, different fine-tuned backbones
    fin = {
        s: torch.load(out / "resnet18" / f"seed{s}" / "model_final.pth", weights_only=True)["model"]
        for s in (0, 1)
    }
    assert not all(torch.equal(fin[0][k], fin[1][k]) for k in backbone)
    assert not all(torch.equal(fin[0][k], pre[k]) for k in backbone)
    # a rerun reuses every finished run: same numbers, nothing retrained
    mtime = os.path.getmtime(out / "resnet18" / "seed0" / "model_final.pth")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.getmtime(out / "resnet18" / "seed0" / "model_final.pth") == mtime
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
        "(0.1 -> 0.5), with no epoch left to follow the new schedule (raise SOLVER.MAX_EPOCHS "
        "to continue the run); delete that folder or pass another --output-dir"
    )
    shutil.rmtree(out / "pretrain")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "holds fine-tuned runs but no finished pre-training" in r.stderr
    assert os.path.getmtime(out / "resnet18" / "seed0" / "model_final.pth") == mtime
