"""Image classification meta-architectures (the CIFAR extension, journal Section VI-I).

Unlike the ReID models, these return **logits in eval mode too** (B, num_classes): the test
metric is top-1 error, not retrieval. Training returns a :class:`ModelOutput` as usual.

* ``classifier``: backbone -> global average pool -> one linear layer (the plain DenseNet,
  Table VII's first row).
* ``paper_classifier``: the paper head's feature (backbone [+ BConv-Cells when
  ``MODEL.PTL.ENABLED``], 1x1 conv + BN + ReLU) -> the paper's "two linear layers"
  (``MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN`` with one width: FC-BN-ReLU-FC) -> softmax (inside the
  cross-entropy loss; ``predict`` applies it). ``MODEL.PTL.CELL`` chooses PTL (v1) or PTL-v2.
  ``ptl_classifier`` is a config alias: ``paper_classifier`` with ``MODEL.PTL.ENABLED True``.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn

from ...registry import META_ARCHS
from ...utils.misc import eval_mode
from ..backbones import StagedBackbone
from ..heads import build_pooling
from ..output import ModelOutput
from .base import Weights, Losses, ReIDMetaArch
from .baseline import Baseline
from ...errors import InputError


class ClassifierMixin:
    """``predict``: class probabilities (B, N) in eval mode, whatever the training state."""

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        with eval_mode(self), torch.no_grad():
            return torch.softmax(self(images).float(), dim=1)


@META_ARCHS.register("classifier")
class Classifier(ClassifierMixin, ReIDMetaArch):
    """backbone -> pool -> linear; eval: logits (B, N); train: ModelOutput(pooled, logits)."""

    #: ``build_model`` refuses ``MODEL.PTL.ENABLED`` for it, saying why
    plain_only = "use paper_classifier for PTL on classification"

    def __init__(
        self,
        backbone: StagedBackbone,
        num_classes: int,
        pooling: str = "avg",
        losses: Losses = None,
        loss_weights: Weights = None,
    ) -> None:
        super().__init__(losses or {}, loss_weights or {})
        self.backbone = backbone
        self.pool = build_pooling(pooling)
        self.fc = nn.Linear(backbone.out_channels, num_classes)
        nn.init.zeros_(self.fc.bias)

    @classmethod
    def from_config(cls, cfg, num_classes: int, backbone: StagedBackbone, losses, loss_weights):
        return cls(backbone, num_classes, cfg.MODEL.HEADS.POOLING, losses, loss_weights)

    def forward(self, images: torch.Tensor) -> Union[torch.Tensor, ModelOutput]:
        feat = self.pool(self.backbone(images)).flatten(1)  # (B, C)
        logits = self.fc(feat)  # (B, N)
        if not self.training:
            return logits
        return ModelOutput(features=feat, logits=logits)


@META_ARCHS.register("paper_classifier")
class PaperClassifier(ClassifierMixin, Baseline):
    """The paper head's network whose eval forward returns the classifier's logits (B, N).

    With the side network the latent-state rules are PTL's: carried between training batches,
    zeros in eval.
    """

    @classmethod
    def from_config(cls, cfg, num_classes: int, backbone: StagedBackbone, losses, loss_weights):
        hidden = list(cfg.MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN)
        if len(hidden) != 1:
            raise InputError(
                "paper_classifier: the paper's classifier is two linear layers, so "
                "MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN needs exactly one width (e.g. [256]); got "
                f"{hidden}"
            )
        return super().from_config(cfg, num_classes, backbone, losses, loss_weights, head="paper")

    def test_modules(self):
        """Everything: the classifier is used at test time."""
        return [*super().test_modules(), self.head.classifier]

    def forward(self, images: torch.Tensor) -> Union[torch.Tensor, ModelOutput]:
        out = super().forward(images)
        if self.training:
            return out
        return self.head.classifier(out)  # (B, N)
