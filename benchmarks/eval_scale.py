"""Evaluation at scale: time and peak memory of ``reidbox.evaluation.evaluate`` beside the bare
similarity GEMM (the floor) and the dense path (full matrix + full argsort + per-query loop, as
torchreid does), on random features at Market-1501 and MSMT17 test sizes; plus k-reciprocal
re-ranking (sparse feature path vs a dense reference-style implementation).

Every measurement runs in its own subprocess so that its peak RSS (VmHWM) is its own; features
are generated inside that process and counted in its peak. Run:

    python benchmarks/eval_scale.py                      # everything, writes docs/benchmarks.md
    python benchmarks/eval_scale.py --sizes market --no-rerank
    python benchmarks/eval_scale.py --quality --sizes market   # mAP ~1 vs mAP ~0 rows

Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SIZES = {  # name: (queries, gallery, identities, cameras)
    "market": (3368, 19732, 751, 6),
    "msmt": (11659, 82161, 3060, 15),
}
DIM = 2048
HEADING = "## Evaluation at scale"
QUALITY_HEADING = "## Evaluation cost vs feature quality"


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_problem(size: str, dim: int = DIM, seed: int = 0, scale: float = 1.0):
    """Random clustered float32 features with Market/MSMT-like labels (identity centres plus
    noise, so that the metrics are neither 0 nor 1)."""
    m, n, ids, cams = SIZES[size]
    m, n = int(m * scale), int(n * scale)
    g = torch.Generator().manual_seed(seed)
    gp = torch.randint(0, ids, (n,), generator=g)
    qp = gp[torch.randint(0, n, (m,), generator=g)]
    gc = torch.randint(0, cams, (n,), generator=g)
    qc = torch.randint(0, cams, (m,), generator=g)
    centres = torch.randn(ids, dim, generator=g)
    gf, qf = torch.empty(n, dim), torch.empty(m, dim)
    for out, pids in ((gf, gp), (qf, qp)):  # filled in slices: no full-size temporaries
        for s in range(0, len(out), 4096):
            sl = slice(s, s + 4096)
            out[sl] = torch.randn(len(out[sl]), dim, generator=g).mul_(3.2).add_(centres[pids[sl]])
    return qf, gf, qp.numpy(), gp.numpy(), qc.numpy(), gc.numpy()


def make_quality_problem(good: bool, size: str = "market", dim: int = 256, seed: int = 0):
    """Unit-norm features at ``size``: well separated (identity centres far apart, mAP ~1) or
    uninformative (pure noise, mAP ~0), the two ends of feature quality."""
    m, n, ids, cams = SIZES[size]
    g = torch.Generator().manual_seed(seed)
    gp = torch.randint(0, ids, (n,), generator=g)
    qp = gp[torch.randint(0, n, (m,), generator=g)]
    gc = torch.randint(0, cams, (n,), generator=g)
    qc = torch.randint(0, cams, (m,), generator=g)
    centres = torch.randn(ids, dim, generator=g) * (10.0 if good else 0.0)
    gf = torch.nn.functional.normalize(centres[gp] + torch.randn(n, dim, generator=g), dim=1)
    qf = torch.nn.functional.normalize(centres[qp] + torch.randn(m, dim, generator=g), dim=1)
    return qf, gf, qp.numpy(), gp.numpy(), qc.numpy(), gc.numpy()


def dense_eval(qf, gf, qp, gp, qc, gc, max_rank=50, kind="stable"):
    """The dense path: full squared-Euclidean matrix, full argsort, per-query Python loop with
    the Market rule and step AP (torchreid's eval_market1501 procedure, written here).
    kind="stable" gives reidbox's tie order (identical numbers); torchreid uses numpy's default
    (kind=None), faster but tie order unspecified."""
    q2, g2 = qf.pow(2).sum(1, keepdim=True), gf.pow(2).sum(1, keepdim=True)
    distmat = torch.addmm(q2 + g2.T, qf, gf.T, beta=1, alpha=-2).numpy()
    # stable like Matlab and reidbox: float32 squared distances of this size do tie, and the
    # default (unstable) numpy sort would give slightly different numbers
    order = np.argsort(distmat, axis=1, kind=kind)
    matches = (gp[order] == qp[:, None]).astype(np.int32)
    cmcs, aps = [], []
    for i in range(len(qp)):
        o = order[i]
        keep = ~((gp[o] == qp[i]) & (gc[o] == qc[i]))
        raw = matches[i][keep]
        if not raw.any():
            continue
        c = raw.cumsum()
        c[c > 1] = 1
        cmcs.append(c[:max_rank])
        hits = np.flatnonzero(raw) + 1
        aps.append(np.mean(np.arange(1, len(hits) + 1) / hits))
    return np.mean(np.asarray(cmcs, np.float64), 0), float(np.mean(aps))


def dense_rerank(qf, gf, k1=20, k2=6, lam=0.3):
    """Dense k-reciprocal re-ranking as the reference function computes it: N x N matrices,
    full argsort, per-row loops, dense V, column scans for the inverted index."""
    x = torch.cat([qf, gf])
    sq = x.pow(2).sum(1, keepdim=True)
    d = torch.addmm(sq + sq.T, x, x.T, alpha=-2).clamp_(min=0).numpy()  # squared distances
    d = (d / d.max(axis=0)).T.astype(np.float32)
    N, m = len(x), len(qf)
    rank = np.argsort(d, axis=1).astype(np.int32)
    V = np.zeros_like(d)
    h = int(np.around(k1 / 2.0)) + 1

    def recip(i, k):
        fwd = rank[i, :k]
        return fwd[np.where(rank[fwd, :k] == i)[0]]

    for i in range(N):
        r = recip(i, k1 + 1)
        exp = r
        for c in r:
            rc = recip(c, h)
            if len(np.intersect1d(rc, r)) > 2.0 / 3 * len(rc):
                exp = np.append(exp, rc)
        exp = np.unique(exp)
        w = np.exp(-d[i, exp])
        V[i, exp] = w / w.sum()
    if k2 != 1:
        Vq = np.zeros_like(V)
        for i in range(N):
            Vq[i] = V[rank[i, :k2]].mean(0)
        V = Vq
    inv = [np.where(V[:, t] != 0)[0] for t in range(N)]
    out = np.zeros((m, N), np.float32)
    for i in range(m):
        s = np.zeros(N, np.float32)
        for t in np.where(V[i] != 0)[0]:
            s[inv[t]] += np.minimum(V[i, t], V[inv[t], t])
        out[i] = 1 - s / (2 - s)
    return ((1 - lam) * out + lam * d[:m])[:, m:]


def run_task(task: str, size: str, scale: float, threads: int) -> dict:
    torch.set_num_threads(threads)
    from reidbox.evaluation import EvalSettings, evaluate, evaluate_distmat
    from reidbox.retrieval import rerank_features

    if task.startswith("quality_"):
        return quality_task(task, size, evaluate)
    qf, gf, qp, gp, qc, gc = make_problem(size, scale=scale)
    base = _peak_mb()
    t = time.perf_counter()
    out: dict = {}
    if task == "floor":
        s = qf @ gf.T
        out["checksum"] = float(s[0, 0])
    elif task == "evaluate":
        r = evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(metric="sqeuclidean", backend="torch"))
        out.update(mAP=r.mAP, cmc=r.cmc.tolist(), mINP=r.mINP)
    elif task == "evaluate_auto":
        r = evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(metric="sqeuclidean"))
        out.update(mAP=r.mAP, cmc=r.cmc.tolist(), mINP=r.mINP)
    elif task == "evaluate_faiss":
        r = evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(metric="sqeuclidean", backend="faiss"))
        out.update(mAP=r.mAP, cmc=r.cmc.tolist())
    elif task in ("dense", "dense_default"):
        cmc, mAP = dense_eval(qf, gf, qp, gp, qc, gc, kind="stable" if task == "dense" else None)
        out.update(mAP=mAP, cmc=cmc.tolist())
    elif task == "rerank":
        r = evaluate(
            qf, gf, qp, gp, qc, gc, EvalSettings(rerank=dict(k1=20, k2=6, lambda_value=0.3))
        )
        out.update(mAP=r.mAP, cmc=r.cmc.tolist())
    elif task == "rerank_dense":
        d = dense_rerank(qf, gf)
        r = evaluate_distmat(d, qp, gp, qc, gc)
        out.update(mAP=r.mAP, cmc=r.cmc.tolist())
    elif task == "rerank_check":  # sparse vs dense on the same small problem
        a = dense_rerank(qf, gf)
        b = rerank_features(qf, gf)
        out.update(maxdiff=float(np.abs(a - b).max()))
    else:
        raise ValueError(task)
    out.update(seconds=time.perf_counter() - t, peak_mb=_peak_mb(), base_mb=base)
    return out


def quality_task(task: str, size: str, evaluate) -> dict:
    """quality_{floor,good,bad}_{torch,auto}: best of two calls in one process."""
    from reidbox.evaluation import EvalSettings

    _, kind, backend = task.split("_")
    qf, gf, qp, gp, qc, gc = make_quality_problem(kind != "bad", size)
    base = _peak_mb()
    best, gemm, out = float("inf"), float("inf"), {}
    if kind != "floor":
        for _ in range(2):
            t = time.perf_counter()
            r = evaluate(qf, gf, qp, gp, qc, gc, EvalSettings(backend=backend))
            best = min(best, time.perf_counter() - t)
            out.update(mAP=r.mAP, rank1=float(r.cmc[0]))
        out["eval_peak_mb"] = _peak_mb()  # before the GEMM below holds the full product
    for _ in range(2):  # the bare GEMM in the same process: load on a shared machine varies
        t = time.perf_counter()
        s = qf @ gf.T
        gemm = min(gemm, time.perf_counter() - t)
        out["checksum"] = float(s[0, 0])
        del s
    out.update(
        seconds=gemm if kind == "floor" else best,
        gemm_seconds=gemm,
        peak_mb=out.get("eval_peak_mb", _peak_mb()),
        base_mb=base,
    )
    return out


def run_quality(size: str, threads: int) -> str:
    """Section: cost of evaluate at the two ends of feature quality (issue 15, item 7)."""
    from reidbox.evaluation.streaming import BYTES_PER_ENTRY, default_chunk_size

    m, n, _, _ = SIZES[size]
    fl = spawn("quality_floor_torch", size, threads=threads)
    rows = []
    for backend in ("torch", "auto"):
        g = spawn(f"quality_good_{backend}", size, threads=threads)
        b = spawn(f"quality_bad_{backend}", size, threads=threads)
        rows.append((backend, g, b))
    block_mb = default_chunk_size(n) * n * BYTES_PER_ENTRY / 2**20
    lines = [
        QUALITY_HEADING,
        "",
        f"`python benchmarks/eval_scale.py --quality --sizes {size}` on this machine "
        f"({os.cpu_count()} cores shared with other jobs, torch threads = {threads}): "
        f"{size} size ({m} x {n}), d = 256, unit-norm features, metric euclidean, "
        "protocol market1501, best of two calls in one process each. 'well separated': "
        "identity centres far apart (mAP ~1); 'uninformative': pure noise (mAP ~0). "
        "'vs GEMM' = time / the bare q @ g.T product timed in the same process "
        "(load on this shared machine varies between processes). Peak - features = the "
        "process's peak RSS above its size after generating the features (the GEMM row "
        "holds the full product); the stated bound is 6 float32 blocks + 100 MB "
        f"({block_mb + 100:.0f} MB at the default block).",
        "",
        "| backend | features | mAP | time (s) | bare GEMM (s) | vs GEMM | peak - features (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| - | bare GEMM q @ g.T | - | {fl['seconds']:.2f} | {fl['seconds']:.2f} | "
        f"1.00x | {fl['peak_mb'] - fl['base_mb']:.0f} |",
    ]
    notes = []
    for backend, g, b in rows:
        for label, r in (("well separated", g), ("uninformative", b)):
            lines.append(
                f"| {backend} | {label} | {r['mAP']:.4f} | {r['seconds']:.2f} | "
                f"{r['gemm_seconds']:.2f} | {r['seconds'] / r['gemm_seconds']:.2f}x | "
                f"{r['peak_mb'] - r['base_mb']:.0f} |"
            )
        ratio = (b["seconds"] / b["gemm_seconds"]) / (g["seconds"] / g["gemm_seconds"])
        notes.append(
            f"{backend}: uninformative / well separated = "
            f"{b['seconds'] / g['seconds']:.2f}x in time, {ratio:.2f}x in units of "
            "the same-process GEMM "
            f"(target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})"
        )
    lines.append("| GPU (any) | both | - | not measured | - | - | - |")
    lines += (
        [""]
        + [f"- {x}" for x in notes]
        + [
            "- GPU rows: not measured (no GPU on this machine); on a GPU the default block is "
            "sized from the free memory (`default_chunk_size`).",
            "",
        ]
    )
    return "\n".join(lines)


def spawn(task: str, size: str, scale: float = 1.0, threads: int = 2) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [
        sys.executable,
        __file__,
        "--task",
        task,
        "--size",
        size,
        "--scale",
        str(scale),
        "--threads",
        str(threads),
    ]
    print("running", task, size, f"scale={scale}", flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{task} {size} failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"  {res['seconds']:.1f} s, peak {res['peak_mb']:.0f} MB", flush=True)
    return res


def dense_memory_gb(m: int, n: int) -> float:
    """Dense path arrays alive together: float32 distmat, int64 argsort, int32 matches, the
    gathered pid matrix (int64) used to build them."""
    return m * n * (4 + 8 + 4 + 8) / 2**30


def _size_rows(a, size: str, rows: list, notes: list) -> None:
    """Floor, evaluate (auto and torch) and the dense paths at one dataset size."""
    m, n, _, _ = SIZES[size]
    fl = spawn("floor", size, threads=a.threads)
    fa = spawn("evaluate_auto", size, threads=a.threads)
    ev = spawn("evaluate", size, threads=a.threads)
    rows.append((size, "floor: q @ g.T (full product)", fl, ""))
    auto = f"{fa['seconds'] / fl['seconds']:.2f}x floor"
    rows.append((size, "evaluate, backend auto (= FAISS blocks on CPU)", fa, auto))
    torch_row = f"{ev['seconds'] / fl['seconds']:.2f}x floor"
    rows.append((size, "evaluate, backend torch", ev, torch_row))
    same = np.array_equal(np.asarray(ev["cmc"]), np.asarray(fa["cmc"]))
    notes.append(
        f"{size}: torch vs faiss blocks: CMC identical = {same}, "
        f"|dmAP| = {abs(ev['mAP'] - fa['mAP']):.1e}"
    )
    if size != "msmt" or a.dense_msmt:
        _dense_rows(a, size, ev, fa, rows, notes)
    else:
        notes.append(
            f"{size}: dense path not run (would need about "
            f"{dense_memory_gb(m, n):.1f} GB: float32 distances + int64 argsort + "
            "int32 matches + int64 gathered pids, m x n each); memory computed, "
            "not measured"
        )
        computed = {"seconds": float("nan"), "peak_mb": dense_memory_gb(m, n) * 1024,
                    "base_mb": float("nan")}  # fmt: skip
        rows.append((size, "dense (computed, not run)", computed, "memory from array sizes"))
    notes.append(f"{size}: mAP = {ev['mAP']:.4f}, rank-1 = {ev['cmc'][0]:.4f}")


def _dense_rows(a, size: str, ev: dict, fa: dict, rows: list, notes: list) -> None:
    """The dense reference with a stable sort and with numpy's default sort (as torchreid)."""
    de = spawn("dense", size, threads=a.threads)
    faster = (
        f"evaluate (torch) is {de['seconds'] / ev['seconds']:.1f}x faster, "
        f"auto {de['seconds'] / fa['seconds']:.1f}x"
    )
    rows.append((size, "dense: full matrix + stable argsort + loop", de, faster))
    cmc_diff = np.abs(np.asarray(de["cmc"]) - np.asarray(ev["cmc"])).max()
    notes.append(
        f"{size}: evaluate (torch, same distance values) vs dense "
        f"(stable sort): max |dCMC| = {cmc_diff:.1e}, "
        f"|dmAP| = {abs(de['mAP'] - ev['mAP']):.1e}"
    )
    dd = spawn("dense_default", size, threads=a.threads)
    faster = (
        f"evaluate (torch) is {dd['seconds'] / ev['seconds']:.1f}x faster, "
        f"auto {dd['seconds'] / fa['seconds']:.1f}x"
    )
    rows.append((size, "dense, numpy default (unstable) argsort as torchreid", dd, faster))
    notes.append(
        f"{size}: dense with numpy's default sort differs from the stable "
        f"order on float32 ties: |dmAP| = {abs(dd['mAP'] - ev['mAP']):.1e}, "
        f"max |dCMC| = "
        f"{np.abs(np.asarray(dd['cmc']) - np.asarray(ev['cmc'])).max():.1e}"
    )


def _rerank_rows(a, rows: list, notes: list) -> None:
    """Sparse re-ranking, the dense reference at small scales, and its extrapolation."""
    rr = spawn("rerank", "market", threads=a.threads)
    rows.append(("market", "re-rank, sparse feature path + evaluate", rr, ""))
    scales = [float(s) for s in a.rerank_dense_scales.split(",")]
    pts = []
    for s in scales:
        r = spawn("rerank_dense", "market", scale=s, threads=a.threads)
        rows.append((f"market x{s}", "re-rank, dense reference + evaluate", r, ""))
        pts.append((s, r))
    chk = spawn("rerank_check", "market", scale=0.03, threads=a.threads)
    notes.append(
        f"re-ranking sparse vs dense on a {0.03:.0%} Market problem: max |diff| = "
        f"{chk['maxdiff']:.1e}"
    )
    if len(pts) < 2:
        return
    (s0, r0), (s1, r1) = pts[0], pts[-1]
    p_t = math.log(r1["seconds"] / r0["seconds"]) / math.log(s1 / s0)
    t_full = r1["seconds"] * (1 / s1) ** p_t
    mem_full = r1["peak_mb"] * (1 / s1) ** 2
    extrapolated = {"seconds": t_full, "peak_mb": mem_full, "base_mb": float("nan")}
    rows.append(("market", "re-rank, dense reference (extrapolated)", extrapolated,
                 f"sparse is {t_full / rr['seconds']:.0f}x faster"))  # fmt: skip
    notes.append(
        f"dense re-ranking at full Market size extrapolated from the runs at "
        f"{s0} and {s1} of Market size: time with the fitted exponent "
        f"{p_t:.2f}, memory as N^2 (N x N float32 matrices dominate)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task")
    ap.add_argument("--size", default="market")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="market,msmt")
    ap.add_argument(
        "--dense-msmt",
        action="store_true",
        help="also run the dense path at MSMT17 size (needs ~20 GB RAM)",
    )
    ap.add_argument("--no-rerank", action="store_true")
    ap.add_argument(
        "--rerank-dense-scales",
        default="0.25,0.5",
        help="fractions of Market size for the dense re-ranking reference",
    )
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument(
        "--quality",
        action="store_true",
        help="only the feature-quality rows (well separated vs uninformative)",
    )
    a = ap.parse_args()
    if a.task:
        print(json.dumps(run_task(a.task, a.size, a.scale, a.threads)))
        return
    if a.quality:
        for size in a.sizes.split(","):
            section = run_quality(size, a.threads)
            print(section)
            write_section(Path(a.out), section, QUALITY_HEADING)
        return

    rows, notes = [], []
    for size in a.sizes.split(","):
        _size_rows(a, size, rows, notes)
    if not a.no_rerank:
        _rerank_rows(a, rows, notes)
    notes += targets(rows)
    table = render(rows, notes, a.threads)
    print(table)
    write_section(Path(a.out), table)


READING = """Reading the table. Exact metrics need every query-gallery distance, so no exact
path can beat the floor (the bare product), and the dense path pays that same product before
its sort and loop. The most an exact engine can gain over the dense path is therefore
dense / floor, which is about 2.4x with numpy's default sort and 3.3x with a stable sort on
this CPU. The engine sits 1.2-1.3x above the floor with the FAISS blocks, so the 3x target is
out of reach here. Re-ranking is bounded the same way: the kNN graph needs half of the N x N
products, about 1.1 TFLOP at Market size, which is roughly 23 s on this machine, against the
dense reference's 148 s. The memory targets are met. Re-ranking has a wide margin. MSMT17 has a
thin one: 1.3 GB of its peak is the inputs and libraries (the 'features' column, the process
size after generating the inputs), and the blocks and their temporaries add about 1 GB."""


def targets(rows) -> list[str]:
    """The issue's targets, each marked met / NOT met from the measured rows."""
    got = {(size, name): r for size, name, r, _ in rows}
    auto, stable = (
        "evaluate, backend auto (= FAISS blocks on CPU)",
        "dense: full matrix + stable argsort + loop",
    )
    default = "dense, numpy default (unstable) argsort as torchreid"
    out = []

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    fl, au = got.get(("market", "floor: q @ g.T (full product)")), got.get(("market", auto))
    if fl and au:
        ratio = au["seconds"] / fl["seconds"]
        out.append(f"target Market within 1.5x of the floor: {ratio:.2f}x, {mark(ratio <= 1.5)}")
        for label, key in (("stable", stable), ("numpy default", default)):
            if ("market", key) in got:
                sp = got[("market", key)]["seconds"] / au["seconds"]
                out.append(
                    f"target Market >= 3x faster than the dense path ({label} sort): "
                    f"{sp:.1f}x, {mark(sp >= 3)}"
                )
    ms = [r for (size, name), r in got.items() if size == "msmt" and name.startswith("evaluate")]
    if ms:
        peak = min(r["peak_mb"] for r in ms) / 1024
        out.append(
            f"target MSMT17 peak memory < 2.5 GB: {peak:.2f} GB (best backend), {mark(peak < 2.5)}"
        )
    rr = got.get(("market", "re-rank, sparse feature path + evaluate"))
    rd = got.get(("market", "re-rank, dense reference (extrapolated)"))
    if rr and rd:
        sp = rd["seconds"] / rr["seconds"]
        out.append(
            f"target re-ranking >= 10x faster than the dense reference: {sp:.1f}x "
            f"(dense extrapolated), {mark(sp >= 10)}; under 4 GB: "
            f"{rr['peak_mb'] / 1024:.2f} GB, {mark(rr['peak_mb'] < 4096)}"
        )
    return out


def render(rows, notes, threads) -> str:
    lines = [
        HEADING,
        "",
        f"`python benchmarks/eval_scale.py` on this machine ({os.cpu_count()} cores, "
        f"torch threads = {threads}, another job sharing the cores), random clustered "
        f"float32 features, d = {DIM}, metric squared Euclidean, protocol market1501. "
        "Peak = peak RSS of the measuring process, features included; "
        "'features' = RSS after generating them.",
        "",
        "| size | path | time (s) | peak (MB) | features (MB) | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for size, name, r, note in rows:
        lines.append(
            f"| {size} | {name} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
            f"{r['base_mb']:.0f} | {note} |"
        )
    lines += [""] + [f"- {n}" for n in notes] + ["", READING, ""]
    return "\n".join(lines)


def write_section(path: Path, section: str, heading: str = HEADING) -> None:
    """Replace (or append) the section under ``heading``, keeping other sections."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = text.find(heading)
    if start >= 0:
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[nxt + 1 :] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()
