"""Student-Teacher Distillation loss (Eq. 4 of the PTL paper)."""

from __future__ import annotations

from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES
from ..output import ModelOutput
from .ce import cross_entropy
from ...errors import InputError


@LOSSES.register("std")
class STDLoss(nn.Module):
    """``(1 - lam) * CE(student logits, labels) + lam * L1(student feature, teacher feature)``.

    The teacher feature (B, D) comes from ``output.extras["teacher_features"]`` (the ``std``
    meta-architecture puts it there). A term whose weight is 0 is not computed at all, so with
    ``lam = 0`` the teacher is irrelevant and with ``lam = 1`` the classifier gets no gradient.
    L1 is the mean absolute difference over all B x D entries.
    """

    def __init__(self, lam: float = 0.8, epsilon: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= lam <= 1.0:
            raise InputError(f"MODEL.STD.LAMBDA must lie in [0, 1], got {lam}")
        self.lam = float(lam)
        self.epsilon = epsilon

    @classmethod
    def from_config(cls, cfg: Any) -> STDLoss:
        # weight 1: LAMBDA already splits the loss between its two terms
        return cls(lam=cfg.MODEL.STD.LAMBDA, epsilon=cfg.MODEL.LOSSES.CE.EPSILON)

    def ce_term(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        return cross_entropy(output, targets, self.epsilon)

    def l1_term(self, output: ModelOutput) -> torch.Tensor:
        teacher = output.extras.get("teacher_features")
        if teacher is None:
            raise InputError(
                "the 'std' loss with MODEL.STD.LAMBDA > 0 needs the teacher's "
                "features: use MODEL.META_ARCHITECTURE 'std'"
            )
        student = output.features
        if student.shape != teacher.shape:
            raise InputError(
                f"student feature {tuple(student.shape)} and teacher feature "
                f"{tuple(teacher.shape)} differ; the 'std' meta-arch projects the "
                "student to the teacher's width"
            )
        return F.l1_loss(student, teacher.to(student.dtype))

    def terms(self, output: ModelOutput, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The weighted terms that act: ``ce`` unless lam = 1, ``l1`` unless lam = 0."""
        out = {}
        if self.lam < 1.0:
            out["ce"] = (1.0 - self.lam) * self.ce_term(output, targets)
        if self.lam > 0.0:
            out["l1"] = self.lam * self.l1_term(output)
        return out

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        return sum(self.terms(output, targets).values(), output.features.new_zeros(()))
