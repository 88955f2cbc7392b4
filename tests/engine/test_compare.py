"""Paired comparisons (``tools/compare.py``): statistics equal a hand computation, twins start from
the same weights and see the same batches, finished runs are reused."""

import json
import logging
import math
import os

import numpy as np
import pytest
import torch
from scipy import stats

from reidbox.config import ConfigError, load_config
from reidbox.engine import compare, runner
from reidbox.utils.misc import write_json
from reidbox.engine.trainer import Trainer
from reidbox.utils import run_folder
from tests.conftest import TINY_RUN
from tests.engine.test_demo import SMALL_SYNTHETIC


def test_paired_statistics_equal_scipys():
    a = [0.61, 0.58, 0.66, 0.60, 0.63]
    b = [0.57, 0.59, 0.60, 0.55, 0.61]
    p = compare.paired(a, b)
    d = np.subtract(a, b)
    assert p.diffs == pytest.approx(list(d))
    assert p.mean == pytest.approx(d.mean()) and p.std == pytest.approx(d.std(ddof=1))
    lo, hi = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert p.ci95 == pytest.approx((lo, hi))
    assert (p.wins, p.ties, p.n) == (4, 0, 5)
    one = compare.paired([0.5], [0.4])
    assert one.ci95 is None and math.isnan(one.std) and one.wins == 1
    with pytest.raises(ValueError, match="equal"):
        compare.paired([0.1, 0.2], [0.1])


def test_summary_table_and_plot(tmp_path):
    per_seed = {
        "plain": {0: {"mAP": 0.5, "rank1": 0.6}, 1: {"mAP": 0.52, "rank1": 0.64}},
        "+PTL": {0: {"mAP": 0.55, "rank1": 0.6}, 1: {"mAP": 0.51, "rank1": 0.7}},
    }
    result = compare.summarize(per_seed, [0, 1], [("+PTL", "plain")], ["mAP", "rank1"])
    m = result["summary"]["+PTL"]["mAP"]
    assert m["mean"] == pytest.approx(0.53) and m["std"] == pytest.approx(
        np.std([0.55, 0.51], ddof=1)
    )
    text = compare.format_compare(result)
    assert "| +PTL - plain " in text and "+5.0 -1.0" in text and "1/2" in text
    lo, hi = stats.ttest_rel([0.55, 0.51], [0.5, 0.52]).confidence_interval(0.95)
    assert f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" in text
    png = compare.plot_compare(result, str(tmp_path / "c.png"))
    assert os.path.getsize(png) > 5000
    # results.json is written with sorted keys: read back, the table keeps the run order
    write_json(result, str(tmp_path / "results.json"))
    with open(tmp_path / "results.json") as f:
        again = json.load(f)
    assert list(again["per_seed"]) == ["+PTL", "plain"]  # sorted by the writer
    assert compare.format_compare(again) == text
    assert text.index("| plain ") < text.index("| +PTL ")


@pytest.mark.parametrize(
    "text, says",
    [
        ("no colon here", "NAME: \\[CONFIG.yml\\]"),
        ("a/b: MODEL.PTL.ENABLED True", "no '/'"),
        ("x: MODEL.PTL.ENABLED", "KEY VALUE pairs"),
    ],
)
def test_bad_variants_are_one_line(text, says):
    with pytest.raises(ConfigError, match=says):
        compare.Variant.parse(text)


def test_variant_with_its_own_config():
    v = compare.Variant.parse("paper+PTL: configs/demo/ptl.yml MODEL.HEADS.NAME paper")
    assert (v.name, v.config, v.opts, v.folder) == (
        "paper+PTL",
        "configs/demo/ptl.yml",
        ["MODEL.HEADS.NAME", "paper"],
        "paper_ptl",
    )


def _opts(tmp_path):
    return (
        TINY_RUN
        + SMALL_SYNTHETIC
        + [
            "DATASETS.ROOT",
            str(tmp_path / "data"),
            "SOLVER.MAX_EPOCHS",
            "1",
            "SOLVER.WARMUP_EPOCHS",
            "0",
        ]
    )


def test_twins_start_from_the_same_weights_and_see_the_same_batches(tmp_path, monkeypatch):
    opts = _opts(tmp_path) + ["INPUT.RANDOM_ERASING.ENABLED", "True", "SEED", "3"]
    seen = {}
    real = Trainer.run_step

    def recording(self, batch):
        seen.setdefault(self._tag, []).append(
            (batch["images"].double().sum().item(), batch["targets"].tolist())
        )
        return real(self, batch)

    monkeypatch.setattr(Trainer, "run_step", recording)
    starts = {}
    for name, on in (("plain", "False"), ("ptl", "True")):
        cfg = load_config(
            "configs/demo/baseline.yml",
            opts + ["MODEL.PTL.ENABLED", on, "OUTPUT_DIR", str(tmp_path / name)],
        )
        init = compare.write_init(cfg, 3, str(tmp_path / "init"))
        starts[name] = init
        monkeypatch.setattr(Trainer, "_tag", name, raising=False)
        cfg.defrost()
        cfg.MODEL.WEIGHTS = init
        runner.train(cfg, progress=False)
        run_folder.release_lock(str(tmp_path / name))
    assert starts["plain"] == starts["ptl"]  # one file: the plain twin's initial state
    assert seen["plain"] == seen["ptl"] and len(seen["plain"]) > 3
    # a finished run's log.txt takes no lines logged after it (a comparison's next seed)
    logging.getLogger("reidbox").info("logged after both runs")
    for name in ("plain", "ptl"):
        assert "logged after" not in (tmp_path / name / "log.txt").read_text()


@pytest.mark.slow
def test_two_seed_compare_runs_reuses_and_refuses(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "cmp")
    variants = [compare.Variant.parse(v) for v in compare.DEFAULT_VARIANTS]
    opts = _opts(tmp_path)
    result = compare.run_compare(
        variants, [0, 1], out, "configs/demo/baseline.yml", opts, progress=False
    )
    for v in ("plain", "ptl"):
        for s in (0, 1):
            run_folder.release_lock(os.path.join(out, v, f"seed{s}"))
    saved = json.load(open(os.path.join(out, "results.json")))
    assert saved["pairs"][0]["a"] == "+PTL" and saved["pairs"][0]["n"] == 2
    assert set(saved["per_seed"]["plain"]) == {"0", "1"}
    assert os.path.isfile(os.path.join(out, "compare.png"))
    assert "95% t-interval" in open(os.path.join(out, "results.md")).read()
    # every PTL run started from its seed's plain initial state: shared tensors equal
    for s in (0, 1):
        (init,) = [f for f in os.listdir(os.path.join(out, "init")) if f.endswith(f"seed{s}.pth")]
        state = torch.load(os.path.join(out, "init", init), weights_only=True)["model"]
        assert state["backbone.stem.0.weight"].shape[0] == 64
    stamps = {
        d: os.stat(os.path.join(out, d, "seed0", "model_final.pth")).st_mtime_ns
        for d in ("plain", "ptl")
    }

    def no_training(*a, **k):
        raise AssertionError("a finished run of the same config was trained again")

    monkeypatch.setattr(runner, "train", no_training)
    again = compare.run_compare(
        variants, [0, 1], out, "configs/demo/baseline.yml", opts, progress=False
    )
    assert again["pairs"] == result["pairs"]
    assert all(
        os.stat(os.path.join(out, d, "seed0", "model_final.pth")).st_mtime_ns == t
        for d, t in stamps.items()
    )
    with pytest.raises(ConfigError, match="finished run of another config"):
        compare.run_compare(
            variants,
            [0, 1],
            out,
            "configs/demo/baseline.yml",
            opts + ["SOLVER.WEIGHT_DECAY", "0.001"],
            progress=False,
        )


def test_a_key_added_after_a_run_counts_as_its_default(tmp_path):
    """An upgrade that adds a config key (at its default) leaves earlier finished runs reusable;
    setting the new key to another value makes them another config."""
    import yaml

    cfg = load_config("configs/demo/baseline.yml")
    saved = yaml.safe_load(cfg.dump())
    del saved["MODEL"]["PTL"]["CELL_POOLING"]  # as a run made before the key existed
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    for name in ("model_final.pth", "metrics.json"):
        (run / name).write_text("{}")
    assert compare.finished_run(str(run), cfg)
    other = load_config("configs/demo/baseline.yml", ["MODEL.PTL.CELL_POOLING", "avg"])
    with pytest.raises(ConfigError, match="MODEL.PTL.CELL_POOLING"):
        compare.finished_run(str(run), other)
