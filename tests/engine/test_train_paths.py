"""Training paths a researcher runs (issue 11): batches that never depend on N mod batch, DDP
sharding of the random sampler, resume with a changed config, device checks.

Fast: the tiny Market tree (36 train images, 6 identities) and ResNet-18 at 32x16.
"""

import os
import runpy
from collections import Counter

import pytest
import torch

from reidbox.config import ConfigError, load_config
from reidbox.data import PKBatchSampler, build_train_loader, build_train_set
from reidbox.data.build import check_train_batch
from reidbox.engine import runner
from reidbox.engine.solver import LRFactor
from reidbox.engine.trainer import HookBase
from reidbox.utils import distributed as du

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _opts(tiny_opts, *extra):
    return list(tiny_opts) + list(extra)


def _loader_batches(cfg, rank=0, world=1, epoch=0):
    loader = build_train_loader(cfg, build_train_set(cfg).train, rank=rank, world_size=world)
    sampler = loader.batch_sampler
    inner = getattr(sampler, "sampler", None)
    for s in (sampler, inner):
        if hasattr(s, "set_epoch"):
            s.set_epoch(epoch)
    return loader, [list(b) for b in sampler]


# ------------------------------------------------------------------------------ batches
def test_random_sampler_full_batches_for_any_set_size(tiny_opts):
    """36 images, batch 35: the old loader ended every epoch with a batch of one image (BN
    crash); now only full batches, one permutation per epoch seeded by SEED + epoch."""
    cfg = load_config(
        None, _opts(tiny_opts, "DATALOADER.SAMPLER", "random", "SOLVER.IMS_PER_BATCH", "35")
    )
    loader, batches = _loader_batches(cfg)
    assert len(loader) == len(batches) == 1 and [len(b) for b in batches] == [35]
    _, again = _loader_batches(cfg)
    _, other = _loader_batches(cfg, epoch=1)
    assert again == batches and other != batches


def test_random_sampler_shards_one_permutation_over_ranks(tiny_opts):
    """DDP: the ranks' batches of step i are disjoint and together are the 1-process batch i;
    so N ranks run the iterations one process would (the old RandomSampler ignored ranks)."""
    cfg = load_config(
        None, _opts(tiny_opts, "DATALOADER.SAMPLER", "random", "SOLVER.IMS_PER_BATCH", "10")
    )  # 36 = 3 x 10 + 6
    one_loader, one = _loader_batches(cfg, epoch=3)
    ranks = [_loader_batches(cfg, rank=r, world=2, epoch=3) for r in range(2)]
    assert len(one) == len(one_loader) == 3
    for loader, batches in ranks:
        assert len(loader) == len(batches) == 3 and all(len(b) == 5 for b in batches)
    for i, full in enumerate(one):
        a, b = ranks[0][1][i], ranks[1][1][i]
        assert not set(a) & set(b) and sorted(a + b) == sorted(full)


def test_pk_sampler_never_yields_a_short_batch():
    """7 identities, P=3, K=1: the old last batch held one identity = one image (BN crash)."""
    pids = [p for p in range(7) for _ in range(3)]
    for world in (1, 2):  # global P=4, K=1: 4 + 3 identities, the last topped up
        samplers = [
            PKBatchSampler(pids, 4 // world, 1, seed=0, rank=r, world_size=world)
            for r in range(world)
        ]
        for s in samplers:
            s.set_epoch(1)
        per_rank = [list(s) for s in samplers]
        assert all(len(b) == 4 // world for bs in per_rank for b in bs)
        glob = [sum(step, []) for step in zip(*per_rank)]
        assert len(glob) == len(samplers[0]) == 2  # ceil(7 / 4): every identity seen
        assert {pids[i] for b in glob for i in b} == set(range(7))
    k1 = PKBatchSampler(pids, 3, 1, seed=2)
    assert [len(b) for b in k1] == [3, 3, 3]
    assert all(len(Counter(pids[i] for i in b)) == 3 for b in k1)  # no identity twice


def test_k_check_applies_only_to_the_pk_sampler():
    """configs/market1501/d161_b90.yml: batch 90, random shuffling, K=4 is irrelevant."""
    assert check_train_batch(90, 4, "random") == 90
    assert check_train_batch(90, 4, "random", world_size=2) == 45
    with pytest.raises(ValueError, match="NUM_INSTANCES"):
        check_train_batch(90, 4, "pk")
    with pytest.raises(ValueError, match="BatchNorm"):
        check_train_batch(2, 1, "random", world_size=2)
    with pytest.raises(ValueError, match="split evenly"):
        check_train_batch(9, 1, "random", world_size=2)


@pytest.mark.parametrize("sampler,batch,k", [("random", 35, 4), ("pk", 5, 1)])
def test_ptl_trains_when_the_last_batch_would_hold_one_image(tiny_opts, sampler, batch, k):
    """End to end (PTL, per-sample latent state): 36 images by 35 (random, K=4 does not divide
    it) and 6 identities by P=5 with K=1 (pk) used to end the epoch with a 1-image batch."""
    cfg = load_config(
        None,
        _opts(
            tiny_opts,
            "MODEL.META_ARCHITECTURE",
            "ptl",
            "DATALOADER.SAMPLER",
            sampler,
            "SOLVER.IMS_PER_BATCH",
            str(batch),
            "DATALOADER.NUM_INSTANCES",
            str(k),
            "SOLVER.MAX_EPOCHS",
            "1",
            "MODEL.HEADS.PAPER.FEAT_DIM",
            "32",
            "MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN",
            "[32]",
        ),
    )
    sizes = []

    class Sizes(HookBase):
        def after_step(self):
            sizes.append(self.trainer.last_batch_size)

    record = runner.train(cfg, progress=False, extra_hooks=[Sizes()])
    assert sizes and set(sizes) == {batch} and 0 <= record["mAP"] <= 1


# ------------------------------------------------------------------------------ resume
class _LRs(HookBase):
    def __init__(self):
        self.lrs = {}

    def before_step(self):
        t = self.trainer
        self.lrs[t.global_step] = t.optimizer.param_groups[0]["lr"]


def test_resume_with_max_epochs_raised_follows_the_new_schedule(tiny_opts):
    """The checkpoint's scheduler state used to override the new config: with a cosine schedule
    the added epochs trained at lr 0.0 on every step, silently."""
    sched = ["SOLVER.SCHEDULER", "cosine", "SOLVER.BASE_LR", "0.01", "SOLVER.MAX_EPOCHS"]
    first = load_config(None, _opts(tiny_opts, *sched, "2"))
    runner.train(first, progress=False)
    rec = _LRs()
    more = load_config(None, _opts(tiny_opts, *sched, "4"))
    runner.train(more, resume=True, progress=False, extra_hooks=[rec])
    loader, _ = _loader_batches(more)
    per_epoch = len(loader)
    f = LRFactor(per_epoch, 4, "cosine")
    steps = sorted(rec.lrs)
    assert steps[0] == 2 * per_epoch and len(steps) == 2 * per_epoch  # epochs 3 and 4 only
    for step in steps:
        assert rec.lrs[step] > 0
        assert rec.lrs[step] == pytest.approx(0.01 * f(step), rel=1e-12)
    log = open(os.path.join(more.OUTPUT_DIR, "log.txt")).read()
    assert "SOLVER.MAX_EPOCHS (2 -> 4)" in log


def _train_net(argv, capsys):
    import sys

    old = sys.argv
    sys.argv = ["train_net.py", "--no-progress", *argv]
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(os.path.join(ROOT, "tools", "train_net.py"), run_name="__main__")
    finally:
        sys.argv = old
    return e.value.code, capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_another_config(tiny_opts, capsys):
    """A changed key that changes the run (here the batch and the backbone's last stride) is
    refused in one line naming the keys and the option; nothing in the folder changes."""
    opts = _opts(tiny_opts, "SOLVER.MAX_EPOCHS", "1")
    runner.train(load_config(None, opts), progress=False)
    out = load_config(None, opts).OUTPUT_DIR
    before = {
        n: open(os.path.join(out, n), "rb").read()
        for n in sorted(os.listdir(out))
        if os.path.isfile(os.path.join(out, n))
    }
    changed = opts + [
        "SOLVER.IMS_PER_BATCH",
        "12",
        "MODEL.BACKBONE.LAST_STRIDE",
        "2",
        "SOLVER.MAX_EPOCHS",
        "2",
    ]
    code, err = _train_net(["--resume", *changed], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    for needle in (
        "SOLVER.IMS_PER_BATCH (8 -> 12)",
        "MODEL.BACKBONE.LAST_STRIDE (1 -> 2)",
        "--resume-force",
    ):
        assert needle in lines[0]
    assert "MAX_EPOCHS" not in lines[0]  # a schedule change is not a reason to refuse
    after = {n: open(os.path.join(out, n), "rb").read() for n in before}
    assert after == before
    # the option that allows it: the new config's optimizer settings then apply
    rec = _LRs()
    cfg = load_config(None, opts + ["SOLVER.WEIGHT_DECAY", "0.001", "SOLVER.MAX_EPOCHS", "2"])
    with pytest.raises(ConfigError, match="SOLVER.WEIGHT_DECAY"):
        runner.train(cfg, resume=True, progress=False)
    runner.train(cfg, resume=True, force_resume=True, progress=False, extra_hooks=[rec])
    assert min(rec.lrs) > 0  # resumed, not restarted
    # a checkpoint that records no config belongs to no known run
    ckpt = sorted(p for p in os.listdir(out) if p.startswith("checkpoint_"))[-1]
    state = torch.load(os.path.join(out, ckpt), weights_only=True)
    del state["config"]
    torch.save(state, os.path.join(out, ckpt))
    with pytest.raises(ConfigError, match="records no config"):
        runner.train(
            load_config(None, opts + ["SOLVER.MAX_EPOCHS", "3"]), resume=True, progress=False
        )


def test_resume_without_a_readable_checkpoint_keeps_a_finished_runs_results(tiny_opts, capsys):
    """A finished run whose only checkpoint is corrupt: resuming would train from random
    weights and remove the run's results when it starts; it is refused in one line and the
    folder is left as it was."""
    opts = _opts(tiny_opts, "SOLVER.MAX_EPOCHS", "1")
    runner.train(load_config(None, opts), progress=False)
    out = load_config(None, opts).OUTPUT_DIR
    (ckpt,) = [p for p in os.listdir(out) if p.startswith("checkpoint_")]
    with open(os.path.join(out, ckpt), "r+b") as f:
        f.truncate(1000)
    before = {
        n: open(os.path.join(out, n), "rb").read() for n in ("model_final.pth", "metrics.json")
    }
    code, err = _train_net(["--resume", *opts, "SOLVER.MAX_EPOCHS", "2"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and "no readable checkpoint" in lines[-1] and "--overwrite" in lines[-1], err
    after = {n: open(os.path.join(out, n), "rb").read() for n in before}
    assert after == before


def test_fewer_epochs_than_were_trained_are_refused_even_forced(tiny_opts):
    """A forced resume with SOLVER.MAX_EPOCHS below the epochs done recorded the run as the
    shorter one although its weights had trained more."""
    opts = _opts(tiny_opts, "SOLVER.MAX_EPOCHS", "2")
    runner.train(load_config(None, opts), progress=False)
    fewer = load_config(None, opts + ["SOLVER.MAX_EPOCHS", "1"])
    for force in (False, True):
        with pytest.raises(ConfigError, match="2 epochs done but SOLVER.MAX_EPOCHS is 1"):
            runner.train(fewer, resume=True, force_resume=force, progress=False)
    assert os.path.isfile(os.path.join(fewer.OUTPUT_DIR, "model_final.pth"))


# ------------------------------------------------------------------------------ devices
def test_device_cuda_without_gpu_is_one_line(tiny_opts, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _train_net([*tiny_opts, "DEVICE", "cuda"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "DEVICE cpu" in lines[0], err
    assert not os.path.exists(load_config(None, tiny_opts).OUTPUT_DIR)  # nothing written


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_more_ranks_than_gpus_is_one_line(tiny_opts, capsys, monkeypatch, device):
    """torchrun --nproc_per_node 2 on a one-GPU machine: was 'invalid device ordinal'."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for k, v in dict(WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", RANK="1", LOCAL_RANK="1").items():
        monkeypatch.setenv(k, v)
    code, err = _train_net([*tiny_opts, "DEVICE", device], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "--nproc_per_node 1" in lines[0] and "gloo (DEVICE cpu)" in lines[0]
    assert not du.is_distributed()


def test_device_checks_pass_what_works(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert du.check_distributed_device("cpu", 2) is False
    assert du.check_distributed_device("auto", 2) is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert du.check_distributed_device("cuda", 2) is True
    assert du.check_distributed_device("cpu", 2) is False
    from reidbox.utils.misc import resolve_device

    with pytest.raises(ValueError, match="2 GPU"):
        resolve_device("cuda:2")
