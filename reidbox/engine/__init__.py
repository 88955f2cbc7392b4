"""Training engine: trainer, hooks, solver, and the train/test runners."""

from .hooks import CheckpointHook, EvalHook, LatentStateResetHook, ProgressHook, TensorBoardHook
from .trainer import HookBase, Trainer

__all__ = [
    "CheckpointHook",
    "EvalHook",
    "HookBase",
    "LatentStateResetHook",
    "ProgressHook",
    "TensorBoardHook",
    "Trainer",
]
