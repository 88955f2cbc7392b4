"""STD (Student-Teacher Distillation, Fig. 4 / Eq. 4): a plain student learns from a PTL teacher.

The student is the :class:`Baseline` (backbone -> pooling -> head). The teacher is any trained
model (typically PTL) rebuilt from its run's ``config.yaml`` and ``model_final.pth``; it stays in
eval mode (so a PTL teacher always runs with zero latent state), never gets gradients, and is not
part of the student's ``state_dict`` or parameter count: after training it is dropped.

Projection: when the student's feature width differs from the teacher's (DenseNet-161's 2208
pooled channels vs. PTL's 512-d feature), the student's head gets an embedding layer of the
teacher's width (Linear + BN + ReLU, i.e. ``MODEL.HEADS.EMBED_DIM`` set to the teacher's width,
like PTL's own 1x1 reduction). That embedding *is* the student's retrieval feature, so the
feature used at test time is the one pulled towards the teacher's.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import torch
from torch import nn

from ...config import ConfigError
from ...registry import META_ARCHS
from ...utils.checkpoint import load_model_weights
from ...utils.misc import eval_mode
from ..backbones import StagedBackbone
from ..heads import EmbeddingHead
from ..losses.std import STDLoss
from .baseline import Baseline
from .base import Losses, Weights

logger = logging.getLogger("reidbox")


@torch.no_grad()
def feature_dim(model: nn.Module, size) -> int:
    """Width D of the eval-mode feature (B, D), measured on a dummy batch of ``size`` (H, W)."""
    with eval_mode(model):
        return int(model(torch.zeros(2, 3, *size)).shape[1])


def _check_std_config(s, h, losses, lam: float) -> None:
    """The student's head, loss and teacher keys, each refused in one line with its fix."""
    if h.NAME != "embedding":
        raise ConfigError(
            f"MODEL.HEADS.NAME {h.NAME!r}: the STD student has the embedding head (its "
            "embedding matches the teacher's feature width); set MODEL.HEADS.NAME embedding"
        )
    if "std" not in losses:
        raise ConfigError(
            "MODEL.META_ARCHITECTURE 'std' needs the 'std' loss: set MODEL.LOSSES.NAMES ['std']"
        )
    if lam > 0 and not (s.TEACHER_CONFIG and s.TEACHER_WEIGHTS):
        raise ConfigError(
            f"MODEL.STD.LAMBDA is {s.LAMBDA}: set MODEL.STD.TEACHER_CONFIG "
            "and MODEL.STD.TEACHER_WEIGHTS (a trained run's config.yaml and "
            "model_final.pth), or LAMBDA 0 for plain fine-tuning"
        )


def _student_embedding(embed: int, width: int, t_dim: Optional[int]):
    """(embedding width, projection note): the student's feature must match the teacher's
    width; with no EMBED_DIM a projection to it is added, a different EMBED_DIM is refused."""
    student_dim = embed or width
    if t_dim is None or student_dim == t_dim:
        return embed, "none"
    if embed:
        raise ConfigError(
            f"MODEL.HEADS.EMBED_DIM {embed} differs from the teacher's "
            f"feature width {t_dim}: set it to {t_dim} or to 0"
        )
    return t_dim, f"embedding {width}->{t_dim} (Linear+BN+ReLU)"


@META_ARCHS.register("std")
class STDDistill(Baseline):
    """Plain student; in training also runs the frozen teacher when ``lam > 0``.

    Train forward: ``ModelOutput(features (B, D), logits (B, N),
    extras={"teacher_features": (B, D)})``; eval forward: the student's (B, D) feature only.
    """

    display_name = "{backbone}+STD"
    #: ``build_model`` refuses ``MODEL.PTL.ENABLED`` for it, saying why
    plain_only = "the STD student is plain; its teacher carries the cells"

    def __init__(
        self,
        backbone: StagedBackbone,
        head: EmbeddingHead,
        losses: Losses,
        loss_weights: Weights,
        teacher: Optional[nn.Module] = None,
        teacher_weights: str = "",
        lam: float = 0.8,
        info: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(backbone, head, losses, loss_weights)
        # Kept outside the module tree: not trained, not saved, not counted, not seen by DDP.
        self.__dict__["_teacher"] = teacher
        self.teacher_weights = teacher_weights
        self.lam = float(lam)
        self._teacher_loaded = False
        self._info = dict(info or {})
        if self.lam >= 1.0:
            # lambda 1: the CE term has no weight, so the classifier never gets a gradient.
            # Frozen, it is what one process trains anyway (optimizers skip grad-less
            # parameters) and DDP, which needs every trainable parameter's gradient each step,
            # runs without the per-step cost of find_unused_parameters.
            self.head.classifier.requires_grad_(False)
            self._info["frozen"] = ["head.classifier (lambda 1: no CE term)"]

    #: :func:`reidbox.modeling.build_model` builds ``MODEL.STD.TEACHER_CONFIG``'s model and
    #: passes it to :meth:`from_config` as ``teacher``.
    takes_teacher = True

    @classmethod
    def from_config(
        cls,
        cfg,
        num_classes: int,
        backbone: StagedBackbone,
        losses,
        loss_weights,
        teacher: Optional[nn.Module] = None,
        lam: Optional[float] = None,
    ):
        """``teacher``: the frozen teacher architecture (weights load at the first step);
        ``lam``: overrides ``MODEL.STD.LAMBDA`` (``build_model(..., distill=False)``: 0, a
        student built for its shapes, which needs no teacher weights)."""
        s, h = cfg.MODEL.STD, cfg.MODEL.HEADS
        lam = float(s.LAMBDA if lam is None else lam)
        _check_std_config(s, h, losses, lam)
        t_dim = feature_dim(teacher, teacher.input_size) if teacher is not None else None
        embed, projection = _student_embedding(h.EMBED_DIM, backbone.out_channels, t_dim)
        head = EmbeddingHead(
            backbone.out_channels,
            num_classes,
            h.POOLING,
            embed,
            h.NECK,
            h.TEST_FEATURE,
            h.CLS_LAYER,
        )
        info = {
            "lambda": lam,
            "teacher_config": s.TEACHER_CONFIG or None,
            "teacher_weights": s.TEACHER_WEIGHTS or None,
            "teacher_feature_dim": t_dim,
            "projection": projection,
        }
        if lam != losses["std"].lam:  # the loss's split follows the model's lambda
            losses = {**losses, "std": STDLoss(lam, losses["std"].epsilon)}
        return cls(backbone, head, losses, loss_weights, teacher, s.TEACHER_WEIGHTS, lam, info)

    @property
    def teacher(self) -> Optional[nn.Module]:
        return self._teacher

    def _apply(self, fn, recurse: bool = True):
        if self._teacher is not None:  # .to(device) / .half() move the teacher along
            self._teacher._apply(fn)
        return super()._apply(fn, recurse)

    def load_teacher(self) -> None:
        """Load the teacher's weights (once); every weight but a classifier must fit."""
        # no partial opt-in: distilling from a half-random teacher is never what one wants
        load_model_weights(
            self._teacher,
            self.teacher_weights,
            what="MODEL.STD.TEACHER_WEIGHTS (for MODEL.STD.TEACHER_CONFIG)",
            partial_key=None,
        )
        reset = getattr(self._teacher, "reset_latent_state", None)
        if callable(reset):
            reset()
        self._teacher_loaded = True
        logger.info("STD teacher loaded from %s (lambda %.2f)", self.teacher_weights, self.lam)

    def forward(self, images: torch.Tensor):  # (B, 3, H, W)
        out = super().forward(images)
        if not self.training or self.lam == 0.0:
            return out  # lambda 0: the L1 term has no weight, the teacher is never run
        if not self._teacher_loaded:
            self.load_teacher()
        self._teacher.eval()  # eval: BN statistics frozen, PTL state zero and never written
        with torch.no_grad():
            out.extras["teacher_features"] = self._teacher(images).detach()  # (B, D)
        return out

    def compute_losses(self, output, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Like the base class, but the ``std`` loss reports its acting terms separately
        (``std_ce``, ``std_l1``), so the training log shows which of them act for this lambda."""
        out: Dict[str, torch.Tensor] = {}
        for name, loss in self.losses.items():
            w = self.loss_weights.get(name, 1.0)
            if isinstance(loss, STDLoss):
                out.update({f"{name}_{k}": w * v for k, v in loss.terms(output, targets).items()})
            else:
                out[name] = w * loss(output, targets)
        return out

    def std_info(self) -> Dict[str, Any]:
        """Lambda, teacher and projection, recorded with every result."""
        return dict(self._info)
