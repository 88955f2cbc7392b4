"""Plots written as PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Sequence
from ..errors import InputError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cmc(cmc: Sequence[float], path: str, title: str = "", max_rank: int = 50) -> str:
    """CMC curve: matching rate (%) at ranks 1..``max_rank`` (``cmc`` holds fractions)."""
    if not len(cmc):
        raise InputError("plot_cmc: empty CMC list (no valid query?)")
    plt = _pyplot()
    ranks = list(range(1, min(len(cmc), max_rank) + 1))
    values = [100 * float(c) for c in cmc[: len(ranks)]]
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=100)
    ax.plot(ranks, values, marker="o", markersize=3)
    for k in (1, 5, 10):
        if k <= len(values):
            ax.annotate(
                f"{values[k - 1]:.1f}",
                (k, values[k - 1]),
                textcoords="offset points",
                xytext=(4, -12),
                fontsize=8,
            )
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(1, max(ranks[-1], 2))
    ax.grid(alpha=0.3)
    ax.set_title(title or "CMC")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


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


def plot_all_cmc(results: Dict[str, Any], output_dir: str) -> Dict[str, str]:
    """``cmc_<testset>.png`` for every evaluated set (``results``: name -> Metrics)."""
    out = {}
    for name, m in results.items():
        if len(m.cmc):
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            out[name] = plot_cmc(
                m.cmc,
                os.path.join(output_dir, f"cmc_{safe}.png"),
                title=f"CMC {name} (mAP {100 * m.mAP:.1f}%)",
            )
    return out
