"""k-reciprocal re-ranking: the reference function's outputs on the golden cases, and the sparse
feature path equal to the dense one."""

import json
from pathlib import Path

import numpy as np
import pytest

from reidbox.evaluation import evaluate_distmat
from reidbox.retrieval import pairwise_distance, rerank, rerank_features

GOLDEN = Path(__file__).parents[1] / "data" / "golden"
MANIFEST = {
    Path(c["file"]).name: c for c in json.loads((GOLDEN / "manifest.json").read_text())["cases"]
}
CASES = sorted(k for k, v in MANIFEST.items() if v["kind"] == "rerank")


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("tag", ["a", "b", "c"])
def test_golden_rerank(name, tag):
    z = np.load(GOLDEN / name)
    tol = MANIFEST[name]["tolerance"]
    k1, k2, lam = z[f"rerank_{tag}_params"]
    params = dict(k1=int(k1), k2=int(k2), lambda_value=float(lam))
    ref = z[f"rerank_{tag}"]
    out = rerank(z["q_g_dist"], z["q_q_dist"], z["g_g_dist"], **params)
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol[f"rerank_{tag}"]["atol"])
    feat = rerank_features(z["qf"], z["gf"], **params)
    np.testing.assert_allclose(feat, ref, rtol=0, atol=tol[f"rerank_{tag}"]["atol"])
    r = evaluate_distmat(
        out.astype(np.float64),
        z["q_pids"],
        z["g_pids"],
        z["q_camids"],
        z["g_camids"],
        max_rank=int(z["torchreid_max_rank"]),
    )
    np.testing.assert_allclose(r.mAP, z[f"torchreid_market_mAP_rerank_{tag}"], atol=1e-9)
    np.testing.assert_allclose(r.cmc, z[f"torchreid_market_cmc_rerank_{tag}"], atol=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_feature_path_equals_dense_path(metric):
    rng = np.random.default_rng(3)
    cent = rng.normal(size=(20, 24))
    gid, qid = rng.integers(0, 20, 160), rng.integers(0, 20, 25)
    gf = cent[gid] + 0.8 * rng.normal(size=(160, 24))
    qf = cent[qid] + 0.8 * rng.normal(size=(25, 24))
    dense = rerank(
        pairwise_distance(qf, gf, metric),
        pairwise_distance(qf, qf, metric),
        pairwise_distance(gf, gf, metric),
        k1=15,
        k2=4,
        lambda_value=0.2,
    )
    feat = rerank_features(qf, gf, k1=15, k2=4, lambda_value=0.2, metric=metric, chunk_size=17)
    np.testing.assert_allclose(feat, dense, atol=1e-5)


def test_rerank_errors():
    qg, qq, gg = np.ones((2, 5)), np.zeros((2, 2)), np.zeros((5, 5))
    with pytest.raises(ValueError, match="shapes do not fit"):
        rerank(qg, qq, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="k2"):
        rerank(qg, qq, gg, k1=3, k2=9)
    with pytest.raises(ValueError, match="exceeds"):
        rerank(qg, qq, gg, k1=20)
    with pytest.raises(ValueError, match="lambda_value"):
        rerank(qg, qq, gg, k1=3, k2=2, lambda_value=1.5)


@pytest.mark.parametrize("name", CASES)
def test_torchreid_input_reproduces_torchreid_engine(name):
    # torchreid's engine feeds squared Euclidean distances to the reference function; the config
    # names that setting (TEST.RERANK.INPUT torchreid) and the feature path reproduces it
    from reidbox.config.defaults import get_cfg_defaults
    from reidbox.evaluation import EvalSettings, evaluate

    z = np.load(GOLDEN / name)
    labels = (z["q_pids"], z["g_pids"], z["q_camids"], z["g_camids"])
    mr = int(z["torchreid_max_rank"])
    engine = rerank(z["q_g_dist"] ** 2, z["q_q_dist"] ** 2, z["g_g_dist"] ** 2, k1=7, k2=3)
    want = evaluate_distmat(engine.astype(np.float64), *labels, max_rank=mr)
    cfg = get_cfg_defaults()
    cfg.TEST.RERANK.ENABLED, cfg.TEST.RERANK.K1, cfg.TEST.RERANK.K2 = True, 7, 3
    cfg.TEST.MAX_RANK = mr
    cfg.TEST.RERANK.INPUT = "torchreid"
    got = evaluate(z["qf"], z["gf"], *labels, EvalSettings.from_config(cfg))
    assert got.mAP == pytest.approx(want.mAP, abs=1e-9)
    np.testing.assert_allclose(got.cmc, want.cmc, atol=1e-12)
    cfg.TEST.RERANK.INPUT = "reference"
    ref = evaluate(z["qf"], z["gf"], *labels, EvalSettings.from_config(cfg))
    plain = rerank(z["q_g_dist"], z["q_q_dist"], z["g_g_dist"], k1=7, k2=3)
    assert ref.mAP == pytest.approx(
        evaluate_distmat(plain.astype(np.float64), *labels, max_rank=mr).mAP, abs=1e-9
    )
    cfg.TEST.RERANK.INPUT = "fastreid"
    with pytest.raises(ValueError, match="TEST.RERANK.INPUT"):
        EvalSettings.from_config(cfg)


def _dense(q, g, metric, **params):
    d = [pairwise_distance(a, b, metric).numpy() for a, b in ((q, g), (q, q), (g, g))]
    return rerank(*d, **params)


def test_feature_path_keeps_the_tie_rule_of_the_matrix_path():
    # the case: three identical items; the neighbour lists are cut through the tie and
    # a stable argsort keeps the lower indices (the query itself, then gallery 0)
    q, g = np.array([[0.0]]), np.array([[0.0], [0.0], [-1.0]])
    params = dict(k1=1, k2=1, lambda_value=0.3)
    np.testing.assert_allclose(_dense(q, g, "euclidean", **params), [[0.0, 0.7, 1.0]], atol=1e-6)
    np.testing.assert_allclose(rerank_features(q, g, **params), [[0.0, 0.7, 1.0]], atol=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_duplicated_and_quantised_features_rerank_alike_on_both_paths(seed):
    # small integer features: every distance is exact in float32, so ties are real ties and the
    # two paths must cut them the same way; many duplicates, k1 cutting through tied groups
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 5))
    base = rng.integers(-2, 3, size=(int(rng.integers(2, 7)), d)).astype(np.float32)
    q = base[rng.integers(0, len(base), int(rng.integers(1, 10)))]
    g = base[rng.integers(0, len(base), int(rng.integers(5, 30)))]
    k1 = int(rng.integers(1, min(8, len(q) + len(g) - 1) + 1))
    params = dict(k1=k1, k2=int(rng.integers(1, k1 + 2)), lambda_value=0.3)
    for metric in ("euclidean", "sqeuclidean"):
        want = _dense(q, g, metric, **params)
        for chunk in (1, 3, 64):
            got = rerank_features(q, g, metric=metric, chunk_size=chunk, **params)
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"{metric} chunk {chunk}")
