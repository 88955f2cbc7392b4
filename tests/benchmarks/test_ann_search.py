"""benchmarks/ann_search.py runs end to end at its smoke size (2,000 x 32) and prints its table."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ann_benchmark_smoke(capsys):
    spec = importlib.util.spec_from_file_location(
        "ann_search", os.path.join(ROOT, "benchmarks", "ann_search.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--smoke", "--threads", "1", "--kinds", "exact", "ivf_flat", "hnsw"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| 2,000 | 32 |")]
    assert [r.split("|")[3].strip() for r in rows] == ["exact", "ivf_flat", "hnsw"] * 2
    recall10 = [float(r.split("|")[-2]) for r in rows]
    assert recall10[0] == 1.0 and min(recall10) >= 0.9
