"""Plots written as PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Sequence
from ..errors import InputError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cmc_floor(values: Sequence[float]) -> float:
    """Bottom of the y axis: 10 points below the lowest value shown, in steps of 10, so the
    useful range is not squeezed against 0-100."""
    return max(0.0, 10.0 * math.floor((min(values) - 10.0) / 10.0))


def plot_cmc_curves(
    curves: Mapping[str, Sequence[float]],
    path: str,
    title: str = "CMC",
    subtitle: str = "",
    max_rank: int = 20,
) -> str:
    """CMC curves (fractions) at ranks 1..``max_rank``, one line per label, on one figure: the
    comparison every paper shows. The y axis starts just below the lowest point; one curve
    has its rank-1/5/10 values written beside the points, several name them in the legend."""
    curves = {k: list(v) for k, v in curves.items() if len(v)}
    if not curves:
        raise InputError("plot_cmc: empty CMC list (no valid query?)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6 if len(curves) == 1 else 7, 4), dpi=100)
    shown: List[float] = []
    for label, cmc in curves.items():
        ranks = list(range(1, min(len(cmc), max_rank) + 1))
        values = [100 * float(c) for c in cmc[: len(ranks)]]
        shown += values
        name = label if len(curves) == 1 else f"{label} (R1 {values[0]:.1f}%)"
        ax.plot(ranks, values, marker="o", markersize=3, label=name)
        if len(curves) == 1:
            for k in (1, 5, 10):
                if k <= len(values):
                    ax.annotate(
                        f"{values[k - 1]:.1f}",
                        (k, values[k - 1]),
                        textcoords="offset points",
                        xytext=(4, -12),
                        fontsize=8,
                    )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # ranks are whole numbers
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(_cmc_floor(shown), 100.5)
    longest = max(min(len(c), max_rank) for c in curves.values())
    ax.set_xlim(1, max(longest, 2))
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_cmc(
    cmc: Sequence[float], path: str, title: str = "", max_rank: int = 50, subtitle: str = ""
) -> str:
    """One CMC curve: matching rate (%) at ranks 1..``max_rank`` (``cmc`` holds fractions)."""
    if not len(cmc):
        raise ValueError("plot_cmc: empty CMC list (no valid query?)")
    return plot_cmc_curves({"": cmc}, path, title or "CMC", subtitle, max_rank)


def plot_chain(rows: Sequence[Mapping[str, Any]], tests: Sequence[str], path: str) -> str:
    """mAP (%) per chain step, one line per test set (a set appears from the step that adds it).

    ``rows``: summary rows with ``name`` and ``"<test> mAP"`` entries (see engine.chain).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(rows) + 2), 3.6), dpi=100)
    xs = list(range(1, len(rows) + 1))
    for t in tests:
        pts = [(x, r[f"{t} mAP"]) for x, r in zip(xs, rows) if r.get(f"{t} mAP", "") != ""]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=t)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{i}. {r['name']}" for i, r in zip(xs, rows)], rotation=15, fontsize=8)
    for t in tests:  # the value at each point: the table's numbers, readable on the figure
        for x, r in zip(xs, rows):
            v = r.get(f"{t} mAP", "")
            if v != "":
                ax.annotate(
                    f"{float(v):.1f}",
                    (x, v),
                    textcoords="offset points",
                    xytext=(0, 5),
                    ha="center",
                    fontsize=7,
                )
    ax.set_ylim(0, 105)  # from 0: the height of a line is its mAP
    ax.set_xlabel("after fine-tuning step")
    ax.set_ylabel("mAP (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="test set", title_fontsize=8)
    ax.set_title("Transfer chain: mAP per step per test set")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def plot_all_cmc(
    results: Dict[str, Any], output_dir: str, model: str = "", settings: str = ""
) -> Dict[str, str]:
    """``cmc_<testset>.png`` for every evaluated set (``results``: name -> Metrics), titled
    with the test set, the ``model`` and mAP, and the evaluation ``settings`` beneath."""
    out = {}
    for name, m in results.items():
        if len(m.cmc):
            what = f"{model} on {name}" if model else name
            out[name] = plot_cmc(
                m.cmc,
                os.path.join(output_dir, f"cmc_{safe_name(name)}.png"),
                title=f"CMC: {what} (mAP {100 * m.mAP:.1f}%)",
                max_rank=20,
                subtitle=settings,
            )
    return out


def plot_paired(result: Mapping[str, Any], path: str) -> str:
    """A paired comparison (``reidbox.engine.compare``): per metric, each seed's value (%) of
    every variant joined by a line (one line per seed), and beside it the mean paired difference
    of each pair with its 95% t-interval and a zero line."""
    plt = _pyplot()
    metrics, seeds = list(result["metrics"]), list(result["seeds"])
    names = result.get("order") or list(result["per_seed"])
    fig, axes = plt.subplots(
        len(metrics), 2, figsize=(4 + 1.1 * len(names), 3.2 * len(metrics)), dpi=100, squeeze=False
    )
    for row, m in zip(axes, metrics):
        left, right = row
        xs = list(range(len(names)))
        for s in seeds:
            ys = [100 * result["per_seed"][n][str(s)][m] for n in names]
            left.plot(xs, ys, marker="o", alpha=0.7, label=f"seed {s}")
        left.set_xticks(xs)
        left.set_xticklabels(names, rotation=15, fontsize=8)
        left.set_ylabel(f"{m} (%)")
        left.grid(alpha=0.3)
        left.legend(fontsize=7)
        pairs = [p for p in result["pairs"] if p["metric"] == m]
        for i, p in enumerate(pairs):
            mean = 100 * p["mean"]
            if p["ci95"]:
                lo, hi = (100 * c for c in p["ci95"])
                right.errorbar([i], [mean], yerr=[[mean - lo], [hi - mean]], fmt="o", capsize=4)
            else:
                right.plot([i], [mean], "o")
            right.scatter([i] * len(p["diffs"]), [100 * d for d in p["diffs"]], s=10, alpha=0.5)
            right.annotate(f"{mean:+.1f}", (i, mean), textcoords="offset points", xytext=(6, 0))
        right.axhline(0, color="k", lw=0.8)
        right.set_xticks(list(range(len(pairs))))
        right.set_xticklabels([f"{p['a']} - {p['b']}" for p in pairs], rotation=15, fontsize=8)
        right.set_ylabel(f"paired {m} difference (points)")
        right.set_xlim(-0.6, max(len(pairs) - 0.4, 0.6))
        right.grid(alpha=0.3)
    fig.suptitle(f"Paired comparison, {len(seeds)} seeds (mean and 95% t-interval)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
