"""MODEL.COMPILE: the compiled training step carries PTL's latent state like eager code, across
the partial last batch of an epoch and the epoch's reset."""

import pytest
import torch
from torch import nn

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.engine.trainer import HookBase, Trainer
from reidbox.modeling.ptl import PTLBranch


class _Losses(HookBase):
    def __init__(self) -> None:
        self.steps = []

    def after_step(self) -> None:
        if self.trainer.losses_read:
            self.steps += [(r.batch_size, r.losses["total"]) for r in self.trainer.window]


def _run(tiny_opts, tmp_path, mode):
    # BASE_LR 0: the weights never change, so every step's loss depends only on the batch and
    # the carried latent state (the P x K sampler tops its last batch up: two batches of 8).
    cfg = load_config(
        None,
        tiny_opts[:-1]
        + [
            str(tmp_path / (mode or "eager")),
            "MODEL.META_ARCHITECTURE",
            "ptl",
            "SOLVER.BASE_LR",
            "0.0",
            "SOLVER.LOG_PERIOD",
            "1",
            "MODEL.COMPILE",
            mode,
        ],
    )
    hook = _Losses()
    runner.train(cfg, extra_hooks=[hook], progress=False)
    return hook.steps


@pytest.mark.slow
def test_compiled_ptl_step_carries_state_like_eager(tiny_opts, tmp_path):
    eager = _run(tiny_opts, tmp_path, "")
    assert [b for b, _ in eager] == [8, 8, 8, 8]
    assert eager[1][1] != eager[3][1] or eager[0][1] != eager[2][1]  # the batches differ
    compiled = _run(tiny_opts, tmp_path, "aot_eager")
    assert [b for b, _ in compiled] == [8, 8, 8, 8]
    for (_, a), (_, b) in zip(eager, compiled):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (eager, compiled)


class _TinyPTL(nn.Module):
    """Two conv stages and a PTL side network: the carried-state path at toy cost."""

    def __init__(self) -> None:
        super().__init__()
        self.s1 = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU())
        self.s2 = nn.Sequential(nn.Conv2d(4, 8, 3, 2, 1), nn.ReLU())
        self.ptl = PTLBranch([(4, 2)], [4], cell_channels=[2, 3], fuse_channels=[4])
        self.fc = nn.Linear(8 + 3, 3)

    def forward(self, x):
        t1 = self.s1(x)
        (y,) = self.ptl(x, [t1])
        f = torch.cat([self.s2(t1).mean((2, 3)), y.mean((2, 3))], 1)
        return self.fc(f)

    def compute_losses(self, out, targets):
        return {"ce": nn.functional.cross_entropy(out, targets)}


@pytest.mark.slow
def test_inductor_compiled_step_matches_eager_with_partial_batches():
    def run(mode):
        torch.manual_seed(0)
        model = _TinyPTL()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        g = torch.Generator().manual_seed(1)
        loader = [
            {"images": torch.randn(b, 3, 8, 8, generator=g), "targets": torch.arange(b) % 3}
            for b in (6, 6, 2)
        ]
        hook = _Losses()

        class Reset(HookBase):
            def before_epoch(self) -> None:
                model.ptl.reset_latent_state()

        trainer = Trainer(
            model,
            opt,
            None,
            loader,
            2,
            torch.device("cpu"),
            [Reset(), hook],
            log_period=1,
            compile=mode,
        )
        trainer.train()
        return hook.steps

    eager, compiled = run(""), run("default")
    assert [b for b, _ in compiled] == [6, 6, 2] * 2
    for (_, a), (_, b) in zip(eager, compiled):
        assert abs(a - b) <= 1e-5, (eager, compiled)
