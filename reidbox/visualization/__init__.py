"""Seeing results: rank-list images, CMC curves, transfer-chain plots."""

from .plots import plot_all_cmc, plot_chain, plot_cmc
from .ranks import draw_rank_list, visualize_model_ranks, visualize_ranks

__all__ = ["draw_rank_list", "plot_all_cmc", "plot_chain", "plot_cmc",
           "visualize_model_ranks", "visualize_ranks"]
