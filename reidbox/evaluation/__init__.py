"""Evaluation: retrieval metrics and protocols."""

from .metrics import EvalResult, evaluate, evaluate_distmat

__all__ = ["EvalResult", "evaluate", "evaluate_distmat"]
