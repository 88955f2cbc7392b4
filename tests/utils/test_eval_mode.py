"""``eval_mode``: the one "eval for a block, then restore" helper of the package."""

import pytest
import torch
from torch import nn

from reidbox.utils.misc import eval_mode


def _student_with_frozen_teacher() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model.teacher = nn.Linear(2, 2)
    model.train()
    model.teacher.eval()  # a frozen part that stays in eval while the rest trains
    return model


def test_every_submodule_gets_its_own_mode_back():
    model = _student_with_frozen_teacher()
    before = {n: m.training for n, m in model.named_modules()}
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    # model.train(was) (the pattern this replaces) would have put the teacher in train mode
    assert {n: m.training for n, m in model.named_modules()} == before
    assert model.training and not model.teacher.training


def test_several_modules_and_an_exception():
    a, b = nn.Linear(1, 1), nn.Dropout()
    b.eval()
    with pytest.raises(RuntimeError), eval_mode(a, b):
        assert not a.training and not b.training
        raise RuntimeError("boom")
    assert a.training and not b.training


def test_gradients_untouched():
    lin = nn.Linear(2, 1)
    with eval_mode(lin):
        lin(torch.ones(1, 2)).sum().backward()
    assert lin.weight.grad is not None
