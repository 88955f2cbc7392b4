"""Feature losses of the strong-baseline literature: circle loss (Sun et al. 2020, pair-wise
form) and center loss (Wen et al. 2016)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...registry import LOSSES
from ..output import ModelOutput
from .margin import ConfigLoss
from .triplet import mean_over_metric_features, pair_masks


def circle_loss(
    features: torch.Tensor, targets: torch.Tensor, margin: float = 0.25, gamma: float = 128.0
) -> torch.Tensor:
    """Pair-wise circle loss on cosine similarities, averaged over anchors (Eq. 6 of the paper).

    Per anchor: ``log(1 + sum_n exp(g a_n (s_n - m)) * sum_p exp(-g a_p (s_p - 1 + m)))`` with
    the self-paced weights ``a_p = [1 + m - s_p]+`` and ``a_n = [s_n + m]+`` taken as constants
    (no gradient flows through them, as in the paper's gradient analysis). features: (B, D);
    targets: (B,). Anchors with no positive or no negative are skipped.
    """
    x = F.normalize(features, dim=1)
    sim = x @ x.t()  # (B, B)
    pos, neg, valid = pair_masks(targets)
    if not valid.any():
        return features.sum() * 0.0
    alpha_p = (1.0 + margin - sim.detach()).clamp_min(0.0)
    alpha_n = (sim.detach() + margin).clamp_min(0.0)
    logit_p = (-gamma * alpha_p * (sim - (1.0 - margin))).masked_fill(~pos, float("-inf"))
    logit_n = (gamma * alpha_n * (sim - margin)).masked_fill(~neg, float("-inf"))
    per_anchor = F.softplus(torch.logsumexp(logit_n, 1) + torch.logsumexp(logit_p, 1))
    return per_anchor[valid].mean()


@LOSSES.register("circle")
class CircleLoss(ConfigLoss):
    """Circle loss on the features the triplet loss reads (``MODEL.LOSSES.CIRCLE``)."""

    section = "CIRCLE"

    def __init__(self, margin: float = 0.25, gamma: float = 128.0) -> None:
        super().__init__()
        self.margin, self.gamma = float(margin), float(gamma)

    @classmethod
    def from_config(cls, cfg: Any) -> CircleLoss:
        return cls(margin=cls.options(cfg).MARGIN, gamma=cls.options(cfg).GAMMA)

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        return mean_over_metric_features(
            output, lambda f: circle_loss(f, targets, self.margin, self.gamma)
        )


@LOSSES.register("center")
class CenterLoss(ConfigLoss):
    """``1/2 * mean_i ||f_i - c_{y_i}||^2`` with one center per identity (Wen et al. 2016).

    The centers are not trained by the optimizer: each training step moves the center of every
    identity in the batch towards its features by the paper's rule,
    ``c_j -= alpha * sum_{i: y_i = j} (c_j - f_i) / (1 + n_j)`` (``MODEL.LOSSES.CENTER.ALPHA``).
    They are a buffer (identities x feature width) sized on first use, saved with the model;
    ``num_classes`` (the training identities) sizes it without reading the labels.
    """

    section = "CENTER"

    def __init__(self, alpha: float = 0.5, num_classes: int = 0) -> None:
        super().__init__()
        self.alpha, self.num_classes = float(alpha), int(num_classes)
        # (identities, 0) until the feature width is seen: its shape follows the identity count
        # as a classifier's does, so a chain step's weight transfer drops it like one
        self.register_buffer("centers", torch.zeros(self.num_classes, 0))

    @classmethod
    def from_config(cls, cfg: Any, num_classes: int = 0) -> CenterLoss:
        return cls(alpha=cls.options(cfg).ALPHA, num_classes=num_classes)

    def _fit(self, num_ids: int, dim: int, like: torch.Tensor) -> None:
        c = self.centers
        if c.shape[1] == dim and c.shape[0] >= num_ids and c.device == like.device:
            return
        grown = like.new_zeros(max(num_ids, c.shape[0] if c.shape[1] == dim else 0), dim)
        if c.shape[1] == dim:
            grown[: c.shape[0]] = c.to(grown)
        self.centers = grown

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "centers")
        if saved is not None and saved.shape != self.centers.shape:
            self.centers = self.centers.new_zeros(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        f = output.features
        num_ids = self.num_classes or int(targets.max()) + 1  # the max: a sync, when unknown
        self._fit(num_ids, f.shape[1], f.detach().float())
        centers = self.centers[targets].to(f.dtype)  # (B, D)
        loss = 0.5 * (f - centers).pow(2).sum(1).mean()
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                diff = self.centers[targets] - f.detach().float()  # (B, D)
                delta = torch.zeros_like(self.centers).index_add_(0, targets, diff)
                count = torch.zeros(len(self.centers), device=f.device).index_add_(
                    0, targets, torch.ones_like(targets, dtype=torch.float)
                )
                self.centers -= self.alpha * delta / (1.0 + count)[:, None]
        return loss
