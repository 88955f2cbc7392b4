"""``EvalSettings``: how a model is evaluated, read once from ``cfg.TEST``.

Every consumer takes its part from this one object: the metrics
(:func:`reidbox.evaluation.evaluate` takes it whole), the ranked lists saved and drawn
(:meth:`ranking`: the same protocol, backend and re-ranking, so a list's first entry is what
the metrics count as rank 1), the features (``flip``, ``normalize``:
:class:`~reidbox.evaluation.FeatureModel`) and the record in ``metrics.json``
(:meth:`describe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..errors import InputError
from ..retrieval.rank import RankSettings

#: TEST.RERANK.INPUT values: which distances re-ranking starts from.
RERANK_INPUTS = ("reference", "torchreid")


@dataclass(frozen=True)
class EvalSettings:
    """What the numbers of an evaluation depend on besides the features and labels.

    ``EvalSettings()`` are the defaults of :func:`reidbox.evaluation.evaluate`; give the
    fields that differ (``EvalSettings(protocol="cuhk03", metric="cosine")``) or read them
    from a config (:meth:`from_config`)."""

    protocol: str = "market1501"
    metric: str = "euclidean"
    backend: str = "auto"
    chunk_size: Optional[int] = None
    max_rank: int = 50
    seed: Optional[int] = None
    ap_mode: Optional[str] = None
    rerank: Optional[Dict[str, float]] = None  # k1, k2, lambda_value
    flip: bool = False
    normalize: bool = True
    roc: bool = False  # verification metrics (TPR@FPR, ROC area) as well

    @classmethod
    def from_config(cls, cfg) -> EvalSettings:
        """The one reader of ``cfg.TEST``'s evaluation keys."""
        t = cfg.TEST
        metric, rerank = t.METRIC, None
        if t.RERANK.ENABLED:
            rerank = dict(k1=t.RERANK.K1, k2=t.RERANK.K2, lambda_value=t.RERANK.LAMBDA)
            if t.RERANK.INPUT not in RERANK_INPUTS:
                raise InputError(
                    f"unknown TEST.RERANK.INPUT {t.RERANK.INPUT!r}; available: "
                    f"{', '.join(RERANK_INPUTS)}"
                )
            if t.RERANK.INPUT == "torchreid" and metric == "euclidean":
                metric = "sqeuclidean"  # torchreid's 'euclidean' is squared
        return cls(
            protocol=t.PROTOCOL,
            metric=metric,
            backend=t.BACKEND,
            chunk_size=t.CHUNK_SIZE or None,
            max_rank=t.MAX_RANK,
            seed=t.SEED,
            ap_mode=t.AP_MODE or None,
            rerank=rerank,
            flip=bool(t.FLIP_AUG),
            normalize=bool(t.NORM_FEAT),
            roc=bool(t.ROC.ENABLED),
        )

    def ranking(self) -> RankSettings:
        """The ranked lists' settings (:func:`reidbox.retrieval.rank_lists`): the protocol,
        metric, backend and re-ranking the metrics use, so a list's first entry is what they
        count as rank 1."""
        rerank = dict(self.rerank) if self.rerank is not None else None
        return RankSettings(self.metric, self.protocol, self.backend, rerank)

    def describe(self) -> Dict[str, Any]:
        """The record of ``metrics.json`` (``evaluation``)."""
        return dict(
            protocol=self.protocol,
            metric=self.metric,
            flip=self.flip,
            normalize=self.normalize,
            ap_mode=self.ap_mode,
            rerank=dict(self.rerank) if self.rerank is not None else None,
        )
