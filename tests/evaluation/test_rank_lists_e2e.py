"""Issue 15 item 4: the saved rank lists use the metrics' junk and tie rules, so rank-1 read from
ranklist_<set>.csv is metrics.json's rank-1, and the images show the same lists."""

import csv
import json
import os

import pytest

from reidbox.config import load_config
from reidbox.engine import runner


@pytest.mark.parametrize("protocol", ["market1501", "market1501_official"])
def test_rank1_from_csv_equals_metrics_json(tiny_opts, protocol):
    opts = tiny_opts[:-1] + [
        tiny_opts[-1] + protocol,
        "TEST.PROTOCOL",
        protocol,
        "TEST.TOPK_SAVE",
        "3",
    ]
    cfg = load_config(None, opts)
    runner.test(cfg, progress=False, vis_ranks=3)  # untrained: rank-1 well below 1
    out = runner.eval_dir(cfg, None)  # a test writes into its own eval/<settings>/ folder
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(out, "ranklist_market1501.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    first = {r["query"]: int(r["same_identity"]) for r in rows if r["rank"] == "1"}
    assert len(first) == metrics["per_dataset"]["market1501"]["num_query"] == 10
    assert sum(first.values()) / len(first) == metrics["rank1"]
    # the CSV never lists what the protocol ignores
    for r in rows:
        assert not (r["gallery_pid"] == r["query_pid"] and r["gallery_camera"] == r["query_camera"])
    pngs = os.listdir(os.path.join(out, "ranks", "market1501"))
    assert len(pngs) == 10 and all(p.endswith(".png") for p in pngs)


def test_rank_lists_name_the_query_and_its_ap(tiny_opts):
    """The CSV has the index ``--queries`` takes, cameras from 1 as in the images, each
    query's AP; ``--vis-order worst`` draws the lowest-AP queries (issue 22.4)."""
    import numpy as np

    from reidbox.visualization.ranks import choose_queries

    cfg = load_config(None, tiny_opts)
    record = runner.test(cfg, progress=False, vis_ranks=3, vis_queries=2, vis_order="worst")
    out = runner.eval_dir(cfg, None)
    with open(os.path.join(out, "ranklist_market1501.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    aps = {int(r["query_index"]): r["query_ap"] for r in rows}
    assert sorted(aps) == list(range(10))
    assert {r["query_camera"] for r in rows} <= {"1", "2"}  # the tiny tree's query cameras
    valid = [float(a) for a in aps.values() if a]
    assert abs(np.mean(valid) - record["mAP"]) < 1e-5  # mAP is the mean of the queries' AP
    worst = sorted((float(a), i) for i, a in aps.items() if a)[:2]
    pngs = sorted(os.listdir(os.path.join(out, "ranks", "market1501")))
    assert len(pngs) == 2
    drawn = [int(p[len("query") : len("query") + 5]) for p in pngs]  # query<index>_...
    assert sorted(float(aps[i]) for i in drawn) == [a for a, _ in worst]
    ap = np.array([0.5, np.nan, 0.1, 0.9])
    assert choose_queries(4, 2, order="worst", ap=ap) == [2, 0]
    assert choose_queries(4, 4, order="best", ap=ap) == [3, 0, 2, 1]  # no match: last
    with pytest.raises(ValueError, match="choose one of random, worst, best"):
        choose_queries(4, 2, order="hardest", ap=ap)
