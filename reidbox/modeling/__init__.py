"""Models: backbones, heads, losses, meta-architectures and ``build_model``."""

from . import backbones, heads, losses, meta_arch  # noqa: F401  (registrations)
from .build import (
    build_inference_model,
    build_losses,
    build_model,
    build_teacher,
    model_display_name,
    require_retrieval_model,
)
from .output import ModelOutput

__all__ = [
    "ModelOutput",
    "build_inference_model",
    "build_losses",
    "build_model",
    "build_teacher",
    "model_display_name",
    "require_retrieval_model",
]
