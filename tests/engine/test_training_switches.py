"""SOLVER.FREEZE_BACKBONE_EPOCHS and SOLVER.CLIP_GRAD_NORM, on the Trainer with a tiny model."""

import torch
from torch import nn

from reidbox.config import load_config
from reidbox.engine.hooks import FreezeBackboneHook
from reidbox.engine.trainer import Trainer
from reidbox.modeling import build_model


def _model():
    torch.manual_seed(0)
    opts = ["MODEL.BACKBONE.NAME", "osnet_x0_25", "MODEL.LOSSES.NAMES", "['cross_entropy']"]
    return build_model(load_config(None, opts), num_classes=2)


def _batches(n=2):
    g = torch.Generator().manual_seed(1)
    return [
        {"images": torch.randn(4, 3, 32, 16, generator=g), "targets": torch.tensor([0, 0, 1, 1])}
        for _ in range(n)
    ]


def _state(module: nn.Module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_backbone_keeps_weights_and_statistics_then_trains():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    seen = []

    class Watch(FreezeBackboneHook):
        def after_epoch(self) -> None:
            seen.append((_state(model.backbone), _state(model.head)))

    trainer = Trainer(model, opt, None, _batches(1), 3, torch.device("cpu"), [Watch(2)])
    start = (_state(model.backbone), _state(model.head))
    trainer.train()
    (b1, h1), (b2, h2), (b3, h3) = seen
    for k in start[0]:  # weights and BN running statistics: untouched for two epochs
        assert torch.equal(b1[k], start[0][k]) and torch.equal(b2[k], start[0][k]), k
    assert any(not torch.equal(h1[k], start[1][k]) for k in h1)  # the head trains
    assert any(not torch.equal(b3[k], b2[k]) for k in b3 if "running" not in k)  # epoch 3
    assert any(not torch.equal(b3[k], b2[k]) for k in b3 if "running_mean" in k)
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_gradient_clipping_bounds_the_global_norm():
    norms = {}
    for clip in (0.0, 0.01):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)

        class Record(Trainer):
            def _clip(self) -> None:
                super()._clip()
                grads = [p.grad for p in self.model.parameters() if p.grad is not None]
                norms[self.clip_grad_norm] = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g) for g in grads])
                ).item()

        Record(model, opt, None, _batches(1), 1, torch.device("cpu"), clip_grad_norm=clip).train()
    assert norms[0.0] > 0.01  # unclipped, the gradient is larger than the bound ...
    assert abs(norms[0.01] - 0.01) < 1e-4  # ... and clipping scales it down to the bound
