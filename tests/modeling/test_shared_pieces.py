"""Pieces that exist once and serve several components: CE and the last-stride option."""

import pytest
import torch

from reidbox.modeling.backbones import build_backbone
from reidbox.modeling.losses import CrossEntropyLoss, STDLoss
from reidbox.modeling.output import ModelOutput


def test_std_ce_term_is_the_cross_entropy_loss():
    torch.manual_seed(0)
    targets = torch.tensor([0, 1, 2, 1])
    for logits in (torch.randn(4, 3), [torch.randn(4, 3), torch.randn(4, 3)]):
        out = ModelOutput(features=torch.randn(4, 5), logits=logits)
        for eps in (0.0, 0.1):
            ce = CrossEntropyLoss(epsilon=eps)(out, targets)
            std = STDLoss(lam=0.0, epsilon=eps)(out, targets)
            torch.testing.assert_close(std, ce, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "densenet10_cifar"])
def test_last_stride_other_than_1_or_2_is_refused_by_every_family(name):
    # resnet18 / densenet121 used to take 3 (or 0) silently as "not 1", i.e. the stride-2 net
    with pytest.raises(ValueError, match=r"last stride must be 1 or 2, got 3 .*LAST_STRIDE"):
        build_backbone(name, last_stride=3)


@pytest.mark.parametrize(
    "name,size,full", [("resnet18", 64, 32), ("densenet121", 64, 32), ("densenet10_cifar", 32, 4)]
)
def test_last_stride_one_halves_only_the_last_stage(name, size, full):
    strides = {}
    for ls in (1, 2):
        b = build_backbone(name, last_stride=ls)
        strides[ls] = [s.stride for s in b.stage_specs]
        assert b(torch.zeros(1, 3, size, size)).shape[-1] == size // strides[ls][-1]
    assert strides[2][-1] == full and strides[1][-1] == full // 2
    assert strides[1][:-1] == strides[2][:-1]
