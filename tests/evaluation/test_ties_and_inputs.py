"""Issue 15 items 1-3: one tie rule on every path (torch / FAISS / any chunk size), a clear error
when the distance step overflows, and the inputs the references accept."""

import numpy as np
import pytest
import torch

from reidbox.evaluation import EvalSettings, evaluate, evaluate_distmat
from reidbox.retrieval import RankSettings, rank_lists

PATHS = [("torch", 1), ("torch", 7), ("torch", None), ("faiss", 1), ("faiss", 7), ("faiss", None)]


def _planted_negative_copies(m=40, d=64, seed=0):
    """Each query's only true match has an identical-feature negative at a lower gallery index
    (gallery 2i: negative, 2i+1: match, same feature), far from every other query."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(m, d, generator=g), dim=1) * 10
    q = centres + 0.1 * torch.randn(m, d, generator=g)
    gal = torch.repeat_interleave(centres + 0.1 * torch.randn(m, d, generator=g), 2, dim=0)
    qp = np.arange(m)
    gp = np.stack([np.arange(m) + 1000, np.arange(m)], 1).ravel()
    return q, gal, qp, gp, np.zeros(m, np.int64), np.ones(2 * m, np.int64)


@pytest.mark.parametrize("backend,chunk", PATHS)
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_tied_negative_before_match_gives_half_map(backend, chunk, metric):
    # the documented rule (ties to the lower gallery index) ranks every match 2nd: AP 0.5
    r = evaluate(
        *_planted_negative_copies(), EvalSettings(metric=metric, backend=backend, chunk_size=chunk)
    )
    assert r.mAP == 0.5
    assert r.rank(1) == 0.0 and r.rank(2) == 1.0
    assert r.mINP == 0.5


def _random_with_planted_ties(seed, m=50, n=300, d=24):
    rng = np.random.default_rng(seed)
    ids = 30
    cent = rng.normal(size=(ids, d)) * 2
    gp, gc = rng.integers(0, ids, n), rng.integers(0, 4, n)
    qp, qc = rng.integers(0, ids, m), rng.integers(0, 4, m)
    gf = (cent[gp] + rng.normal(size=(n, d))).astype(np.float32)
    qf = (cent[qp] + rng.normal(size=(m, d))).astype(np.float32)
    # exact ties: copy 60 gallery rows over others (other labels), and some onto query rows
    src, dst = rng.choice(n, 60, replace=False), rng.choice(n, 60, replace=False)
    gf[dst] = gf[src]
    gf[rng.choice(n, 10, replace=False)] = qf[rng.choice(m, 10)]
    gf[:20] = gf[20]  # a block of identical rows
    return qf, gf, qp, gp, qc, gc


def _exact64(qf, gf, metric):
    q, g = torch.from_numpy(qf).double(), torch.from_numpy(gf).double()
    if metric == "cosine":
        qn = q.pow(2).sum(1).sqrt()[:, None]
        gn = g.pow(2).sum(1).sqrt()[None, :]
        return (1 - (q @ g.T) / (qn * gn)).numpy()
    d2 = (q[:, None, :] - g[None, :, :]).pow(2).sum(-1)
    return (d2.sqrt() if metric == "euclidean" else d2).numpy()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "metric,protocol",
    [
        ("euclidean", "market1501"),
        ("cosine", "market1501"),
        ("sqeuclidean", "market1501_official"),
        ("cosine", "cuhk03_classic"),
        ("euclidean", "openreid_market1501"),
    ],
)
def test_property_planted_ties_same_on_every_path(seed, metric, protocol):
    qf, gf, qp, gp, qc, gc = _random_with_planted_ties(seed)
    ref = evaluate_distmat(_exact64(qf, gf, metric), qp, gp, qc, gc, protocol=protocol, max_rank=20)
    assert 0.05 < ref.mAP < 0.95
    for backend, chunk in PATHS:
        r = evaluate(
            qf,
            gf,
            qp,
            gp,
            qc,
            gc,
            EvalSettings(protocol, metric, backend, chunk_size=chunk, max_rank=20),
        )
        assert np.array_equal(r.cmc, ref.cmc), (backend, chunk)
        assert np.array_equal(r.ap, ref.ap, equal_nan=True), (backend, chunk)
        assert r.mAP == ref.mAP and r.mINP == ref.mINP, (backend, chunk)
    lists = {
        (b, c): rank_lists(qf, gf, 12, RankSettings(metric, backend=b, chunk_size=c))[0]
        for b, c in PATHS
    }
    first = lists[PATHS[0]]
    assert all(np.array_equal(first, x) for x in lists.values())
    full = np.lexsort(
        (np.tile(np.arange(len(gf)), (len(qf), 1)), _exact64(qf, gf, metric)), axis=1
    )[:, :12]
    assert np.array_equal(first, full)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_rank_lists_on_identical_gallery_rows_start_at_zero(backend):
    g = torch.randn(1, 32).repeat(200, 1)
    q = torch.randn(3, 32)
    for chunk in (1, 2, 1024):
        idx, dist = rank_lists(
            q, g, topk=5, settings=RankSettings(backend=backend, chunk_size=chunk)
        )
        assert idx.tolist() == [[0, 1, 2, 3, 4]] * 3
        assert np.all(dist == dist[:, :1])


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_overflowing_features_give_a_clear_error(metric, backend):
    q, gal, qp, gp, qc, gc = _planted_negative_copies()
    settings = EvalSettings(metric=metric, backend=backend)
    ok = evaluate(q, gal, qp, gp, qc, gc, settings)
    assert ok.mAP == 0.5
    with pytest.raises(ValueError, match="too large for float32"):
        evaluate(q * 1e19, gal * 1e19, qp, gp, qc, gc, settings)
    with pytest.raises(ValueError, match="too large for float32"):
        rank_lists(q * 1e19, gal * 1e19, 5, RankSettings(metric, backend=backend))


def test_nan_or_inf_distances_are_refused():
    D = np.random.default_rng(0).random((4, 6))
    qp, gp = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3, 4, 5])
    qc, gc = np.zeros(4, int), np.ones(6, int)
    for bad in (np.nan, np.inf):
        D2 = D.copy()
        D2[2, 5] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            evaluate_distmat(D2, qp, gp, qc, gc)


def _tie_case():
    D = np.array([[1.0, 1.0, 2.0, 3.0], [2.0, 1.0, 1.0, 0.5]])
    return D, np.array([0, 1]), np.array([1, 0, 1, 0]), np.array([0, 0]), np.array([1, 1, 1, 1])


def test_bfloat16_and_half_distance_matrices_with_ties():
    D, qp, gp, qc, gc = _tie_case()
    ref = evaluate_distmat(D, qp, gp, qc, gc)
    # query 0: tie at 1.0 between index 0 (neg) and 1 (match) -> match at rank 2; query 1:
    # match 0 at index 0? no: pid 1 -> indices 0, 2 at 2.0 and 1.0; negatives 3 (0.5), 1 (1.0)
    # before index 2 (tie 1.0, lower index first) -> ranks 3 and 4
    assert ref.ap[0] == 0.5
    assert ref.ap[1] == pytest.approx((1 / 3 + 2 / 4) / 2)
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        r = evaluate_distmat(torch.from_numpy(D).to(dt), qp, gp, qc, gc)
        assert r.mAP == ref.mAP and np.array_equal(r.cmc, ref.cmc)


def test_negative_stride_arrays():
    D, qp, gp, qc, gc = _tie_case()
    ref = evaluate_distmat(
        np.ascontiguousarray(D[:, ::-1]), qp, gp[::-1].copy(), qc, gc[::-1].copy()
    )
    r = evaluate_distmat(D[:, ::-1], qp[::1], gp[::-1], qc, gc[::-1])
    assert r.mAP == ref.mAP and np.array_equal(r.cmc, ref.cmc)
    qf = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    ids = np.arange(6)
    rr = evaluate(
        qf[::-1], qf[::-1], ids[::-1], ids[::-1], np.zeros(6, int)[::-1], np.ones(6, int)[::-1]
    )
    assert rr.mAP == 1.0


def test_string_labels_are_mapped_like_torchreid_python():
    D, qp, gp, qc, gc = _tie_case()
    ref = evaluate_distmat(D, qp, gp, qc, gc)
    names = np.array(["anna", "bert"])
    cams = np.array(["c1", "c2"])
    r = evaluate_distmat(D, names[qp], names[gp], cams[qc], cams[gc])
    assert r.mAP == ref.mAP and np.array_equal(r.cmc, ref.cmc)
    r2 = evaluate_distmat(D, list(names[qp]), list(names[gp]), list(cams[qc]), list(cams[gc]))
    assert r2.mAP == ref.mAP
    # a query identity absent from the gallery is just a query without matches
    r3 = evaluate_distmat(D, np.array(["anna", "zoe"]), names[gp], cams[qc], cams[gc])
    assert r3.num_valid == 1
    with pytest.raises(ValueError, match="must both hold integers or both strings"):
        evaluate_distmat(D, qp, names[gp], qc, gc)
    with pytest.raises(ValueError, match="must hold integers"):
        evaluate_distmat(D, np.array([0.5, 1.0]), gp, qc, gc)


def _stable_sort_reference(D, qp, gp, qc, gc):
    """torchreid eval_market1501 logic with a stable sort (the documented tie rule)."""
    aps, first = [], []
    for i in range(len(qp)):
        o = np.argsort(D[i], kind="stable")
        keep = ~((gp[o] == qp[i]) & (gc[o] == qc[i]))
        hit = (gp[o] == qp[i])[keep]
        if not hit.any():
            continue
        r = np.flatnonzero(hit) + 1
        aps.append(np.mean(np.arange(1, len(r) + 1) / r))
        first.append(r[0])
    return np.mean(aps), np.mean(np.asarray(first) == 1)


@pytest.mark.parametrize("good", [True, False])
def test_counting_is_exact_at_both_ends_of_feature_quality(good):
    # issue 15 item 7: the binned counting must give the sort-based numbers whether the
    # matches sit at the top (mAP ~1) or anywhere (mAP ~0)
    g = torch.Generator().manual_seed(1)
    m, n, ids, d = 120, 3000, 40, 32
    gp, gc = torch.randint(0, ids, (n,), generator=g), torch.randint(0, 6, (n,), generator=g)
    qp, qc = gp[torch.randint(0, n, (m,), generator=g)], torch.randint(0, 6, (m,), generator=g)
    cent = torch.randn(ids, d, generator=g) * (10.0 if good else 0.0)
    gf = torch.nn.functional.normalize(cent[gp] + torch.randn(n, d, generator=g), dim=1)
    qf = torch.nn.functional.normalize(cent[qp] + torch.randn(m, d, generator=g), dim=1)
    lab = (qp.numpy(), gp.numpy(), qc.numpy(), gc.numpy())
    want_map, want_r1 = _stable_sort_reference(_exact64(qf.numpy(), gf.numpy(), "euclidean"), *lab)
    assert (want_map > 0.99) if good else (want_map < 0.05)
    for backend in ("torch", "faiss"):
        r = evaluate(qf, gf, *lab, EvalSettings(backend=backend, chunk_size=50))
        assert r.mAP == pytest.approx(want_map, abs=1e-12)
        assert r.rank(1) == pytest.approx(want_r1, abs=1e-12)


def test_default_block_is_sized_by_the_device():
    from reidbox.evaluation.streaming import BYTES_PER_ENTRY, default_chunk_size

    assert default_chunk_size(19732) == (1 << 24) // 19732  # CPU: ~16M distances
    free = 100 * 2**30  # e.g. a GPU with 100 GiB free: a quarter of it for one block
    assert default_chunk_size(82161, free_bytes=free) == free // 4 // BYTES_PER_ENTRY // 82161
    assert default_chunk_size(82161, free_bytes=2**20) == (1 << 24) // 82161  # never below CPU


def test_an_empty_gallery_is_one_line_not_an_index_error():
    from reidbox.errors import InputError

    q = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    none = np.array([], dtype=np.int64)
    pids, cams = np.array([1, 2, 3]), np.array([0, 0, 0])
    for run in (
        lambda: evaluate(q, np.zeros((0, 4), np.float32), pids, none, cams, none),
        lambda: evaluate_distmat(np.zeros((3, 0)), pids, none, cams, none),
    ):
        with pytest.raises(InputError, match="the gallery is empty") as e:
            run()
        assert "\n" not in str(e.value)
