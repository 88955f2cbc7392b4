"""Seeing results: rank-list images, CMC curves, transfer-chain plots (drawing only: the
numbers and ranked lists come from evaluation and retrieval)."""

from .plots import plot_all_cmc, plot_chain, plot_cmc, plot_cmc_curves
from .ranks import choose_queries, draw_rank_list, draw_rank_lists

__all__ = [
    "choose_queries",
    "draw_rank_list",
    "draw_rank_lists",
    "plot_all_cmc",
    "plot_chain",
    "plot_cmc",
    "plot_cmc_curves",
]
