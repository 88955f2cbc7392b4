"""Loss surface (Li et al. 2018): filter normalisation, BN/bias handling, eval-mode loss, tool."""

import os

import numpy as np
import pytest
import torch
from torch import nn

from reidbox.config import load_config
from reidbox.data.cifar_synthetic import generate_synthetic_cifar
from reidbox.engine import runner
from reidbox.modeling import build_model
from reidbox.visualization.loss_surface import (
    LossSurface,
    compute_loss_surface,
    evaluate_loss,
    load_surface,
    plot_surfaces,
    random_direction,
    save_surface,
)
from tests.conftest import NARROW_PTL, cifar_run, tiny_cifar_model


def _model(arch="ptl_classifier", cell="v2"):
    cfg = load_config(None, tiny_cifar_model(arch, cell, "[8]") + NARROW_PTL)
    torch.manual_seed(0)
    return build_model(cfg, num_classes=4)


def _batches(n=1, b=4):
    g = torch.Generator().manual_seed(5)
    return [
        (torch.randn(b, 3, 32, 32, generator=g), torch.randint(0, 4, (b,), generator=g))
        for _ in range(n)
    ]


def test_directions_are_filter_normalised_and_ignore_bias_and_bn():
    model = _model()
    d = random_direction(model, seed=3)
    assert len(d) == len(list(model.parameters()))
    checked = 0
    for (name, p), di in zip(model.named_parameters(), d):
        assert di.shape == p.shape
        if p.dim() <= 1:  # biases, BN weight and bias
            assert torch.count_nonzero(di) == 0, name
            continue
        torch.testing.assert_close(di.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
        checked += 1
    assert checked > 10
    assert all(torch.equal(a, b) for a, b in zip(d, random_direction(model, seed=3)))
    assert not torch.equal(d[0], random_direction(model, seed=4)[0])


def test_surface_centre_is_the_trained_loss_and_weights_are_restored():
    model = _model()
    batches = _batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    centre, _ = evaluate_loss(model, batches)
    s = compute_loss_surface(
        model, batches, [-0.5, 0.0, 0.5], [-0.5, 0.0, 0.5], seed=1, progress=False
    )
    assert s.loss.shape == (3, 3) and s.dim == 2
    assert s.loss[1, 1] == pytest.approx(centre, rel=1e-5)
    assert s.center_loss() == pytest.approx(centre, rel=1e-5)
    assert len(np.unique(np.round(s.loss, 6))) > 3  # the directions do change the loss
    after = model.state_dict()
    for k, v in before.items():  # weights and BN running statistics untouched
        assert torch.equal(v, after[k]), k
    line = compute_loss_surface(model, batches, [-0.5, 0.0, 0.5], seed=1, progress=False)
    np.testing.assert_allclose(line.loss, s.loss[1], rtol=1e-5)  # 1-D = the y = 0 row


def test_loss_is_evaluated_in_eval_mode_with_zero_ptl_state():
    model = _model()
    batches = _batches(1)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))  # leaves a carried latent state (and BN updates)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    a, _ = evaluate_loss(model, batches)
    assert not model.training
    model.ptl.reset_latent_state()
    model.load_state_dict(weights)
    b, _ = evaluate_loss(model, batches)
    assert a == pytest.approx(b, rel=1e-6)


def test_save_load_and_plot(tmp_path):
    x = np.linspace(-1, 1, 5)
    loss2 = np.add.outer(x**2, x**2) + 0.1
    surfaces = [
        LossSurface(f"run {k}", x, loss2 * (k + 1), np.ones_like(loss2), x, {"seed": 0})
        for k in range(2)
    ]
    paths = [save_surface(s, str(tmp_path / f"s{k}.npz")) for k, s in enumerate(surfaces)]
    loaded = [load_surface(p) for p in paths]
    assert loaded[1].label == "run 1" and loaded[1].meta == {"seed": "0"}
    np.testing.assert_array_equal(loaded[1].loss, surfaces[1].loss)
    fig = plot_surfaces(loaded, str(tmp_path / "two.png"))
    assert os.path.getsize(fig) > 10_000
    line = [LossSurface("a", x, x**2, np.ones(5)), LossSurface("b", x, 2 * x**2, np.ones(5))]
    assert os.path.getsize(plot_surfaces(line, str(tmp_path / "one.png"))) > 5_000
    with pytest.raises(ValueError, match="1-D and 2-D"):
        plot_surfaces([line[0], loaded[0]], str(tmp_path / "mixed.png"))


def test_non_classifier_is_rejected():
    class Features(nn.Module):
        def forward(self, x):
            return x  # (B, 3, H, W): not logits

    with pytest.raises(ValueError, match="logits"):
        evaluate_loss(Features(), _batches(1))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ls")
    generate_synthetic_cifar(str(root / "data"), "cifar10", train_per_class=4, test_per_class=1)
    runs = []
    for arch, cell in (("ptl_classifier", "v2"), ("classifier", "v1")):
        out = root / arch
        cfg = load_config(
            None,
            cifar_run(root / "data", out)
            + tiny_cifar_model(arch, cell, "[8]")
            + NARROW_PTL
            + [
                "SOLVER.IMS_PER_BATCH",
                "20",
                "SOLVER.MAX_EPOCHS",
                "1",
                "SOLVER.BASE_LR",
                "0.05",
                "INPUT.PADDING",
                "0",
                "INPUT.FLIP_PROB",
                "0.0",
            ],
        )
        runner.train(cfg, progress=False)
        runs.append(str(out))
    return runs, root


def test_tool_draws_two_runs_side_by_side_and_replots(two_runs, tmp_path, capsys):
    from tools.loss_surface import main

    runs, _ = two_runs
    out = tmp_path / "fig"
    args = [
        "--runs",
        *runs,
        "--labels",
        "D+PTL-v2",
        "D",
        "--out",
        str(out),
        "--points",
        "3",
        "--num-samples",
        "16",
        "--batch-size",
        "8",
        "--no-progress",
    ]
    assert main(args) == 0
    for name in ("D_PTL-v2_2d.npz", "D_2d.npz", "loss_surface_2d.png"):
        assert os.path.isfile(out / name), name
    s = load_surface(str(out / "D_2d.npz"))
    assert s.loss.shape == (3, 3) and s.meta["num_samples"] == "16"
    assert s.meta["arch"] == "classifier"
    os.remove(out / "loss_surface_2d.png")
    assert main(args + ["--replot"]) == 0  # from the .npz files, no model needed
    assert os.path.isfile(out / "loss_surface_2d.png")
    assert "figure:" in capsys.readouterr().out
    assert main(args[:-1] + ["--dim", "1", "--no-progress"]) == 0
    assert load_surface(str(out / "D_1d.npz")).loss.shape == (3,)


def test_contour_figure_has_a_colour_bar(tmp_path, monkeypatch):
    """The 2-D figure's contour levels are readable: one colour bar labelled with the loss."""
    import matplotlib.pyplot as plt

    figs = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figs.append(fig), close(fig)))
    x = np.linspace(-1, 1, 5)
    loss2 = np.add.outer(x**2, x**2) + 0.1
    surfaces = [
        LossSurface(f"run {k}", x, loss2 * (k + 1), np.ones_like(loss2), x) for k in range(2)
    ]
    plot_surfaces(surfaces, str(tmp_path / "two.png"), vmax=10.0)
    bars = [ax for ax in figs[0].axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    assert bars[0].get_ylabel() == "training loss (clipped at 10)"
