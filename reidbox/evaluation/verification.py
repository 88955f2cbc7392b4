"""Verification metrics over query-gallery pairs: the ROC curve and TPR at fixed FPR, as
fast-reid reports them next to CMC and mAP, computed query chunk by query chunk.

A pair is genuine (same identity) or impostor (different identities); the pairs the protocol
leaves out of a ranked list (same identity and camera; Market's junk -1) are left out here
too. A threshold t accepts pairs with distance below it: TPR = accepted genuine pairs /
genuine pairs, FPR = accepted impostor pairs / impostor pairs. TPR@FPR=f is the TPR of the
largest threshold whose FPR is at most f (ties at the threshold are rejected together), so a
reported point never exceeds its FPR.

Memory: every genuine distance (a few per query), the ``floor(max_fpr * impostors) + 1``
smallest impostor distances (enough for the exact values at every requested FPR) and a
histogram of impostor distances over ``bins`` for the rest of the curve; never the
query x gallery matrix (Market: 66M pairs, 0.26 GB as float32; kept here: ~0.7M numbers).

fast-reid (``fastreid/evaluation/roc.py``) labels impostor pairs positive with distance as
the score and reads the sklearn curve point nearest to each FPR; the TPR it prints is therefore
the impostor rejection rate at a genuine rejection rate near f, not the genuine acceptance
rate at an impostor acceptance rate of f reported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Sequence, Union

import numpy as np
import torch

from ..errors import InputError
from ..retrieval.distance import as_features
from ..retrieval.labels import NONFINITE, as_labels
from ..retrieval.rank import distance_blocks, junk_mask

DEFAULT_FPRS = (1e-4, 1e-3, 1e-2)


@dataclass
class VerificationResult:
    """TPR at each requested FPR, the ROC curve (ascending FPR) and its area."""

    tpr_at_fpr: Dict[float, float]
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float
    num_genuine: int
    num_impostor: int
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> Dict[str, float]:
        """``{"TPR@FPR=1e-04": ..., "ROC_AUC": ...}`` for results files."""
        out = {f"TPR@FPR={f:.0e}": v for f, v in self.tpr_at_fpr.items()}
        out["ROC_AUC"] = self.auc
        return out


def _upper_bound(q: torch.Tensor, g: torch.Tensor, metric: str) -> float:
    if metric == "cosine":
        return 2.0
    r = float(q.norm(dim=1).max()) + float(g.norm(dim=1).max())
    return r if metric == "euclidean" else r * r


def verification_metrics(
    q_feats: Union[np.ndarray, torch.Tensor],
    g_feats: Union[np.ndarray, torch.Tensor],
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    metric: str = "euclidean",
    protocol: str = "market1501",
    fprs: Sequence[float] = DEFAULT_FPRS,
    chunk_size: int = 1024,
    bins: int = 4096,
) -> VerificationResult:
    """ROC and TPR@FPR over every query-gallery pair the protocol counts; see the module."""
    fprs = sorted(float(f) for f in fprs)
    if not fprs or fprs[0] <= 0 or fprs[-1] >= 1:
        raise InputError(f"FPRs must lie in (0, 1), got {fprs}")
    q = as_features(q_feats, "q_feats", "cpu")
    g = as_features(g_feats, "g_feats", "cpu")
    m, n = len(q), len(g)
    labels = (
        as_labels(q_pids, "q_pids", m),
        as_labels(g_pids, "g_pids", n),
        as_labels(q_camids, "q_camids", m),
        as_labels(g_camids, "g_camids", n),
    )
    n_gen, n_imp = _pair_counts(labels, protocol, chunk_size)
    keep = min(n_imp, int(math.floor(fprs[-1] * n_imp)) + 1)
    top = max(_upper_bound(q, g, metric), 1e-12)
    gen, tail, hist = _scan_pairs(q, g, labels, metric, protocol, chunk_size, keep, top, bins)

    def tpr_below(t):
        return np.searchsorted(gen, t, side="left") / len(gen)

    at = {}
    for f in fprs:
        k = int(math.floor(f * n_imp))  # accepted impostors allowed
        at[f] = float(tpr_below(tail[k]) if k < len(tail) else 1.0)
    thr, fpr, tpr = _roc_curve(tail, hist, top, n_imp, tpr_below)
    auc = float(np.trapezoid(tpr, fpr))
    return VerificationResult(at, fpr, tpr, thr, auc, len(gen), n_imp)


def _pairs(labels, protocol: str, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """(valid, same identity) masks (c, n) of the queries ``rows`` against the gallery."""
    qp, gp, qc, gc = labels
    valid = ~junk_mask(protocol, qp[rows], qc[rows], gp, gc)
    return valid, qp[rows, None] == gp[None, :]


def _pair_counts(labels, protocol: str, chunk_size: int) -> tuple[int, int]:
    """Genuine and impostor pairs, from the labels alone (so the kept impostor tail has its
    final size before any distance is computed)."""
    m = len(labels[0])
    n_gen = n_imp = 0
    for s in range(0, m, chunk_size):
        valid, same = _pairs(labels, protocol, slice(s, min(s + chunk_size, m)))
        n_gen += int((valid & same).sum())
        n_imp += int((valid & ~same).sum())
    if n_gen == 0 or n_imp == 0:
        raise InputError(
            f"verification needs genuine and impostor pairs; got {n_gen} genuine and {n_imp} "
            "impostor pairs (check the identities of query and gallery)"
        )
    return n_gen, n_imp


def _scan_pairs(q, g, labels, metric, protocol, chunk_size, keep, top, bins):
    """One pass over the distance blocks: every genuine distance (sorted), the ``keep``
    smallest impostor distances (sorted) and the histogram of all impostor distances over
    ``bins`` bins of [0, top]."""
    hist = torch.zeros(bins, dtype=torch.float64)
    genuine, tail = [], torch.empty(0)
    blocks, _ = distance_blocks(q, g, metric, "torch", chunk_size)
    for sl, D in blocks:
        D = torch.as_tensor(D).float()
        if not bool(torch.isfinite(D).all()):
            raise InputError(NONFINITE)
        valid, same = (torch.from_numpy(x) for x in _pairs(labels, protocol, sl))
        genuine.append(D[valid & same])
        imp = D[valid & ~same]
        hist += torch.histc(imp.double(), bins=bins, min=0.0, max=top)
        tail = torch.cat([tail, imp])
        if len(tail) > keep:
            tail = torch.topk(tail, keep, largest=False, sorted=False).values
    gen = np.sort(torch.cat(genuine).double().numpy())
    return gen, np.sort(tail.double().numpy()), hist


def _roc_curve(tail: np.ndarray, hist: torch.Tensor, top: float, n_imp: int, tpr_below):
    """(thresholds, FPR, TPR) of the curve: exact points through the kept impostor tail,
    then the histogram's bin edges."""
    bins = len(hist)
    edges = np.linspace(0.0, top, bins + 1)[1:]
    cum = np.cumsum(hist.numpy())
    lim = tail[-1] if len(tail) else 0.0
    t_all = np.concatenate([tail, edges[edges > lim]])
    f_all = np.concatenate([np.searchsorted(tail, tail, side="left"), cum[edges > lim]]) / float(
        n_imp
    )
    thr = np.concatenate([[0.0], t_all, [np.inf]])
    fpr = np.concatenate([[0.0], f_all, [1.0]])
    tpr = np.concatenate([[0.0], tpr_below(t_all), [1.0]])
    return thr, np.maximum.accumulate(fpr), tpr
