"""The README's commands and 2-process gloo runs of each family, as a user runs them (slow).

Families under ``torchrun --nproc_per_node 2`` (gloo on CPU): random sampler (README's
demo/baseline.yml, PTL), P x K with CE + triplet (MGN+PTL), STD with lambda 1 (the classifier
gets no gradient) and 0.8, and a 2-step transfer chain. Each trains two epochs on stand-in data
whose size leaves a remainder of 1 by the batch, and must run exactly the iterations per epoch
one process runs (``SOLVER.IMS_PER_BATCH`` is the global batch).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import List

import pytest
import torch

from reidbox.config import load_config
from reidbox.data import build_train_loader, build_train_set
from reidbox.engine.solver import LRFactor

from .stand_ins import COMMON, REPO, Data, tiny_opts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="no distributed"),
]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _torchrun() -> List[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "torchrun")
    return [exe] if os.path.isfile(exe) else [sys.executable, "-m", "torch.distributed.run"]


def _torchrun_train(config: str) -> List[str]:
    """``torchrun --standalone --nproc_per_node 2 tools/train_net.py --config-file <config>``."""
    return _torchrun() + [
        "--standalone",
        "--nproc_per_node",
        "2",
        os.path.join(REPO, "tools", "train_net.py"),
        "--config-file",
        os.path.join(REPO, "configs", config),
        "--no-progress",
    ]


def _run(cmd: List[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _config_opts(config: str, data: Data, out: str, extra: List[str] = ()) -> List[str]:
    path = os.path.join(REPO, "configs", config)
    cfg = load_config(path, COMMON + list(extra))
    opts = COMMON + tiny_opts(cfg) + list(extra)
    _, root_opts = data.root(
        load_config(path, opts), list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    )
    return (
        opts
        + root_opts
        + ["OUTPUT_DIR", out, "SOLVER.MAX_EPOCHS", "2", "SOLVER.CHECKPOINT_PERIOD", "1"]
    )


def _one_process_iterations(config: str, opts: List[str]) -> int:
    cfg = load_config(os.path.join(REPO, "configs", config), opts)
    return len(build_train_loader(cfg, build_train_set(cfg).train))


def _checkpoint(out: str) -> dict:
    path = os.path.join(out, "checkpoint_0002.pth")
    return torch.load(path, map_location="cpu", weights_only=True)


FAMILIES = {
    # README: torchrun --standalone --nproc_per_node 2 tools/train_net.py
    #   --config-file configs/demo/baseline.yml   (random sampler, CE, baseline)
    "random-baseline-readme": ("demo/baseline.yml", []),
    "random-ptl": ("demo/ptl.yml", []),
    "pk-ce_triplet-mgn_ptl": ("market1501/mgn_ptl.yml", []),
    # STD: lambda 1 crashed at the second DDP step; a ResNet-18 student keeps it quick.
    "std-lambda1": ("std/table6/lambda_1.yml", ["MODEL.BACKBONE.NAME", "resnet18"]),
    "std-lambda08": ("std/table6/lambda_08.yml", ["MODEL.BACKBONE.NAME", "resnet18"]),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_process_gloo_run_matches_one_process_iterations(
    family, stand_in_data, stand_in_teacher, tmp_path
):
    config, extra = FAMILIES[family]
    out = str(tmp_path / "out")
    opts = _config_opts(config, stand_in_data, out, extra)
    if "std" in config:
        opts += stand_in_teacher
    _run(_torchrun_train(config) + opts)
    state = _checkpoint(out)
    per_epoch = _one_process_iterations(config, opts)
    assert per_epoch == 2  # stand-in sizes: two full batches per epoch
    assert state["global_step"] == 2 * per_epoch and state["epoch"] == 2
    import json

    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["world_size"] == 2 and 0 <= metrics["mAP"] <= 1


def test_two_process_gloo_chain(stand_in_data, tmp_path):
    """tools/transfer_chain.py under torchrun: two steps of the demo chain."""
    config = "demo/chain.yml"
    out = str(tmp_path / "chain")
    data = stand_in_data
    opts = _config_opts(config, data, out)
    # the chain's steps train on synthetic_a / synthetic_b: their stand-ins share the root
    cfg = load_config(os.path.join(REPO, "configs", config), opts)
    for name in ("synthetic_a", "synthetic_b"):
        data.root(cfg, [name])
    root_opts = data.root(cfg, ["synthetic_a", "synthetic_b"])[1]
    _run(
        _torchrun()
        + [
            "--standalone",
            "--nproc_per_node",
            "2",
            os.path.join(REPO, "tools", "transfer_chain.py"),
            "synthetic_a",
            "synthetic_b",
            "--config-file",
            os.path.join(REPO, "configs", config),
            *opts,
            *root_opts,
        ]
    )
    summary = open(os.path.join(out, "summary.md")).read()
    assert "synthetic_a" in summary and "synthetic_b" in summary


def _tensorboard_lrs(folder: str) -> dict:
    """``{global step: lr}`` from every event file of a run's ``tb/`` folder."""
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "tb", "events.*"))):
        acc = EventAccumulator(path)
        acc.Reload()
        if "lr" in acc.Tags()["scalars"]:  # a resume with nothing left to train logs none
            out.update({e.step: e.value for e in acc.Scalars("lr")})
    return out


def test_readme_train_resume_and_longer_schedule(stand_in_data, tmp_path):
    """README: train, ``--resume`` (finished: nothing retrained), then ``--resume`` with
    SOLVER.MAX_EPOCHS raised: the added epoch follows the new cosine schedule (was lr 0)."""
    config = "demo/ptl.yml"
    out = str(tmp_path / "ptl")
    opts = _config_opts(config, stand_in_data, out)
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "train_net.py"),
        "--config-file",
        os.path.join(REPO, "configs", config),
        "--no-progress",
    ]
    _run(cmd + opts)
    _run(cmd[:2] + ["--resume"] + cmd[2:] + opts)
    _run(cmd[:2] + ["--resume"] + cmd[2:] + opts + ["SOLVER.MAX_EPOCHS", "3"])
    log = open(os.path.join(out, "log.txt")).read()
    assert "SOLVER.MAX_EPOCHS (2 -> 3)" in log
    cfg = load_config(os.path.join(REPO, "configs", config), opts + ["SOLVER.MAX_EPOCHS", "3"])
    per_epoch = _one_process_iterations(config, opts)
    s = cfg.SOLVER
    f = LRFactor(per_epoch, 3, s.SCHEDULER, s.STEPS, s.GAMMA, s.WARMUP_EPOCHS, s.WARMUP_FACTOR)
    # the lr of epoch 3's first step, set on resume, is logged; TensorBoard's "lr" at step n is
    # the lr that global step n - 1 trained with (step 2 * per_epoch is the first run's last)
    resumed = re.findall(r"resumed from .* lr ([0-9.e+-]+)\)", log)[-1]
    assert s.SCHEDULER == "cosine" and float(resumed) > 0
    assert float(resumed) == pytest.approx(s.BASE_LR * f(2 * per_epoch), rel=1e-3)
    lrs = _tensorboard_lrs(out)
    added = range(2 * per_epoch + 1, 3 * per_epoch + 1)
    assert added and all(step in lrs for step in added)
    for step in added:
        assert lrs[step] > 0 and lrs[step] == pytest.approx(s.BASE_LR * f(step - 1), rel=1e-5)
    assert (
        torch.load(os.path.join(out, "checkpoint_0003.pth"), weights_only=True)["global_step"]
        == 3 * per_epoch
    )


def test_two_process_gloo_classification(stand_in_data, tmp_path):
    """TASK classification runs under torchrun like ReID (it used to refuse it): the same
    global batches as one process, rank 0 writes the results."""
    from reidbox.data import build_classification_sets, build_classification_train_loader

    config = "demo/cifar.yml"
    out = str(tmp_path / "out")
    opts = _config_opts(config, stand_in_data, out)
    _run(_torchrun_train(config) + opts)
    cfg = load_config(os.path.join(REPO, "configs", config), opts)
    train, _ = build_classification_sets(cfg)
    one = len(build_classification_train_loader(cfg, train.train))
    two = len(build_classification_train_loader(cfg, train.train, rank=1, world_size=2))
    assert one == two >= 1
    state = _checkpoint(out)
    assert state["global_step"] == 2 * one and state["epoch"] == 2
    import json

    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["world_size"] == 2 and metrics["task"] == "classification"
    assert 0 <= metrics["top1_error"] <= 1


def test_two_process_refusal_is_one_line_and_overwrite_trains(stand_in_data, tmp_path):
    """A torchrun job into a finished run's folder: rank 0's one ``error:`` line, the other rank
    stops with it (it used to run on into DDP and die with a gloo traceback); ``--overwrite``
    then trains there."""
    from reidbox.utils.checkpoint import atomic_save

    config = "demo/baseline.yml"
    out = str(tmp_path / "out")
    os.makedirs(out)
    atomic_save({"model": {}, "num_classes": 2}, os.path.join(out, "model_final.pth"))
    before = open(os.path.join(out, "model_final.pth"), "rb").read()
    cmd = _torchrun_train(config)
    opts = _config_opts(config, stand_in_data, out)
    p = subprocess.run(cmd + opts, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    errors = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("error: ")]
    assert p.returncode != 0 and len(errors) == 1, p.stdout[-3000:] + p.stderr[-3000:]
    assert "--overwrite" in errors[0] and "model_final.pth" in errors[0]
    assert "Connection closed" not in p.stderr and "gloo" not in p.stderr.lower()
    assert open(os.path.join(out, "model_final.pth"), "rb").read() == before
    _run(cmd + ["--overwrite"] + opts)
    assert _checkpoint(out)["epoch"] == 2
