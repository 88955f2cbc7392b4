"""Torch and FAISS indexes: exact top-k against a full stable sort, ties, rank lists."""

import numpy as np
import pytest
import torch

from reidbox.retrieval import (
    FaissIndex,
    RankSettings,
    TorchIndex,
    build_index,
    pairwise_distance,
    rank_lists,
)


def _feats(seed=0, m=25, n=300, d=12):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("cls", [TorchIndex, FaissIndex])
def test_search_matches_full_sort(metric, cls):
    q, g = _feats()
    idx = cls(metric).add(g)
    assert idx.ntotal == len(g)
    d, i = idx.search(q, 10)
    full = pairwise_distance(q, g, metric).numpy()
    ref = np.argsort(full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(i.numpy(), ref)
    np.testing.assert_allclose(d.numpy(), np.take_along_axis(full, ref, 1), atol=1e-4)
    np.testing.assert_allclose(idx.distances(q[:3]).numpy(), full[:3], atol=1e-4)


def test_ties_go_to_lower_gallery_index():
    g = np.array([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0]], np.float32)
    q = np.array([[1.0, 0]], np.float32)
    for cls in (TorchIndex, FaissIndex):
        _, i = cls("euclidean").add(g).search(q, 4)
        assert i[0].tolist() == [0, 2, 1, 3]


def test_rank_lists_and_backends_agree():
    q, g = _feats(1)
    a_i, a_d = rank_lists(q, g, topk=15, settings=RankSettings(backend="torch", chunk_size=4))
    b_i, b_d = rank_lists(q, g, topk=15, settings=RankSettings(backend="faiss"))
    np.testing.assert_array_equal(a_i, b_i)
    np.testing.assert_allclose(a_d, b_d, atol=1e-4)
    assert a_i.shape == (25, 15) and a_i.dtype == np.int64 and a_d.dtype == np.float32
    assert np.all(np.diff(a_d, axis=1) >= 0)
    i, _ = rank_lists(q, g[:5], topk=50)
    assert i.shape == (25, 5)


def test_build_index_choice_and_errors():
    q, g = _feats()
    assert isinstance(build_index(g, backend="torch"), TorchIndex)
    assert isinstance(build_index(g, backend="auto"), FaissIndex)  # faiss-cpu is installed
    assert isinstance(build_index(torch.from_numpy(g), backend="auto", device="cpu"), TorchIndex)
    with pytest.raises(ValueError, match="unknown backend"):
        build_index(g, backend="hnsw")
    with pytest.raises(RuntimeError, match="empty"):
        TorchIndex().search(q, 3)
    with pytest.raises(ValueError, match="2-D"):
        TorchIndex().add(g[0])
    with pytest.raises(ValueError, match="topk"):
        rank_lists(q, g, topk=0)


@pytest.mark.parametrize("cls", [TorchIndex, FaissIndex])
def test_k_cutting_through_a_tie_keeps_the_lower_gallery_indices(cls):
    # 40 copies of the same vector: whatever k, the top k are the k lowest copies, in order
    rng = np.random.default_rng(0)
    g = np.repeat(rng.normal(size=(3, 8)).astype(np.float32), 40, axis=0)[rng.permutation(120)]
    q = g[[0, 7, 50]]
    full = pairwise_distance(q, g, "euclidean").numpy()
    ref = np.argsort(full, axis=1, kind="stable")
    for k in (1, 5, 39, 41, 120):
        _, i = cls("euclidean").add(g).search(q, k)
        np.testing.assert_array_equal(i.numpy(), ref[:, :k])
