"""Evaluation: retrieval metrics under named reference protocols, from distances or features."""

from .metrics import Accumulator, EvalResult, evaluate_distmat, results_table
from .protocols import AP_MODES, PROTOCOLS, Protocol, get_protocol

__all__ = ["AP_MODES", "PROTOCOLS", "Accumulator", "EvalResult", "Protocol", "evaluate",
           "evaluate_distmat", "evaluate_kwargs", "get_protocol", "results_table"]


def __getattr__(name: str):
    if name in ("evaluate", "evaluate_kwargs"):  # lazy: keeps retrieval out of metric imports
        from . import streaming
        return getattr(streaming, name)
    raise AttributeError(name)
