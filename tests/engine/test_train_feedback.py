"""What a run shows while it trains (log lines, TensorBoard, no bar debris) and how the loop
checks losses without waiting for the device every step."""

import os
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.engine.solver import build_optimizer
from reidbox.engine.trainer import HookBase, NonFiniteLossError, Trainer
from reidbox.registry import LOSSES
from reidbox.utils.checkpoint import load_file
from tests.conftest import TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Plain shuffling of the 36 tiny images in batches of 4: 9 iterations per epoch.
NINE_STEPS = ["DATALOADER.SAMPLER", "random", "SOLVER.IMS_PER_BATCH", "4"]


@LOSSES.register("nan_on_call")
class _NanOnCall(nn.Module):
    """Adds NaN on the ``bad``-th call (1-based), zero otherwise."""

    calls, bad = 0, 0

    def forward(self, output, targets):
        type(self).calls += 1
        x = output.features.sum() * 0
        return x + float("nan") if type(self).calls == type(self).bad else x


@pytest.mark.parametrize("log_period,last_good_step", [(4, 4), (1, 5)])
def test_nan_found_at_a_later_read_names_its_step_and_keeps_the_last_finite_state(
    tiny_opts, log_period, last_good_step
):
    # Step 5 (0-based; epoch 1, iteration 6) is bad; with LOG_PERIOD 4 the loop reads the loss
    # terms after steps 4 and 8, so the error comes at the second read and the state kept is
    # the one after 4 clean steps; with LOG_PERIOD 1 it is the state just before the bad step.
    _NanOnCall.calls, _NanOnCall.bad = 0, 6
    cfg = load_config(
        None,
        tiny_opts
        + NINE_STEPS
        + [
            "MODEL.LOSSES.NAMES",
            "['cross_entropy', 'nan_on_call']",
            "SOLVER.LOG_PERIOD",
            str(log_period),
        ],
    )
    with pytest.raises(NonFiniteLossError) as e:
        runner.train(cfg, progress=False)
    msg = str(e.value)
    assert "epoch 1, iteration 6 (global step 5)" in msg, msg
    assert "cross_entropy=" in msg and "nan_on_call=nan" in msg and "total=nan" in msg
    state = load_file(os.path.join(cfg.OUTPUT_DIR, "last_good.pth"))
    assert state["global_step"] == last_good_step
    assert state["epoch"] == 0  # no epoch completed yet
    for k, v in state["model"].items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k
    for s in state["optimizer"]["state"].values():
        for v in s.values():
            if torch.is_tensor(v) and v.is_floating_point():
                assert torch.isfinite(v).all()


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))

    def compute_losses(self, out, targets):
        return {"ce": nn.functional.cross_entropy(out, targets), "l2": out.pow(2).mean() * 0.01}


def test_steady_state_step_never_reads_a_tensor_on_the_host(monkeypatch):
    """Only ``read_losses`` (every log_period steps) may turn device values into Python ones."""
    torch.manual_seed(0)
    model = _Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0)
    loader = [
        {"images": torch.randn(4, 3, 8, 8), "targets": torch.tensor([0, 1, 2, 0])} for _ in range(7)
    ]
    trainer = Trainer(model, opt, sched, loader, 2, torch.device("cpu"), log_period=3)
    in_step = []
    syncs = []

    def guard(name):
        orig = getattr(torch.Tensor, name)

        def wrapped(self, *a, **k):
            if in_step:
                syncs.append(name)
            return orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        guard(name)
    run_step = trainer.run_step

    def watched(batch):
        in_step.append(1)
        try:
            run_step(batch)
        finally:
            in_step.clear()

    trainer.run_step = watched
    reads = []
    read = trainer.read_losses
    trainer.read_losses = lambda **kw: (reads.append(trainer.global_step), read(**kw))
    trainer.train()
    assert syncs == []
    assert reads[:4] == [3, 6, 7, 7]  # every 3 steps and at the epoch's end
    assert trainer.global_step == 14 and set(trainer.last_losses) == {"ce", "l2", "total"}
    assert [r.global_step for r in trainer.window] == [12, 13]


def test_log_lines_tensorboard_and_no_bar_debris(market_root, tmp_path):
    """A run whose output is not a terminal: fast-reid-style lines every LOG_PERIOD steps, a
    warm-up warning, no carriage returns, TensorBoard points for every step and every
    evaluation per test set."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "tools", "train_net.py"),
        *TINY_OPTS,
        "DATASETS.ROOT",
        market_root,
        "OUTPUT_DIR",
        str(out),
        *NINE_STEPS,
        "SOLVER.LOG_PERIOD",
        "4",
        "SOLVER.MAX_EPOCHS",
        "2",
        "SOLVER.WARMUP_EPOCHS",
        "2.5",
        "TEST.EVAL_PERIOD",
        "1",
    ]
    r = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\r" not in r.stdout and "\r" not in r.stderr
    log = (out / "log.txt").read_text()
    assert "\r" not in log
    assert "SOLVER.WARMUP_EPOCHS 2.5 >= SOLVER.MAX_EPOCHS 2" in log
    lines = [ln for ln in log.splitlines() if " img/s | data " in ln]
    iters = [re.search(r"epoch (\d)/2 iter (\d)/9 step (\d+)/18", ln).groups() for ln in lines]
    assert iters == [
        ("1", "4", "4"),
        ("1", "8", "8"),
        ("1", "9", "9"),
        ("2", "3", "12"),
        ("2", "7", "16"),
        ("2", "9", "18"),
    ]
    first = lines[0]
    for field in ("| total ", " cross_entropy ", "| lr ", " img/s |", "| data ", "| eta 0:"):
        assert field in first, (field, first)
    assert "max mem" not in first  # CUDA only
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in (
        "loss/total",
        "loss/cross_entropy",
        "lr",
        "train/images_per_s",
        "train/data_time_share",
    ):
        assert tag in tags, tag
    assert [e.step for e in acc.Scalars("loss/total")] == list(range(1, 19))
    for m in ("mAP", "rank1", "rank5", "rank10", "mINP"):
        points = acc.Scalars(f"eval/market1501/{m}")
        assert [e.step for e in points] == [9, 18], m  # after epoch 1 and at the end
        assert all(0 <= e.value <= 1 for e in points)


def test_short_run_still_writes_tensorboard_points(tiny_opts):
    cfg = load_config(None, tiny_opts + ["SOLVER.MAX_EPOCHS", "1"])  # 2 steps, LOG_PERIOD 20
    runner.train(cfg, progress=False)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(cfg.OUTPUT_DIR, "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2]
    assert len(acc.Scalars("eval/market1501/mAP")) == 1


def test_optimizer_impl_choices():
    model = nn.Linear(4, 2)
    assert build_optimizer(model, "SGD", 0.1, impl="fused").defaults["fused"] is True
    assert build_optimizer(model, "AdamW", 0.1, impl="foreach").defaults["foreach"] is True
    assert build_optimizer(model, "Adam", 0.1, impl="loop").defaults["foreach"] is False
    auto = build_optimizer(model, "SGD", 0.1).defaults  # CPU: torch's default, unchanged
    assert not auto.get("fused") and auto.get("foreach") is None
    with pytest.raises(KeyError, match="SOLVER.OPTIMIZER_IMPL"):
        build_optimizer(model, "SGD", 0.1, impl="fast")


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_fused_and_foreach_optimizers_match_the_per_parameter_loop(name):
    def run(impl):
        torch.manual_seed(0)
        m = _Tiny()
        opt = build_optimizer(m, name, 0.05, impl=impl)
        for _ in range(5):
            x = torch.randn(4, 3, 8, 8)
            loss = sum(m.compute_losses(m(x), torch.tensor([0, 1, 2, 0])).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.detach().clone() for p in m.parameters()]

    ref = run("loop")
    for impl in ("foreach", "fused"):
        for a, b in zip(ref, run(impl)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


class _VaryingTerms(_Tiny):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def compute_losses(self, out, targets):
        self.calls += 1
        losses = super().compute_losses(out, targets)
        return losses if self.calls % 3 else {"ce": losses["ce"]}


def test_loss_terms_that_change_between_steps_are_read_under_their_own_names():
    torch.manual_seed(0)
    model = _VaryingTerms()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [
        {"images": torch.randn(4, 3, 8, 8), "targets": torch.tensor([0, 1, 2, 0])} for _ in range(5)
    ]
    seen = []

    class Grab(HookBase):
        def after_step(self) -> None:
            if self.trainer.losses_read:
                seen.extend(sorted(r.losses) for r in self.trainer.window)

    Trainer(model, opt, None, loader, 1, torch.device("cpu"), [Grab()], log_period=10).train()
    assert seen == [["ce", "l2", "total"]] * 2 + [["ce", "total"]] + [["ce", "l2", "total"]] * 2
