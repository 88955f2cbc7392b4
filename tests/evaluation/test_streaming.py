"""evaluate() from features equals evaluate_distmat() on the full matrix of the same metric."""

import numpy as np
import pytest
import torch

from reidbox.evaluation import EvalSettings, evaluate, evaluate_distmat
from reidbox.retrieval import pairwise_distance, rerank


def _problem(seed=0, m=60, n=400, d=16, ids=40, noise=2.5):
    rng = np.random.default_rng(seed)
    cent = rng.normal(size=(ids, d))
    gp, gc = rng.integers(0, ids, n), rng.integers(0, 4, n)
    qp, qc = rng.integers(0, ids, m), rng.integers(0, 4, m)
    gf = (cent[gp] + noise * rng.normal(size=(n, d))).astype(np.float32)
    qf = (cent[qp] + noise * rng.normal(size=(m, d))).astype(np.float32)
    return qf, gf, qp, gp, qc, gc


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("backend", ["torch", "faiss", "auto"])
def test_streaming_equals_full_matrix(metric, backend):
    qf, gf, qp, gp, qc, gc = _problem()
    full = evaluate_distmat(pairwise_distance(qf, gf, metric), qp, gp, qc, gc)
    assert 0.05 < full.mAP < 0.95  # a non-trivial problem
    r = evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(metric=metric, backend=backend, chunk_size=7))
    np.testing.assert_allclose(r.cmc, full.cmc, atol=1e-12)
    np.testing.assert_allclose(r.ap, full.ap, atol=1e-12)
    assert r.mINP == pytest.approx(full.mINP, abs=1e-12)


def test_streaming_accepts_torch_tensors_and_protocol():
    qf, gf, qp, gp, qc, gc = _problem(1)
    a = evaluate(
        torch.from_numpy(qf),
        torch.from_numpy(gf),
        torch.from_numpy(qp),
        torch.from_numpy(gp),
        torch.from_numpy(qc),
        torch.from_numpy(gc),
        EvalSettings(protocol="cuhk03_classic", seed=4),
    )
    b = evaluate_distmat(
        pairwise_distance(qf, gf), qp, gp, qc, gc, protocol="cuhk03_classic", seed=4
    )
    np.testing.assert_allclose(a.cmc, b.cmc, atol=1e-12)
    assert a.protocol == "cuhk03_classic"


def test_streaming_rerank_equals_dense_rerank():
    qf, gf, qp, gp, qc, gc = _problem(2, m=30, n=150)
    ref = rerank(pairwise_distance(qf, gf), pairwise_distance(qf, qf), pairwise_distance(gf, gf))
    full = evaluate_distmat(ref, qp, gp, qc, gc)
    rr = EvalSettings(rerank=dict(k1=20, k2=6, lambda_value=0.3), chunk_size=8)
    r = evaluate(qf, gf, qp, gp, qc, gc, rr)
    np.testing.assert_allclose(r.cmc, full.cmc, atol=1e-12)
    assert r.mAP == pytest.approx(full.mAP, abs=1e-9)
    plain = evaluate(qf, gf, qp, gp, qc, gc)
    assert r.mAP != plain.mAP


def test_streaming_errors():
    qf, gf, qp, gp, qc, gc = _problem()
    with pytest.raises(ValueError, match="unknown backend"):
        evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(backend="annoy"))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(metric="manhattan"))
    with pytest.raises(ValueError, match="rerank must be"):
        evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(rerank=dict(k=3)))
    with pytest.raises(ValueError, match="q_pids has 3"):
        evaluate(qf, gf, qp[:3], gp, qc, gc)
    with pytest.raises(ValueError, match="query dim"):
        evaluate(qf[:, :4], gf, qp, gp, qc, gc)


def test_eval_settings_from_config():
    from reidbox.config.defaults import get_cfg_defaults
    from reidbox.evaluation import EvalSettings

    cfg = get_cfg_defaults()
    s = EvalSettings.from_config(cfg)
    assert s.protocol == "market1501" and s.rerank is None and s.chunk_size is None
    cfg.TEST.RERANK.ENABLED = True
    cfg.TEST.AP_MODE = "trapezoid"
    s = EvalSettings.from_config(cfg)
    assert s.rerank == dict(k1=20, k2=6, lambda_value=0.3) and s.ap_mode == "trapezoid"
    assert s.ranking().rerank == s.rerank and s.ranking().protocol == s.protocol
    qf, gf, qp, gp, qc, gc = _problem(3, m=20, n=100)
    r = evaluate(qf, gf, qp, gp, qc, gc, s)
    assert r.ap_mode == "trapezoid"
