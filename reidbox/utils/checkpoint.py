"""Checkpoints: atomic writes, ``weights_only`` loading, fall-back to the last good file."""

from __future__ import annotations

import glob
import logging
import os
import random
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or needs unsafe unpickling."""


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_file(path: str, trusted: bool = False) -> Dict[str, Any]:
    """Load with ``weights_only=True``; ``trusted=True`` allows full unpickling of legacy files."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as e:  # noqa: BLE001
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not trusted and ("weights_only" in str(e) or "Unsupported global" in str(e)):
            raise CheckpointError(
                f"{path} needs arbitrary unpickling, which can run code; load it only if you "
                "trust its source, with the trusted-legacy option (--trust-checkpoint)"
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or corrupt?): {msg}") \
            from None


def model_state_from(obj: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint (``{"model": ...}``) or a bare state dict."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise CheckpointError("file holds neither a state dict nor a checkpoint with a 'model' key")


def load_model_weights(model: nn.Module, path: str, trusted: bool = False
                       ) -> Tuple[List[str], List[str]]:
    """Load weights whose names and shapes fit; returns (skipped for shape, missing in file).

    Classifier layers sized for another dataset's identities are skipped and reported, so a
    model trained on one dataset can be fine-tuned or tested on another.
    """
    state = model_state_from(load_file(path, trusted))
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in fitting]
    model.load_state_dict(fitting, strict=False)
    if skipped:
        logger.warning("skipped weights whose shape differs (e.g. a classifier for another number "
                       "of identities): %s", ", ".join(skipped))
    if unexpected:
        logger.warning("weights in %s that the model does not have: %s", path,
                       ", ".join(unexpected[:10]))
    if missing and not skipped:
        logger.warning("model weights not in %s (left as initialised): %s", path,
                       ", ".join(missing[:10]))
    return skipped, missing


def rng_states() -> Dict[str, Any]:
    """Python, numpy and torch RNG states as tensors/lists (loadable with weights_only)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: Dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = states["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Checkpointer:
    """Epoch checkpoints ``checkpoint_EEEE.pth`` in ``directory``; keeps the newest ``keep``."""

    PATTERN = re.compile(r"checkpoint_(\d+)\.pth$")

    def __init__(self, directory: str, keep: int = 3) -> None:
        self.directory = directory
        self.keep = max(1, keep)

    def path(self, epoch: int) -> str:
        return os.path.join(self.directory, f"checkpoint_{epoch:04d}.pth")

    def save(self, epoch: int, state: Dict[str, Any]) -> str:
        path = self.path(epoch)
        atomic_save(state, path)
        for old in self.list()[:-self.keep]:
            os.remove(old)
        return path

    def list(self) -> List[str]:
        files = glob.glob(os.path.join(self.directory, "checkpoint_*.pth"))
        return sorted(f for f in files if self.PATTERN.search(f))

    def load_latest(self, trusted: bool = False) -> Optional[Dict[str, Any]]:
        """Newest readable checkpoint; a corrupt newest file falls back to the previous one."""
        for path in reversed(self.list()):
            try:
                state = load_file(path, trusted)
            except CheckpointError as e:
                logger.warning("%s; falling back to the previous checkpoint", e)
                continue
            state["_path"] = path
            return state
        return None
