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
        assert not (r["gallery_pid"] == r["query_pid"] and r["gallery_camid"] == r["query_camid"])
    pngs = os.listdir(os.path.join(out, "ranks", "market1501"))
    assert len(pngs) == 10 and all(p.endswith(".png") for p in pngs)
