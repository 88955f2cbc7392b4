"""Approximate gallery search against exact: build time, query latency, memory per vector and
recall@1/@10 of FAISS IVF-Flat, IVF-PQ (with and without exact re-scoring) and HNSW at their
default settings (``reidbox.retrieval.approx.ApproxParams``), on synthetic galleries.

The synthetic features imitate ReID embeddings: identities of 8 images on a 64-dimensional
subspace of d dimensions, plus small isotropic noise, L2-normalised
(isotropic random vectors, with no neighbourhood structure, are the worst case of every
approximate index and no model's features look like them). Recall@k is the fraction of the
exact top-k (torch, exact float64 tie rule) that the approximate top-k contains. Run:

    python benchmarks/ann_search.py --sizes 100000 --dims 512 2048 --write
    python benchmarks/ann_search.py --smoke            # a tiny size: what the tests run

Not a test: the 100k rows take minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reidbox.retrieval import TorchIndex
from reidbox.retrieval.approx import ApproxIndex, ApproxParams, recall_at

HEADING = "## Approximate search (FAISS) against exact"
KINDS = ("exact", "ivf_flat", "ivf_pq", "ivf_pq_norefine", "hnsw")


def synthetic(
    n: int, d: int, seed: int, ids: int, latent: int = 64, chunk: int = 50_000
) -> np.ndarray:
    """(n, d) float32 unit rows of ``ids`` identities: centres on a ``latent``-dimensional
    subspace (the same for every ``seed``), per-image noise in it and a little in every
    dimension; made in chunks."""
    rng = np.random.default_rng(0)  # the subspace and the identities: shared by q and g
    proj = (rng.normal(size=(latent, d)) / np.sqrt(latent)).astype(np.float32)
    cent = rng.normal(size=(ids, latent)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        z = cent[rng.integers(0, ids, k)] + 0.5 * rng.normal(size=(k, latent))
        x = z.astype(np.float32) @ proj + 0.05 * rng.normal(size=(k, d)).astype(np.float32)
        out[s : s + k] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _exact(g: np.ndarray, q: np.ndarray, k: int):
    index = TorchIndex("euclidean").add(torch.from_numpy(g))
    t = time.perf_counter()
    _, i = index.search(torch.from_numpy(q), k)
    batch = time.perf_counter() - t
    return index, i.numpy(), batch


def _without_refine(index: ApproxIndex) -> ApproxIndex:
    """The same trained IVF-PQ index without its exact re-scoring (no second training)."""
    import faiss

    bare = ApproxIndex("ivf_pq", index.metric)
    bare.index = faiss.downcast_index(index.index.base_index)
    bare.params = ApproxParams(**{**index.params.__dict__, "refine": 0})
    bare._set_search_params()
    return bare


def _single_latency(search, q: np.ndarray, k: int, reps: int) -> float:
    """Median milliseconds of one query searched alone (after one warm-up)."""
    search(q[:1], k)
    times = []
    for j in range(reps):
        t = time.perf_counter()
        search(q[j : j + 1], k)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def measure(n: int, d: int, nq: int, kinds, reps: int) -> list:
    n_ids = max(1, n // 8)  # 8 gallery images per identity on average
    g = synthetic(n, d, seed=1, ids=n_ids)
    q = synthetic(nq, d, seed=2, ids=n_ids)
    k = 10
    rows = []
    exact_index, truth, exact_batch = _exact(g, q, k)
    built = {}
    for kind in kinds:
        if kind == "exact":
            build, batch, ids = 0.0, exact_batch, truth
            mem = 4 * d

            def search(x, kk, index=exact_index):
                return index.search(torch.from_numpy(x), kk)

        elif kind == "ivf_pq_norefine":  # the codes of the IVF-PQ index, searched alone
            if built.get("ivf_pq") is None:
                continue
            name, (index, build) = "ivf_pq", built["ivf_pq"]
            index = _without_refine(index)
        else:
            name = kind
            t = time.perf_counter()
            index = ApproxIndex(name, "euclidean").build(g)
            build = time.perf_counter() - t
            built[kind] = (index, build)
        if kind != "exact":
            t = time.perf_counter()
            _, i = index.search(q, k)
            batch = time.perf_counter() - t
            ids = i.numpy()
            mem = index.memory_bytes() / n
            search = index.search
            settings = _settings(name, index.params)
        single = _single_latency(search, q, k, reps)
        rows.append(
            {
                "n": n,
                "d": d,
                "kind": kind,
                "settings": "" if kind == "exact" else settings,
                "build_s": build,
                "batch_ms_per_query": 1000 * batch / nq,
                "single_ms": single,
                "bytes_per_vector": mem,
                "recall1": recall_at(ids, truth, 1),
                "recall10": recall_at(ids, truth, 10),
            }
        )
        print(_row(rows[-1]), flush=True)
    return rows


def _settings(kind: str, p: ApproxParams) -> str:
    if kind == "hnsw":
        return f"M {p.hnsw_m}, efC {p.ef_construction}, efS {p.ef_search}"
    s = f"nlist {p.nlist}, nprobe {p.nprobe}"
    if kind == "ivf_pq":
        s += f", m {p.pq_m} x {p.pq_bits} bit" + (f", refine {p.refine}x" if p.refine else "")
    return s


def _row(r: dict) -> str:
    return (
        f"| {r['n']:,} | {r['d']} | {r['kind']} | {r['settings']} | {r['build_s']:.1f} | "
        f"{r['batch_ms_per_query']:.3f} | {r['single_ms']:.2f} | {r['bytes_per_vector']:.0f} | "
        f"{r['recall1']:.3f} | {r['recall10']:.3f} |"
    )


def table(rows: list, note: str) -> str:
    head = (
        "| gallery | d | index | settings (defaults) | build (s) | batch query (ms/query) | "
        "single query (ms) | memory (bytes/vector) | recall@1 | recall@10 |\n"
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|\n"
    )
    return f"{HEADING}\n\n{note}\n\n{head}" + "\n".join(_row(r) for r in rows) + "\n"


def write_section(text: str, path: Path) -> None:
    """Replace this benchmark's section of docs/benchmarks.md (or append it)."""
    doc = path.read_text()
    if HEADING in doc:
        start = doc.index(HEADING)
        nxt = doc.find("\n## ", start + len(HEADING))
        doc = doc[:start] + text + (doc[nxt + 1 :] if nxt >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    p.add_argument("--dims", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--reps", type=int, default=50, help="single-query repetitions")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="a tiny size (2,000 x 32)")
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.dims, args.queries, args.reps = [2000], [32], 50, 3
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    rows = []
    for n in args.sizes:
        for d in args.dims:
            rows += measure(n, d, args.queries, args.kinds, args.reps)
    note = (
        f"`python benchmarks/ann_search.py --sizes {' '.join(map(str, args.sizes))} --dims "
        f"{' '.join(map(str, args.dims))} --write` on {platform.machine()} "
        f"({os.cpu_count()} cores, {args.threads} threads, shared with other jobs), "
        f"faiss {faiss.__version__}, torch {torch.__version__}; {args.queries} queries, k 10."
    )
    text = table(rows, note)
    print(text)
    if args.write:
        write_section(text, Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
