"""Hand-checkable metric values, tie handling against a plain sorting implementation, errors."""

import warnings

import numpy as np
import pytest

from reidbox.evaluation import PROTOCOLS, EvalResult, evaluate_distmat, results_table


def _brute_market(D, qp, gp, qc, gc, max_rank, trapezoid=False):
    """Obvious per-query loop with a stable sort (the definition the engine must equal)."""
    ap, inp, cmc = [], [], np.zeros(max_rank)
    for i in range(len(D)):
        o = np.argsort(D[i], kind="stable")
        keep = ~((gp[o] == qp[i]) & (gc[o] == qc[i]))
        hits = np.flatnonzero((gp[o] == qp[i])[keep]) + 1
        if len(hits) == 0:
            continue
        k = np.arange(1, len(hits) + 1)
        if trapezoid:
            prev = np.where(hits > 1, (k - 1) / np.maximum(hits - 1, 1), 1.0)
            ap.append(np.mean((k / hits + prev) / 2))
        else:
            ap.append(np.mean(k / hits))
        inp.append(len(hits) / hits[-1])
        cmc[hits[0] - 1 :] += 1
    return cmc / len(ap), np.mean(ap), np.mean(inp)


def test_single_match_at_rank_two_step_vs_trapezoid():
    D = np.array([[0.1, 0.2, 0.3]])
    args = (D, [1], [0, 1, 2], [0], [1, 1, 1])
    assert evaluate_distmat(*args, max_rank=3).mAP == pytest.approx(0.5)
    assert evaluate_distmat(*args, protocol="market1501_official", max_rank=3).mAP == pytest.approx(
        0.25
    )


def test_sklearn_docstring_example_both_versions():
    # y_true [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8]: sklearn >= 0.19 gives 0.8333,
    # <= 0.18 gave 0.7916 (trapezoid).
    D = -np.array([[0.1, 0.4, 0.35, 0.8]])
    args = (D, [7], [0, 1, 7, 7], [0], [1, 1, 1, 1])
    r = evaluate_distmat(*args, protocol="openreid_market1501", max_rank=4)
    assert r.mAP == pytest.approx(0.8333333333)
    r = evaluate_distmat(
        *args, protocol="openreid_market1501", max_rank=4, ap_mode="sklearn_pre019"
    )
    assert r.mAP == pytest.approx(0.7916666667)


@pytest.mark.parametrize(
    "dist,qids,gids,qcams,gcams,expected",
    [
        # Open-ReID's published unit-test values for the allshots CMC (default ids and cameras).
        (
            [[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [1, 2, 3, 4, 0]],
            range(5),
            range(5),
            [0] * 5,
            [1] * 5,
            [0.6, 0.6, 0.8, 1.0, 1.0],
        ),
        (
            np.tile(np.arange(4), (4, 1)),
            [0, 0, 1, 1],
            [0, 0, 1, 1],
            [0] * 4,
            [1] * 4,
            [0.5, 0.5, 1, 1],
        ),
        (
            np.tile(np.arange(5), (5, 1)),
            [0, 0, 0, 1, 1],
            [0, 0, 0, 1, 1],
            [0] * 5,
            [0, 1, 1, 1, 1],
            [0.6, 0.6, 0.6, 1, 1],
        ),
    ],
)
def test_openreid_allshots_unit_values(dist, qids, gids, qcams, gcams, expected):
    r = evaluate_distmat(
        np.asarray(dist, float),
        list(qids),
        list(gids),
        qcams,
        gcams,
        protocol="openreid_allshots",
        max_rank=len(expected),
    )
    np.testing.assert_allclose(r.cmc, expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_equals_stable_sort_definition_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    m, n = 40, 300
    D = rng.integers(0, 12, size=(m, n)).astype(np.float64)  # heavy ties
    gp, gc = rng.integers(0, 30, n), rng.integers(0, 4, n)
    qp, qc = rng.integers(0, 32, m), rng.integers(0, 4, m)
    for proto, trap in (("market1501", False), ("msmt17_official", True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # msmt17_official warns about no-match queries
            r = evaluate_distmat(D, qp, gp, qc, gc, protocol=proto, max_rank=20)
        cmc, mAP, mINP = _brute_market(D, qp, gp, qc, gc, 20, trapezoid=trap)
        np.testing.assert_allclose(r.mAP, mAP, atol=1e-12)
        if proto == "market1501":
            np.testing.assert_allclose(r.cmc, cmc, atol=1e-12)
            np.testing.assert_allclose(r.mINP, mINP, atol=1e-12)


def test_sklearn_ap_is_tie_order_invariant():
    rng = np.random.default_rng(5)
    D = rng.integers(0, 5, size=(20, 80)).astype(float)
    gp, gc = rng.integers(0, 10, 80), rng.integers(0, 3, 80)
    qp, qc = rng.integers(0, 10, 20), rng.integers(0, 3, 20)
    perm = rng.permutation(80)
    a = evaluate_distmat(D, qp, gp, qc, gc, protocol="openreid_market1501")
    b = evaluate_distmat(D[:, perm], qp, gp[perm], qc, gc[perm], protocol="openreid_market1501")
    np.testing.assert_allclose(a.ap, b.ap, atol=1e-12)
    c = evaluate_distmat(D, qp, gp, qc, gc, protocol="market1501")
    assert not np.allclose(np.nan_to_num(a.ap), np.nan_to_num(c.ap))  # step AP depends on order


def test_minus_one_is_junk_only_for_market_official():
    D = np.array([[0.1, 0.2, 0.3]])
    args = (D, [5], [-1, 5, 0], [0], [1, 1, 1])
    assert evaluate_distmat(*args, protocol="market1501_official", max_rank=3).cmc[0] == 1.0
    assert evaluate_distmat(*args, protocol="market1501", max_rank=3).cmc[0] == 0.0


def test_denominators_valid_vs_all():
    D = np.array([[0.1, 0.2], [0.1, 0.2]])
    # query 1 has only a same-camera match: invalid.
    args = (D, [1, 2], [1, 2], [0, 0], [1, 0])
    r = evaluate_distmat(*args, max_rank=2)
    assert r.num_valid == 1 and r.mAP == 1.0 and np.isnan(r.ap[1])
    r = evaluate_distmat(*args, protocol="market1501_official", max_rank=2)
    assert r.mAP == 0.5 and r.cmc[0] == 0.5


def test_every_protocol_runs_and_reports_its_name():
    rng = np.random.default_rng(1)
    D = rng.random((15, 60))
    gp, gc = rng.integers(0, 8, 60), rng.integers(0, 3, 60)
    qp, qc = rng.integers(0, 8, 15), rng.integers(0, 3, 15)
    for name in PROTOCOLS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = evaluate_distmat(D, qp, gp, qc, gc, protocol=name, max_rank=10)
        assert r.protocol == name and r.cmc.shape == (10,)
        assert np.all(np.diff(r.cmc) >= 0) and 0 <= r.mAP <= 1


def test_results_table_formats_rows():
    r = EvalResult(cmc=np.linspace(0.5, 1, 50), mAP=0.4, mINP=0.1, ap=np.zeros(3), num_valid=3)
    t = results_table({"market": r})
    assert "| market | market1501 | 50.00 |" in t and "| 40.00 | 10.00 |" in t
    assert r.to_dict()["rank1"] == 0.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(protocol="market"), "available: market1501"),
        (dict(ap_mode="area"), "unknown ap_mode"),
        (dict(max_rank=0), "max_rank"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises((KeyError, ValueError), match=match):
        evaluate_distmat(np.zeros((1, 2)), [0], [0, 1], [0], [1, 1], **kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        evaluate_distmat(np.zeros(3), [0], [0, 1, 2], [0], [1, 1, 1])
    with pytest.raises(ValueError, match="g_pids has 2"):
        evaluate_distmat(np.zeros((1, 3)), [0], [0, 1], [0], [1, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_distmat(np.array([[np.nan, 1.0]]), [0], [0, 1], [0], [1, 1])
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_distmat(np.zeros((1, 2)), [0], [0, 1], [1], [1, 1])


@pytest.mark.parametrize("seed", range(3))
def test_float32_fast_path_equals_float64_path(seed):
    # float32 blocks take the packed-key path, float64 the plain search; same values, same result
    rng = np.random.default_rng(seed)
    m, n = 30, 250
    D = (rng.integers(-6, 10, size=(m, n)) * 0.25).astype(np.float32)  # ties, negatives, -0.0
    D[0, :5] = -0.0
    gp, gc = rng.integers(-1, 25, n), rng.integers(0, 3, n)
    qp, qc = rng.integers(0, 25, m), rng.integers(0, 3, m)
    for proto in ("market1501", "market1501_official", "openreid_allshots"):
        for ap_mode in ("step", "sklearn_pre019"):
            a = evaluate_distmat(D, qp, gp, qc, gc, protocol=proto, ap_mode=ap_mode)
            b = evaluate_distmat(
                D.astype(np.float64), qp, gp, qc, gc, protocol=proto, ap_mode=ap_mode
            )
            np.testing.assert_array_equal(a.cmc, b.cmc)
            np.testing.assert_array_equal(a.ap, b.ap)
            np.testing.assert_array_equal(a.inp, b.inp)


def test_minus_one_query_rejected_by_official_protocol():
    with pytest.raises(ValueError, match="pid -1"):
        evaluate_distmat(
            np.zeros((1, 2)), [-1], [-1, 1], [0], [1, 1], protocol="market1501_official"
        )


def _valid_stats(s):
    """The statistics' arrays where a good exists (columns past a row's count are padding)."""
    mask = np.arange(s.neg_lt.shape[1])[None, :] < s.G[:, None]
    return [s.G] + [x[mask] for x in (s.neg_lt, s.neg_le, s.neg_st, s.pos_lt, s.pos_le)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("junk_minus1", [False, True])
def test_binned_counts_equal_the_brute_force_oracle(seed, junk_minus1):
    # the named steps of _chunk_stats against reference_stats, its documented definition:
    # small integer distances (ties everywhere), goods anywhere in the row, -1 junk, same-camera
    # matches, and a query without a good
    import torch

    from reidbox.evaluation.metrics import _chunk_stats, _Gallery, reference_stats

    rng = np.random.default_rng(seed)
    c, n = 9, 120
    gp, gc = rng.integers(-1, 6, n), rng.integers(0, 3, n)
    qp, qc = rng.integers(0, 7, c), rng.integers(0, 3, c)
    D = torch.from_numpy(rng.integers(0, 12, (c, n)).astype(np.float64))
    gal = _Gallery(gp, gc)
    got = _chunk_stats(D, qp, qc, gal, junk_minus1)
    want = reference_stats(D, qp, qc, gal, junk_minus1)
    for a, b in zip(_valid_stats(got), _valid_stats(want)):
        np.testing.assert_array_equal(a, b)


def test_feature_path_counts_equal_the_oracle_on_near_ties():
    # float32 blocks whose near-ties only the float64 re-scoring orders correctly
    import torch

    from reidbox.evaluation.metrics import _chunk_stats, _Gallery, reference_stats
    from reidbox.retrieval.distance import pairwise_distance
    from reidbox.retrieval.exact import FeatureExact

    rng = np.random.default_rng(7)
    c, n, d = 12, 200, 16
    g = rng.normal(size=(n, d)).astype(np.float32)
    g[100:150] = g[50:100] + rng.normal(scale=1e-7, size=(50, d)).astype(np.float32)
    q = np.concatenate([g[rng.integers(0, n, c - 4)], rng.normal(size=(4, d))]).astype(np.float32)
    gp, gc = rng.integers(0, 20, n), rng.integers(0, 4, n)
    qp, qc = rng.integers(0, 20, c), rng.integers(0, 4, c)
    qt, gt = torch.from_numpy(q), torch.from_numpy(g)
    D = torch.as_tensor(pairwise_distance(qt, gt, "euclidean")).float()
    exact = FeatureExact(qt, gt, "euclidean").at(slice(0, c))
    gal = _Gallery(gp, gc)
    got = _chunk_stats(D, qp, qc, gal, False, exact)
    want = reference_stats(D, qp, qc, gal, False, exact)
    for a, b in zip(_valid_stats(got), _valid_stats(want)):
        np.testing.assert_array_equal(a, b)
