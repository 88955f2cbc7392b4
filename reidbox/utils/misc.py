"""Small helpers: seeding, device choice, JSON output."""

from __future__ import annotations

import json
import os
import random
import tempfile
from typing import Any, Callable, IO

import numpy as np
import torch


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str, write: Callable[[IO], None], binary: bool = False) -> None:
    """Write ``path`` through ``write(f)`` on a temporary file in the same folder, then rename.

    The temporary name is unique per writer (``<name>.tmp.<pid>.<random>``), so concurrent
    writers never collide; it is removed if writing fails. Files left by a killed writer are
    removed by :func:`reidbox.utils.run_folder.remove_stale_temps` on the next run.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{os.path.basename(path)}.tmp.{os.getpid()}.")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})
                       ) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; honour the umask instead
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(obj: Any, path: str) -> None:
    """Write JSON atomically (unique temp file + rename)."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=True))


def write_text(text: str, path: str) -> None:
    """Write a text file atomically (unique temp file + rename)."""
    atomic_write(path, lambda f: f.write(text))


def count_parameters(params) -> int:
    """Elements in a module's parameters (or an iterable of tensors), each tensor once."""
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    return sum(p.numel() for p in {id(p): p for p in params}.values())
