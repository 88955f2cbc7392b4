"""Approximate FAISS indexes (IVF-Flat, IVF-PQ, HNSW): recall against exact search, saved and
loaded indexes answer alike, distances in the metric's units; average query expansion."""

import numpy as np
import pytest
import torch

from reidbox.retrieval import TorchIndex
from reidbox.retrieval.approx import APPROX_KINDS, ApproxIndex, ApproxParams, recall_at
from reidbox.retrieval.expansion import average_query_expansion


def clustered(n, m, d=32, latent=8, seed=0):
    """Unit feature rows of identities (8 images each) on a low-dimensional manifold."""
    rng = np.random.default_rng(seed)
    cent = rng.normal(size=(max(1, n // 8), latent))
    proj = rng.normal(size=(latent, d)) / np.sqrt(latent)

    def draw(k):
        x = (cent[rng.integers(0, len(cent), k)] + 0.5 * rng.normal(size=(k, latent))) @ proj
        x += 0.05 * rng.normal(size=(k, d))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(m), draw(n)


@pytest.mark.parametrize("kind", APPROX_KINDS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_recall_against_exact_and_save_load(kind, metric, tmp_path):
    q, g = clustered(4000, 100)
    exact_d, exact_i = TorchIndex(metric).add(g).search(q, 10)
    index = ApproxIndex(kind, metric).build(g)
    d, i = index.search(q, 10)
    assert recall_at(i, exact_i, 10) >= 0.9 and recall_at(i, exact_i, 1) >= 0.95
    hit = i == exact_i  # where the same item is found, the distance is the exact one
    np.testing.assert_allclose(d[hit], exact_d[hit], atol=2e-3 if kind == "ivf_pq" else 1e-4)
    index.save(str(tmp_path / "x.faiss"))
    again = ApproxIndex.load(str(tmp_path / "x.faiss"), kind, metric)
    d2, i2 = again.search(q, 10)
    assert torch.equal(i2, i) and torch.equal(d2, d) and again.params == index.params


def test_params_follow_the_gallery_and_errors():
    p = ApproxParams().resolved(100_000, 512)
    assert (p.nlist, p.nprobe, p.pq_m, p.pq_bits) == (1264, 158, 64, 8)
    small = ApproxParams().resolved(200, 32)
    assert small.nlist == 5 and small.nprobe == 5 and small.pq_bits == 2
    with pytest.raises(ValueError, match="available: ivf_flat, ivf_pq, hnsw"):
        ApproxIndex("lsh")
    with pytest.raises(RuntimeError, match="empty"):
        ApproxIndex("hnsw").search(np.zeros((1, 4), np.float32), 1)
    assert recall_at(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]]), 2) == 0.75


def test_average_query_expansion():
    g = np.eye(4, dtype=np.float32)
    q = np.array([[1.0, 0.1, 0, 0]], np.float32)
    out = average_query_expansion(q, g, np.array([[0, 1, 2]]), 2)
    want = q / np.linalg.norm(q) + g[0] + g[1]
    np.testing.assert_allclose(out.numpy(), want / np.linalg.norm(want), atol=1e-6)
    skip = average_query_expansion(q, g, np.array([[0, -1]]), 2)  # -1: no second neighbour
    want = q / np.linalg.norm(q) + g[0]
    np.testing.assert_allclose(skip.numpy(), want / np.linalg.norm(want), atol=1e-6)
    with pytest.raises(ValueError, match="n >= 1"):
        average_query_expansion(q, g, np.array([[0]]), 0)
