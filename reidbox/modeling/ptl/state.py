"""The latent state of every BConv-Cell, owned by the PTL wrapper (never by the cells).

A plain Python object, deliberately not an ``nn.Module``, parameter or buffer: it is not saved
in ``state_dict``, not broadcast by DDP and not touched by the optimizer. The wrapper reads it
only in training (eval uses zeros and never writes), so what training left behind cannot change
test features.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from ...errors import InputError

State = Union[torch.Tensor, Tuple[torch.Tensor, ...]]

STATE_MODES = ("carry", "reset_each_batch")
STATE_SHAPES = ("per_sample", "batch_mean")
STATE_INITS = ("zeros", "normal")
# The paper's code draws an unset state from N(0, 0.001^2).
NORMAL_INIT_STD = 1e-3


def _map(fn: Callable[..., torch.Tensor], *states: State) -> State:
    """Apply ``fn`` tensor-wise to a state that is a tensor or a tuple of tensors (v2 cells)."""
    if isinstance(states[0], torch.Tensor):
        return fn(*states)
    return tuple(fn(*parts) for parts in zip(*states))


def _tensors(state: State) -> Sequence[torch.Tensor]:
    return [state] if isinstance(state, torch.Tensor) else list(state)


def _check(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InputError(f"MODEL.PTL.{name} is {value!r}; choose one of: {', '.join(allowed)}")
    return value


class LatentStateStore:
    """Per-cell latent states carried between training batches.

    ``mode``: ``carry`` (the paper: C_{b-1} comes from the previous batch, detached) or
    ``reset_each_batch`` (what the paper's code effectively ran after its first evaluation: a
    fresh state every batch). ``shape``: ``per_sample`` (the code: one state row per batch slot,
    (B, C, H, W)) or ``batch_mean`` (the text: one 3-D state shared by the batch, stored as the
    batch mean (1, C, H, W)). ``init``: ``zeros`` or ``normal`` (N(0, 1e-3^2), the code).

    Batch-size changes in ``per_sample``: a smaller batch uses (and updates) the first rows and
    leaves the others as they were; a larger batch starts its extra rows from a fresh state.
    A state whose non-batch shape no longer fits (e.g. a new input size) is replaced by a fresh
    one.
    """

    def __init__(self, mode: str = "carry", shape: str = "per_sample", init: str = "zeros") -> None:
        self.mode = _check("STATE_MODE", mode, STATE_MODES)
        self.shape = _check("STATE_SHAPE", shape, STATE_SHAPES)
        self.init = _check("STATE_INIT", init, STATE_INITS)
        self._states: Dict[str, State] = {}

    def reset(self) -> None:
        """Forget every stored state (start of an epoch); the next batch starts fresh."""
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)

    def names(self) -> Sequence[str]:
        return sorted(self._states)

    def get(self, name: str) -> Optional[State]:
        """The stored state of cell ``name`` (detached), or None."""
        return self._states.get(name)

    def fresh(self, template: State) -> State:
        """A new state shaped like ``template`` (zeros from the cell): zeros or N(0, 1e-3^2)."""
        if self.init == "zeros":
            return template
        return _map(lambda t: torch.randn_like(t) * NORMAL_INIT_STD, template)

    def read(self, name: str, template: State) -> State:
        """The state C_{b-1} to feed cell ``name`` this batch; ``template`` is its zero state.

        ``template`` has this batch's shape (B, C, H, W) (a tuple of them for v2 cells).
        """
        stored = None if self.mode == "reset_each_batch" else self._states.get(name)
        if stored is not None and any(
            s.shape[1:] != t.shape[1:] for s, t in zip(_tensors(stored), _tensors(template))
        ):
            stored = None
        if stored is None:
            return self.fresh(template)
        like = _tensors(template)[0]
        stored = _map(lambda s: s.to(device=like.device, dtype=like.dtype), stored)
        batch = like.shape[0]
        if self.shape == "batch_mean":
            return _map(lambda s, t: s.expand_as(t), stored, template)
        rows = _tensors(stored)[0].shape[0]
        if rows >= batch:
            return _map(lambda s: s[:batch], stored)
        extra = self.fresh(_map(lambda t: t[rows:], template))
        return _map(lambda s, e: torch.cat([s, e], dim=0), stored, extra)

    def write(self, name: str, new_state: State) -> None:
        """Keep the detached C_b of cell ``name`` for the next batch (nothing in reset mode)."""
        if self.mode == "reset_each_batch":
            return
        new_state = _map(lambda s: s.detach(), new_state)
        if self.shape == "batch_mean":
            self._states[name] = _map(lambda s: s.mean(dim=0, keepdim=True), new_state)
            return
        old = self._states.get(name)
        batch = _tensors(new_state)[0].shape[0]
        if (
            old is not None
            and _tensors(old)[0].shape[0] > batch
            and all(
                o.shape[1:] == n.shape[1:] and o.device == n.device
                for o, n in zip(_tensors(old), _tensors(new_state))
            )
        ):
            new_state = _map(
                lambda n, o: torch.cat([n, o[batch:].to(n.dtype)], dim=0), new_state, old
            )
        self._states[name] = new_state

    def info(self) -> Dict[str, Any]:
        """The settings every result records."""
        return {"state_mode": self.mode, "state_shape": self.shape, "state_init": self.init}
