"""Circle, CosFace, ArcFace and center loss: value and gradient against the papers' formulas
written out element by element (loops over samples and pairs) on small float64 inputs."""

import math

import pytest
import torch

from reidbox.config import load_config
from reidbox.modeling import ModelOutput, build_model
from reidbox.modeling.losses import ArcFaceLoss, CenterLoss, CircleLoss, CosFaceLoss

TARGETS = torch.tensor([0, 0, 1, 1, 2, 1])


def _cosines(seed=0, n=6, classes=3):
    torch.manual_seed(seed)
    return (torch.rand(n, classes, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()


def _softmax_ce(logit_rows, targets):
    """-log softmax of the target, averaged, from python lists of 0-d tensors."""
    total = 0.0
    for row, y in zip(logit_rows, targets.tolist()):
        total = total - (row[y] - torch.logsumexp(torch.stack(row), 0))
    return total / len(logit_rows)


def _grad(value, x):
    (g,) = torch.autograd.grad(value, x)
    return g


def _check_against(loss, ours, rows, cos):
    """Value and gradient equal the direct formula's; the gradient also passes finite
    differences (torch.autograd.gradcheck)."""
    direct = _softmax_ce(rows, TARGETS)
    torch.testing.assert_close(ours, direct)
    torch.testing.assert_close(_grad(ours, cos), _grad(direct, cos))
    assert torch.autograd.gradcheck(
        lambda c: loss(ModelOutput(c, c, {"cosine_logits": True}), TARGETS), (cos,)
    )


@pytest.mark.parametrize("scale,margin", [(30.0, 0.35), (16.0, 0.1)])
def test_cosface_matches_the_formula(scale, margin):
    cos = _cosines()
    ours = CosFaceLoss(scale, margin)(ModelOutput(cos, cos, {"cosine_logits": True}), TARGETS)
    rows = [
        [scale * (cos[i, j] - (margin if j == y else 0.0)) for j in range(cos.shape[1])]
        for i, y in enumerate(TARGETS.tolist())
    ]
    _check_against(CosFaceLoss(scale, margin), ours, rows, cos)
    # the margin makes the task harder: the loss exceeds plain scaled softmax
    plain = CosFaceLoss(scale, 0.0)(ModelOutput(cos, cos, {"cosine_logits": True}), TARGETS)
    assert ours > plain


@pytest.mark.parametrize("margin", [0.5, 2.9])
def test_arcface_matches_the_formula(margin):
    scale = 30.0
    cos = _cosines(1)
    ours = ArcFaceLoss(scale, margin)(ModelOutput(cos, cos, {"cosine_logits": True}), TARGETS)
    rows = []
    for i, y in enumerate(TARGETS.tolist()):
        row = []
        for j in range(cos.shape[1]):
            c = cos[i, j]
            if j == y:
                theta = torch.acos(c)
                c = (
                    torch.cos(theta + margin)
                    if theta + margin <= math.pi
                    else c - margin * (math.sin(margin))
                )
            row.append(scale * c)
        rows.append(row)
    _check_against(ArcFaceLoss(scale, margin), ours, rows, cos)


def test_circle_matches_the_formula():
    m, gamma = 0.25, 32.0
    torch.manual_seed(2)
    feats = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    ours = CircleLoss(m, gamma)(ModelOutput(feats, None), TARGETS)
    unit = feats / feats.norm(dim=1, keepdim=True)
    per_anchor = []
    for i in range(len(TARGETS)):
        pos, neg = [], []
        for j in range(len(TARGETS)):
            if i == j:
                continue
            s = unit[i] @ unit[j]
            if TARGETS[i] == TARGETS[j]:  # the weight alpha is a constant: a python float
                pos.append(-gamma * max(1 + m - s.item(), 0.0) * (s - (1 - m)))
            else:
                neg.append(gamma * max(s.item() + m, 0.0) * (s - m))
        if pos and neg:
            sum_n = sum(torch.exp(x) for x in neg)
            sum_p = sum(torch.exp(x) for x in pos)
            per_anchor.append(torch.log(1 + sum_n * sum_p))
    direct = sum(per_anchor) / len(per_anchor)
    assert len(per_anchor) == 5  # the lone identity-2 image has no positive
    torch.testing.assert_close(ours, direct)
    torch.testing.assert_close(_grad(ours, feats), _grad(direct, feats))


def test_center_loss_value_gradient_and_center_update():
    torch.manual_seed(3)
    feats = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    loss = CenterLoss(alpha=0.5, num_classes=4).train()
    loss.centers = torch.randn(4, 4, dtype=torch.float64)
    before = loss.centers.clone()
    value = loss(ModelOutput(feats, None), TARGETS)
    direct = sum(0.5 * ((feats[i] - before[y]) ** 2).sum() for i, y in enumerate(TARGETS)) / 6
    torch.testing.assert_close(value, direct)
    expected_grad = (feats.detach() - before[TARGETS]) / 6
    torch.testing.assert_close(_grad(value, feats), expected_grad)
    # Wen et al.'s update: c_j -= alpha * sum_{y_i = j} (c_j - f_i) / (1 + n_j)
    for j in range(4):
        members = [i for i, y in enumerate(TARGETS.tolist()) if y == j]
        diff = sum((before[j] - feats[i].detach() for i in members), torch.zeros(4).double())
        want = before[j] - 0.5 * diff / (1 + len(members))
        torch.testing.assert_close(loss.centers[j], want)
    assert torch.equal(loss.centers[3], before[3])  # no sample of identity 3: unchanged
    # evaluation mode never moves the centers
    loss.eval()
    kept = loss.centers.clone()
    loss(ModelOutput(feats, None), TARGETS)
    assert torch.equal(loss.centers, kept)


def test_center_buffer_sizes_itself_and_loads_into_a_fresh_model(tmp_path):
    opts = ["MODEL.BACKBONE.NAME", "resnet18", "MODEL.LOSSES.NAMES", "['cross_entropy', 'center']"]
    cfg = load_config(None, opts)
    model = build_model(cfg, num_classes=3).train()
    assert tuple(model.losses["center"].centers.shape) == (3, 0)  # sized like a classifier
    model.compute_losses(model(torch.randn(4, 3, 64, 32)), torch.tensor([0, 0, 2, 2]))
    assert tuple(model.losses["center"].centers.shape) == (3, 512)
    assert model.losses["center"].centers[2].abs().sum() > 0
    path = tmp_path / "w.pth"
    torch.save({"model": model.state_dict()}, path)
    from reidbox.utils.checkpoint import load_model_weights

    fresh = build_model(cfg, num_classes=3)
    load_model_weights(fresh, str(path))
    assert torch.equal(fresh.losses["center"].centers, model.losses["center"].centers)
    # a transfer-chain step on other identities drops the centers with the classifier
    from reidbox.modeling.transfer import transfer_weights

    report = transfer_weights(cfg, str(path), 5, str(tmp_path / "init.pth"))
    assert "losses.center.centers" in report["skipped"]


def test_margin_losses_need_a_cosine_classifier():
    opts = ["MODEL.BACKBONE.NAME", "resnet18", "MODEL.LOSSES.NAMES", "['arcface']"]
    model = build_model(load_config(None, opts), num_classes=3).train()
    x, y = torch.randn(4, 3, 64, 32), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="MODEL.HEADS.CLS_LAYER cosine"):
        model.compute_losses(model(x), y)
    model = build_model(
        load_config(None, opts + ["MODEL.HEADS.CLS_LAYER", "cosine"]), num_classes=3
    ).train()
    out = model(x)
    assert out.logits.abs().max() <= 1.0 + 1e-6
    assert torch.isfinite(model.compute_losses(out, y)["arcface"])
