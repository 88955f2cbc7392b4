"""Label arrays (identities, cameras) as the metrics and ranked lists take them, checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ..errors import InputError

NONFINITE = (
    "the distances contain NaN or inf (features too large for float32 distances, "
    "|x|^2 overflows above ~1.8e19, or not finite): L2-normalise or rescale them "
    "(TEST.NORM_FEAT True)"
)


def as_labels(x, name: str, n: int | None = None) -> np.ndarray:
    """1-D int64 labels, or str labels (the metrics code them)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and len(a) != n:
        raise InputError(f"{name} has {len(a)} entries but the distance matrix needs {n}")
    if a.dtype.kind in "US" or (
        a.dtype == object and a.size and all(isinstance(v, (str, bytes)) for v in a)
    ):
        return a.astype(str)
    if a.dtype.kind not in "iuf":
        raise InputError(f"{name} must hold integers (or strings), got dtype {a.dtype}")
    if (
        a.dtype.kind == "f"
        and a.size
        and not (np.all(np.isfinite(a)) and np.all(np.equal(np.mod(a, 1), 0)))
    ):
        raise InputError(f"{name} must hold integers, got dtype {a.dtype} with fractions/NaN")
    return np.ascontiguousarray(a, dtype=np.int64)


@dataclass(frozen=True)
class Labels:
    """Identities and cameras of queries and gallery: what a protocol's junk rule reads.

    Without cameras every query counts as seen by another camera than every gallery entry, so
    only the identities decide (no same-camera junk)."""

    q_pids: Any
    g_pids: Any
    q_camids: Any = None
    g_camids: Any = None

    def checked(self, m: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(q_pids, g_pids, q_camids, g_camids) as checked arrays for m queries, n gallery."""
        qc = self.q_camids if self.q_camids is not None else np.zeros(m, np.int64)
        gc = self.g_camids if self.g_camids is not None else np.ones(n, np.int64)
        return (
            as_labels(self.q_pids, "q_pids", m),
            as_labels(self.g_pids, "g_pids", n),
            as_labels(qc, "q_camids", m),
            as_labels(gc, "g_camids", n),
        )
