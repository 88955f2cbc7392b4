"""Loss landscapes around trained weights (Li et al., "Visualizing the Loss Landscape of Neural
Nets", NeurIPS 2018), as the journal's Fig. 3 draws them for DenseNet-100 with/without PTL-v2.

Method (Li et al., Sec. 4): draw a random Gaussian direction ``d`` with the shapes of the
parameters and **filter-normalise** it: for every parameter with more than one dimension, each
slice along dimension 0 (a conv filter, a linear layer's neuron, a transposed conv's input
channel) is rescaled to the norm of the same slice of the trained weights,
``d_i <- d_i / ||d_i|| * ||theta_i||``. Parameters with one dimension (biases, batch-norm
scales and shifts) get a zero direction: Li et al.'s "ignore bias/BN" setting, since their
scale is what filter normalisation factors out. Batch-norm running statistics are not part of
the direction either; they stay at their trained values. The loss is then

    1-D:  f(a)    = L(theta + a * d1)
    2-D:  f(a, b) = L(theta + a * d1 + b * d2)          (d1, d2 from independent seeds)

on a fixed subset of the training set, without augmentation, with the model in **eval mode**:
BN uses its running statistics, dropout is off and PTL's BConv-Cells get a **zero latent
state** (the eval rule of the PTL branch), so the value depends only on the weights. ``L`` is
the mean cross-entropy of the eval-mode logits (classification meta-archs return logits in
eval). The same seeds are used for every run, so two runs' surfaces are drawn the same way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ..errors import InputError, MissingInputError
from ..utils.progress import progress as show_progress
from ..utils.run_folder import CONFIG_FILE, FINAL_WEIGHTS

Batches = List[Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LossSurface:
    """``loss``/``accuracy``: (len(x),) for 1-D, (len(y), len(x)) for 2-D (row = y)."""

    label: str
    x: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    y: Optional[np.ndarray] = None
    meta: Dict[str, object] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return 1 if self.y is None else 2

    def center_loss(self) -> float:
        """Loss at the trained weights (the grid point nearest the origin)."""
        ix = int(np.abs(self.x).argmin())
        if self.y is None:
            return float(self.loss[ix])
        return float(self.loss[int(np.abs(self.y).argmin()), ix])


def random_direction(model: nn.Module, seed: int) -> List[torch.Tensor]:
    """A filter-normalised Gaussian direction, one tensor per ``model.parameters()`` entry.

    Drawn on the CPU from ``seed`` (the same seed gives the same direction on any device);
    1-D parameters (biases, BN) get zeros.
    """
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for p in model.parameters():
        d = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        w = p.detach().float().cpu()
        if p.dim() <= 1:
            d.zero_()
        else:
            d_norm = d.flatten(1).norm(dim=1)  # per filter (slice along dim 0)
            w_norm = w.flatten(1).norm(dim=1)
            d.mul_((w_norm / (d_norm + 1e-10)).view(-1, *([1] * (p.dim() - 1))))
        out.append(d.to(device=p.device, dtype=p.dtype))
    return out


@torch.no_grad()
def evaluate_loss(model: nn.Module, batches: Batches) -> Tuple[float, float]:
    """Mean cross-entropy and accuracy of the eval-mode logits over ``batches``."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    for images, targets in batches:
        logits = model(images).float()  # (B, N)
        if logits.ndim != 2:
            raise InputError(
                "the loss surface needs a classifier whose eval forward returns "
                f"(B, num_classes) logits; got shape {tuple(logits.shape)}"
            )
        total += float(F.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(1) == targets).sum())
        n += targets.numel()
    return total / n, correct / n


@torch.no_grad()
def compute_loss_surface(
    model: nn.Module,
    batches: Batches,
    x: Sequence[float],
    y: Optional[Sequence[float]] = None,
    seed: int = 0,
    progress: bool = True,
    label: str = "",
) -> LossSurface:
    """f over the grid ``x`` (and ``y``): directions from ``seed`` (d1) and ``seed + 1`` (d2).

    The model's weights are restored afterwards (also on error); it is left in eval mode.
    """
    params = list(model.parameters())
    origin = [p.detach().clone() for p in params]
    d1 = random_direction(model, seed)
    d2 = random_direction(model, seed + 1) if y is not None else None
    xs = np.asarray(x, dtype=np.float64)
    ys = None if y is None else np.asarray(y, dtype=np.float64)
    points = [(j, i) for j in range(1 if ys is None else len(ys)) for i in range(len(xs))]
    shape = (len(xs),) if ys is None else (len(ys), len(xs))
    loss, acc = np.zeros(shape), np.zeros(shape)
    try:
        for j, i in show_progress(points, f"loss surface {label}".strip(), progress, unit="points"):
            a, b = xs[i], (0.0 if ys is None else ys[j])
            for k, p in enumerate(params):
                step = origin[k] + a * d1[k]
                if d2 is not None:
                    step = step + b * d2[k]
                p.copy_(step)
            idx = (i,) if ys is None else (j, i)
            loss[idx], acc[idx] = evaluate_loss(model, batches)
    finally:
        for p, o in zip(params, origin):
            p.copy_(o)
    return LossSurface(
        label,
        xs,
        loss,
        acc,
        ys,
        {"seed": seed, "ignore": "biasbn", "norm": "filter", "mode": "eval"},
    )


def save_surface(surface: LossSurface, path: str) -> str:
    """``.npz`` with x, (y), loss, accuracy, label and meta, so a plot can be redrawn."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    arrays = dict(
        x=surface.x,
        loss=surface.loss,
        accuracy=surface.accuracy,
        label=np.array(surface.label),
        meta_keys=np.array(list(surface.meta), dtype=str),
        meta_values=np.array([str(v) for v in surface.meta.values()], dtype=str),
    )
    if surface.y is not None:
        arrays["y"] = surface.y
    np.savez(path, **arrays)
    return path


def load_surface(path: str) -> LossSurface:
    with np.load(path, allow_pickle=False) as z:
        meta = dict(zip(z["meta_keys"].tolist(), z["meta_values"].tolist()))
        return LossSurface(
            str(z["label"]),
            z["x"],
            z["loss"],
            z["accuracy"],
            z["y"] if "y" in z.files else None,
            meta,
        )


def slug(label: str) -> str:
    """A file-name-safe version of a run label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"


def plot_surfaces(
    surfaces: Sequence[LossSurface], path: str, vmax: Optional[float] = 10.0, levels: int = 20
) -> str:
    """Draw runs side by side: 2-D contours with shared levels (one panel per run) plus, when
    the grid has y = 0, the 1-D slices together; 1-D surfaces as overlaid curves.

    ``vmax`` clips the loss axis and the top contour level (10, as Li et al.'s CIFAR plots:
    far from the minimum the loss explodes and would squeeze every level into the corners);
    None draws the full range.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not surfaces:
        raise InputError("no loss surfaces to plot")
    dims = {s.dim for s in surfaces}
    if len(dims) != 1:
        raise InputError("cannot plot 1-D and 2-D surfaces together; recompute with one --dim")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if dims == {1}:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        _plot_curves(ax, surfaces, vmax, with_centre=True)
        ax.set_xlabel("step along the filter-normalised direction")
        fig.tight_layout()
    else:
        fig = _plot_contours(plt, surfaces, vmax, levels)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_curves(ax, surfaces, vmax: Optional[float], with_centre: bool) -> None:
    """1-D losses as overlaid curves (the y = 0 row of a 2-D surface)."""
    for s in surfaces:
        loss = s.loss if s.dim == 1 else s.loss[int(np.abs(s.y).argmin())]
        label = f"{s.label} (train loss {s.center_loss():.3f})" if with_centre else s.label
        ax.plot(s.x, loss, label=label)
    ax.set_ylabel("training loss")
    if vmax is not None:
        ax.set_ylim(0, vmax)
    ax.legend(**({} if with_centre else {"fontsize": 8}))
    ax.grid(alpha=0.3)


def _plot_contours(plt, surfaces, vmax: Optional[float], levels: int):
    """One contour panel per run with shared levels and one colour bar, plus the slice panel."""
    lo = min(float(s.loss.min()) for s in surfaces)
    hi = max(float(s.loss.max()) for s in surfaces)
    hi = min(hi, vmax) if vmax is not None else hi
    lev = np.linspace(lo, max(hi, lo + 1e-6), levels)
    with_slice = all(np.isclose(s.y, 0).any() for s in surfaces)
    cols = len(surfaces) + int(with_slice)
    fig, axes = plt.subplots(
        1, cols, figsize=(4.6 * cols + 0.8, 4.2), squeeze=False, layout="constrained"
    )
    axes = axes[0]
    cs = None
    for ax, s in zip(axes, surfaces):
        cs = ax.contour(s.x, s.y, s.loss, levels=lev, cmap="viridis")
        ax.clabel(cs, cs.levels[::3], inline=True, fontsize=7, fmt="%.2f")
        ax.plot([0], [0], "r+", markersize=10)
        ax.set_title(f"{s.label}\ncentre loss {s.center_loss():.3f}", fontsize=10)
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax.set_aspect("equal")
    # one colour bar for every contour panel: they share the levels
    fig.colorbar(
        cs,
        ax=list(axes[: len(surfaces)]),
        shrink=0.85,
        label="training loss" + (f" (clipped at {vmax:g})" if vmax else ""),
    )
    if with_slice:
        _plot_curves(axes[-1], surfaces, vmax, with_centre=False)
        axes[-1].set_title("1-D slice (direction 2 = 0)", fontsize=10)
        axes[-1].set_xlabel("direction 1")
    return fig


# --------------------------------------------------------------------------- trained runs
def load_run(
    run_dir: str, opts: Sequence[str] = (), weights: Optional[str] = None, device: str = "cpu"
):
    """(cfg, model in eval mode) of a classification run folder (``config.yaml`` and
    ``model_final.pth``, or ``weights``); ``opts`` override the run's config (e.g. the
    datasets root)."""
    from ..config import load_config
    from ..modeling import build_inference_model
    from ..utils.misc import resolve_device

    cfg_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(cfg_path):
        raise MissingInputError(f"{run_dir} is not a run folder: no config.yaml in it")
    cfg = load_config(cfg_path, list(opts))
    if cfg.TASK != "classification":
        raise InputError(
            f"{run_dir}: TASK is {cfg.TASK!r}; the loss surface needs a "
            "classification run (its loss is the classifier's cross-entropy)"
        )
    weights = weights or os.path.join(run_dir, FINAL_WEIGHTS)
    if not os.path.isfile(weights):
        raise MissingInputError(
            f"{weights} not found: train the run to the end first, or pass "
            "the weights file explicitly"
        )
    model = build_inference_model(cfg, weights, resolve_device(device), classifier=True)
    return cfg, model


def training_subset(
    cfg, num_samples: int, batch_size: int, device: torch.device, seed: int = 0
) -> Batches:
    """``num_samples`` training images (a seeded random subset, the same for every run with
    the same data), test-time transforms (no augmentation), as device tensors."""
    from ..data import ArrayImageDataset, ArraySplit
    from ..data import build_classification_sets, classification_transforms

    train, _ = build_classification_sets(cfg)
    split = train.train
    n = len(split)
    idx = np.sort(np.random.default_rng(seed).permutation(n)[: min(num_samples, n)])
    sub = ArraySplit(split.images[idx], split.labels[idx])
    ds = ArrayImageDataset(sub, classification_transforms(cfg, sub, is_train=False))
    batches: Batches = []
    for start in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
        images = torch.stack([it["images"] for it in items]).to(device)
        targets = torch.tensor([it["targets"] for it in items], device=device)
        batches.append((images, targets))
    return batches


def surface_for_run(
    run_dir: str,
    label: str,
    x: Sequence[float],
    y: Optional[Sequence[float]] = None,
    num_samples: int = 5000,
    batch_size: int = 500,
    seed: int = 0,
    device: str = "cpu",
    opts: Sequence[str] = (),
    progress: bool = True,
) -> LossSurface:
    """Load a run, take the training subset, compute its surface (meta records the run)."""
    cfg, model = load_run(run_dir, opts, device=device)
    dev = next(model.parameters()).device
    batches = training_subset(cfg, num_samples, batch_size, dev, seed)
    s = compute_loss_surface(model, batches, x, y, seed=seed, progress=progress, label=label)
    s.meta.update(
        run=os.path.abspath(run_dir),
        num_samples=sum(len(t) for _, t in batches),
        dataset=cfg.DATASETS.TRAIN[0],
        arch=cfg.MODEL.META_ARCHITECTURE,
        backbone=cfg.MODEL.BACKBONE.NAME,
    )
    return s


def loss_surfaces(
    run_dirs: Sequence[str],
    labels: Sequence[str],
    out_dir: str,
    dim: int = 2,
    span: Tuple[float, float] = (-1.0, 1.0),
    points: int = 21,
    num_samples: int = 5000,
    batch_size: int = 500,
    seed: int = 0,
    device: str = "cpu",
    opts: Sequence[str] = (),
    replot: bool = False,
    vmax: Optional[float] = 10.0,
    progress: bool = True,
) -> Dict[str, object]:
    """Compute (or with ``replot`` reload) each run's surface into ``out_dir/<label>.npz``
    and draw them side by side into ``out_dir/loss_surface_{dim}d.png``."""
    if len(labels) != len(run_dirs):
        raise InputError(f"{len(run_dirs)} runs but {len(labels)} labels")
    if dim not in (1, 2):
        raise InputError(f"dim must be 1 or 2, got {dim}")
    if points < 2:
        raise InputError(f"points must be >= 2, got {points}")
    grid = np.linspace(span[0], span[1], points)
    surfaces = []
    for run, label in zip(run_dirs, labels):
        npz = os.path.join(out_dir, f"{slug(label)}_{dim}d.npz")
        if replot:
            if not os.path.isfile(npz):
                raise MissingInputError(f"{npz} not found: compute it first (without --replot)")
            surfaces.append(load_surface(npz))
            continue
        s = surface_for_run(
            run,
            label,
            grid,
            grid if dim == 2 else None,
            num_samples,
            batch_size,
            seed,
            device,
            opts,
            progress,
        )
        save_surface(s, npz)
        surfaces.append(s)
    figure = plot_surfaces(surfaces, os.path.join(out_dir, f"loss_surface_{dim}d.png"), vmax)
    return {"figure": figure, "surfaces": surfaces}


__all__ = [
    "LossSurface",
    "compute_loss_surface",
    "evaluate_loss",
    "load_run",
    "load_surface",
    "loss_surfaces",
    "plot_surfaces",
    "random_direction",
    "save_surface",
    "slug",
    "surface_for_run",
    "training_subset",
]
