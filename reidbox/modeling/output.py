"""The one small typed output every meta-architecture returns in training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Union

import torch

Logits = Union[torch.Tensor, List[torch.Tensor]]


@dataclass
class ModelOutput:
    """``features`` (B, D) retrieval embedding; ``logits`` (B, N) or a list of them (MGN).

    ``extras`` carries what specific losses need (e.g. ``triplet_features``: list of (B, d)).
    """

    features: torch.Tensor
    logits: Logits
    extras: Dict[str, Any] = field(default_factory=dict)
