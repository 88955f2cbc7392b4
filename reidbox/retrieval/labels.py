"""Label arrays (identities, cameras) as the metrics and ranked lists take them, checked."""

from __future__ import annotations

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
