"""Small helpers: seeding, device choice, JSON output."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import numpy as np
import torch


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA device this machine lacks is a
    ``ValueError`` (one line naming what to use instead), not a CUDA traceback later."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"DEVICE {name!r} is not a torch device: use auto, cpu, cuda or "
                         "cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"DEVICE {name} but this machine has no usable CUDA GPU: use "
                             "DEVICE cpu (or auto, which picks a GPU only when there is one)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"DEVICE {name} but this machine has {count} GPU(s) "
                             f"(cuda:0..cuda:{count - 1}): use one of them, or DEVICE cpu")
    return device


def write_json(obj: Any, path: str) -> None:
    """Write JSON atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def count_parameters(params) -> int:
    """Elements in a module's parameters (or an iterable of tensors), each tensor once."""
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    return sum(p.numel() for p in {id(p): p for p in params}.values())
