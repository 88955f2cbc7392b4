"""Rank-list images, CMC and chain plots, the results table."""

import json
import os
import re

import cv2
import numpy as np
import pytest
import torch

from reidbox.data import Sample
from reidbox.retrieval import Labels, RankSettings, rank_lists
from reidbox.evaluation import EvalSettings
from reidbox.evaluation.evaluator import Features, rank_items
from reidbox.visualization import (
    choose_queries,
    draw_rank_list,
    draw_rank_lists,
    plot_chain,
    plot_cmc,
)
from reidbox.visualization.ranks import display_size
from reidbox.visualization.results import collect_results, format_results

GREEN, RED = np.array([0, 160, 0]), np.array([0, 0, 210])


def test_rank_lists_match_brute_force_and_skip_same_camera_matches():
    torch.manual_seed(0)
    q, g = torch.randn(7, 5), torch.randn(30, 5)
    idx, dist = rank_lists(q, g, topk=4, settings=RankSettings(chunk_size=3))
    full = torch.cdist(q.double(), g.double())
    assert np.array_equal(idx, full.argsort(1)[:, :4].numpy())
    np.testing.assert_allclose(dist, full.sort(1).values[:, :4].numpy(), rtol=1e-6)
    # the gallery copy of the query from the same camera is ignored, junk (-1) only under the
    # Market official protocol (the metrics' rule)
    g2 = torch.cat([q[:1], q[:1] + 0.01, q[:1] + 0.02])
    lab = Labels(q_pids=[5], g_pids=[5, 5, -1], q_camids=[1], g_camids=[1, 2, 2])
    i, d = rank_lists(q[:1], g2, 3, labels=lab)
    assert i[0].tolist() == [1, 2, -1] and np.isinf(d[0, 2])
    i, d = rank_lists(q[:1], g2, 3, RankSettings(protocol="market1501_official"), lab)
    assert i[0].tolist() == [1, -1, -1] and np.isinf(d[0, 1:]).all()


def _write(path, colour):
    cv2.imwrite(str(path), np.full((32, 16, 3), colour, np.uint8))
    return str(path)


def test_rank_list_image_is_readable_and_marks_matches(tmp_path):
    q = _write(tmp_path / "q.png", 128)
    gal = [_write(tmp_path / f"g{i}.png", 60 + 40 * i) for i in range(3)]
    out = draw_rank_list(
        q,
        gal,
        [True, False, True],
        [0.1, 0.5, 0.9],
        str(tmp_path / "r.png"),
        size=(256, 128),
        query_label="id 5 c1",
        gallery_labels=["id 5 c2", "id 7 c1", "id 5 c3"],
    )
    img = cv2.imread(out)
    tile_w, border = 128 + 16, 8
    assert img.shape[0] > 256 + 2 * border + 40  # crop, frame and a caption of three lines
    assert img.shape[1] == 4 * tile_w + 24 + 2 * 6
    y = img.shape[0] - border - 128  # inside the crops, in the left frame
    x0 = tile_w + 24
    assert (img[y, 2] == (90, 90, 90)).all()  # query frame: grey
    for i, colour in enumerate([GREEN, RED, GREEN]):
        x = x0 + i * (tile_w + 6) + 2
        assert (img[y, x] == colour).all()
        caption = img[:40, x0 + i * (tile_w + 6) : x0 + i * (tile_w + 6) + tile_w]
        assert (np.abs(caption.astype(int) - colour).sum(2) < 60).any()  # tag in the colour


def test_small_crops_are_scaled_up():
    assert display_size((32, 16)) == (256, 128)
    assert display_size((384, 128)) == (384, 128)


def test_rank_list_images_on_items(tmp_path):
    paths = [_write(tmp_path / f"{i}.png", 20 * i) for i in range(6)]
    query = [Sample(paths[0], 1, 0, 0), Sample(paths[1], 2, 0, 0)]
    gallery = [Sample(p, pid, 1, 0) for p, pid in zip(paths[2:], [1, 2, 3, 1])]
    feats = Features(
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5], [0.2, 0.0]]),
    )
    sel = choose_queries(len(query), query_indices=[0])
    idx, dist = rank_items(feats, query, gallery, 3, EvalSettings(), sel)
    out = draw_rank_lists(query, gallery, sel, idx, dist, str(tmp_path / "ranks"), (32, 16))
    assert (
        len(out) == 1 and os.path.basename(out[0]) == "query00000_id1_c1.png"
    )  # camid 0: camera 1
    img = cv2.imread(out[0])
    x = 128 + 16 + 24 + 2  # left frame of the first gallery tile (crops scaled to 256 x 128)
    assert (img[img.shape[0] - 20, x] == GREEN).all()  # nearest gallery image: same person
    with pytest.raises(ValueError, match="out of range"):
        choose_queries(len(query), query_indices=[5])
    assert choose_queries(len(query), num_queries=5) == [0, 1]  # no more queries than exist


def test_plots_write_png(tmp_path):
    cmc = np.linspace(0.5, 1.0, 50).tolist()
    p = plot_cmc(cmc, str(tmp_path / "cmc.png"), "CMC test")
    assert cv2.imread(p).shape[0] > 100
    with pytest.raises(ValueError, match="empty"):
        plot_cmc([], str(tmp_path / "x.png"))
    rows = [{"name": "A", "A mAP": 40.0}, {"name": "B", "A mAP": 30.0, "B mAP": 50.0}]
    p = plot_chain(rows, ["A", "B"], str(tmp_path / "chain.png"))
    assert cv2.imread(p) is not None


def test_collect_results_table(tmp_path):
    for name, arch, ptl, mAP in (
        ("r1", "baseline", {"cell": "v1", "state_mode": "carry"}, 0.5),
        ("r2", "baseline", None, 0.25),
    ):
        d = tmp_path / "out" / name
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(
            f"MODEL:\n  META_ARCHITECTURE: {arch}\n  BACKBONE:\n    NAME: resnet50\n"
            f"  PTL:\n    ENABLED: {bool(ptl)}\n"
            "DATASETS:\n  TRAIN: [market1501]\n"
        )
        rec = {
            "mAP": mAP,
            "per_dataset": {
                "market1501": {"mAP": mAP, "rank1": 0.7, "rank5": 0.8, "rank10": 0.9, "mINP": 0.1}
            },
            "parameters_m": 25.5,
            "train_datasets": ["market1501"],
        }
        if ptl:
            rec["ptl"] = ptl
        (d / "metrics.json").write_text(json.dumps(rec))
    rows = collect_results([str(tmp_path / "out")])
    assert [r["model"] for r in rows] == ["resnet50+PTL", "resnet50"]
    assert rows[0]["PTL state"] == "v1 carry" and rows[1]["PTL state"] == "-"
    table = re.sub(" +", " ", format_results(rows))  # cells are padded to their column
    assert "| 50.00 | 70.00 | 80.00 | 90.00 | 10.00 | 25.50 |" in table
    assert "market1501 -> market1501" in table
    assert "| v1 carry | not recorded | 50.00 |" in table  # metrics.json without settings
    with pytest.raises(FileNotFoundError):
        collect_results([str(tmp_path / "missing")])


def test_test_net_vis_ranks_and_cmc_plot(tiny_opts):
    from tools.test_net import main

    from reidbox.config import load_config
    from reidbox.engine.runner import eval_dir

    assert main(["--no-progress", "--vis-ranks", "3", *tiny_opts]) == 0
    out = eval_dir(load_config(None, tiny_opts), None)  # a test writes into its own folder
    assert os.path.isfile(os.path.join(out, "cmc_market1501.png"))
    pngs = os.listdir(os.path.join(out, "ranks", "market1501"))
    assert len(pngs) == 10 and all(p.endswith(".png") for p in pngs)  # all 10 tiny queries


def test_collect_results_states_evaluation_and_cifar_errors(tmp_path):
    """Settings beside the numbers; CIFAR rows show top-1 error, not dashes (issue 14.6)."""
    reid = tmp_path / "out" / "reid"
    reid.mkdir(parents=True)
    (reid / "config.yaml").write_text(
        "MODEL:\n  META_ARCHITECTURE: ptl\n  BACKBONE:\n    NAME: resnet50\n"
    )
    (reid / "metrics.json").write_text(
        json.dumps(
            {
                "per_dataset": {
                    "market1501": {
                        "mAP": 0.5,
                        "rank1": 0.7,
                        "rank5": 0.8,
                        "rank10": 0.9,
                        "mINP": 0.1,
                        "protocol": "market1501",
                    }
                },
                "evaluation": {
                    "protocol": "market1501",
                    "metric": "euclidean",
                    "flip": True,
                    "normalize": True,
                    "ap_mode": None,
                    "rerank": {"k1": 20, "k2": 6, "lambda_value": 0.3},
                },
                "parameters_m": 25.5,
            }
        )
    )
    cifar = tmp_path / "out" / "cifar"
    cifar.mkdir()
    (cifar / "config.yaml").write_text(
        "TASK: classification\nMODEL:\n  META_ARCHITECTURE: "
        "classifier\n  BACKBONE:\n    NAME: densenet100\n"
    )
    (cifar / "metrics.json").write_text(
        json.dumps(
            {
                "task": "classification",
                "top1_error": 0.0592,
                "top5_error": 0.002,
                "per_dataset": {
                    "cifar10": {
                        "top1_error": 0.0592,
                        "top5_error": 0.002,
                        "loss": 0.2,
                        "num_images": 10000,
                    }
                },
                "parameters_m": 0.8,
                "train_datasets": ["cifar10"],
            }
        )
    )
    table = re.sub(" +", " ", format_results(collect_results([str(tmp_path / "out")])))
    reid_line = next(ln for ln in table.splitlines() if "-> market1501" in ln)
    assert "| market1501, euclidean, flip-averaged, re-ranked | 50.00 |" in reid_line
    cifar_line = next(ln for ln in table.splitlines() if "-> cifar10" in ln)
    assert (
        "| densenet100 | cifar10 -> cifar10 | - | top-k error on 10000 "
        "images | 5.92 | 0.20 | 0.80 | - | 20"  # no epochs recorded; the file's date
    ) in cifar_line
    assert "| top-1 err | top-5 err |" in table
    for block in table.strip().split("\n\n"):  # every table is markdown: header, rule, rows
        lines = block.splitlines()
        assert all(ln.startswith("| ") and ln.endswith(" |") for ln in lines[:1] + lines[2:])
        assert set(lines[1]) <= set("|-:")


def test_dataset_repr_is_a_short_summary(market_root):
    from reidbox.data import build_dataset

    ds = build_dataset("market1501", root=market_root)
    text = repr(ds)
    assert len(text) < 300 and "\n" not in text
    assert text.startswith("Market1501('market1501', train 36 images / 6 ids / 3 cams;")
    assert "Sample(" not in text


def test_classification_results_are_a_markdown_table():
    from reidbox.evaluation.classification import ClassificationResult, format_classification

    text = format_classification({"cifar10": ClassificationResult(0.0592, 0.002, 0.2, 10000)})
    head, rule, row = text.splitlines()
    assert head.startswith("| dataset") and "top-1 err (%)" in head
    assert set(rule) <= set("|-:") and " 5.92 |" in row and "10,000" in row


def test_collect_results_names_a_test_net_result_by_its_run(tmp_path):
    # tools/test_net.py writes OUTPUT_DIR/eval/<settings>/metrics.json without a config.yaml:
    # its row takes the model and training sets from the run's config two folders up
    run = tmp_path / "run"
    (run / "eval" / "model_final_market1501_abc123").mkdir(parents=True)
    (run / "config.yaml").write_text(
        "MODEL:\n  META_ARCHITECTURE: ptl\n  BACKBONE:\n    NAME: resnet50\n"
        "DATASETS:\n  TRAIN: [dukemtmcreid]\n"
    )
    m = {"mAP": 0.5, "rank1": 0.6, "rank5": 0.7, "rank10": 0.8, "mINP": 0.1}
    (run / "eval" / "model_final_market1501_abc123" / "metrics.json").write_text(
        json.dumps({**m, "per_dataset": {"market1501": m}})
    )
    (row,) = collect_results([str(run / "eval")])
    # an earlier run's config names the former meta-architecture: PTL with the paper head
    assert row["model"] == "resnet50+PTL [paper head]"
    assert row["datasets"] == "dukemtmcreid -> market1501"


def test_collect_results_names_an_untrained_evaluation(tmp_path):
    # make demo's untrained twins: OUTPUT_DIR holds only eval/<settings>/ (metrics.json with
    # weights None, and the config evaluated): the row names the model and says untrained
    ev = tmp_path / "ptl_untrained" / "eval" / "untrained_synthetic_abc"
    ev.mkdir(parents=True)
    (ev / "config.yaml").write_text(
        "MODEL:\n  META_ARCHITECTURE: ptl\n  BACKBONE:\n    NAME: resnet18\n"
        "DATASETS:\n  TRAIN: [synthetic]\n"
    )
    m = {"mAP": 0.1, "rank1": 0.2, "rank5": 0.3, "rank10": 0.4, "mINP": 0.01}
    (ev / "metrics.json").write_text(
        json.dumps({**m, "per_dataset": {"synthetic": m}, "weights": None})
    )
    (row,) = collect_results([str(tmp_path)])
    assert row["model"] == "resnet18+PTL [paper head]"
    assert row["datasets"] == "untrained -> synthetic"


def _write_run(folder, per_dataset, **extra):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "MODEL:\n  META_ARCHITECTURE: ptl\n  BACKBONE:\n    NAME: resnet18\n"
    )
    rec = {"per_dataset": per_dataset, "parameters_m": 11.2, **extra}
    (folder / "metrics.json").write_text(json.dumps(rec))
    return rec


def test_collect_results_labels_mixed_test_sets_and_skips_copies(tmp_path):
    """Two sizes of ``synthetic`` are two test sets: the table says so (issue 22.1); the demo's
    top-level copy of its main run's metrics.json is not a second row (issue 22.6)."""
    m = {"mAP": 0.5, "rank1": 0.6, "rank5": 0.7, "rank10": 0.8, "mINP": 0.1}
    small = dict(m, test_data="aaaaaa111111", num_query=599, num_gallery=1841)
    large = dict(m, test_data="bbbbbb222222", num_query=608, num_gallery=1934)
    rec = _write_run(tmp_path / "out" / "a", {"synthetic": small}, epochs=12, date="2026-12-01")
    (tmp_path / "out" / "a" / "model_final.pth").write_bytes(b"")
    (tmp_path / "out" / "metrics.json").write_text(json.dumps(dict(rec, model="copy")))
    _write_run(tmp_path / "out" / "b", {"synthetic": large}, epochs=3, date="2026-12-02")
    rows = collect_results([str(tmp_path / "out")])
    assert sorted(r["run"] for r in rows) == sorted(
        os.path.relpath(str(tmp_path / "out" / x)) for x in ("a", "b")
    )
    table = re.sub(" +", " ", format_results(rows))
    assert "| test data |" in table and "| epochs | date |" in table
    assert "-> synthetic | aaaaaa (599q/1841g) |" in table
    assert "| 12 | 2026-12-01 |" in table and "| 3 | 2026-12-02 |" in table
    assert "note: synthetic was measured on 2 different test sets" in table
    # one test set: no extra column, no note
    same = format_results([r for r in rows if r["epochs"] == 12])
    assert "test data" not in same and "note:" not in same


def test_test_set_fingerprint_follows_the_images():
    from reidbox.data.build import TestSet
    from reidbox.data.datasets.base import Sample

    q = [Sample("/a/0001_c1s1_000001_00.jpg", 1, 0)]
    g = [Sample("/a/0001_c2s1_000002_01.jpg", 1, 1), Sample("/a/0002_c2s1_000003_01.jpg", 2, 1)]
    base = TestSet("synthetic", q, g).fingerprint()
    assert TestSet("synthetic", q, g[::-1]).fingerprint() == base  # order does not matter
    assert (
        TestSet("other", [q[0]._replace(path="/b/0001_c1s1_000001_00.jpg")], g).fingerprint()
        == base
    )
    assert TestSet("synthetic", q, g[:1]).fingerprint() != base
    assert TestSet("synthetic", q, [g[0], g[1]._replace(camid=0)]).fingerprint() != base


def test_collect_results_overlays_the_runs_cmc_curves(tmp_path):
    """``collect_results --output-dir`` draws every run's CMC on one figure per test set
    (issue 22.5); rows measured on other data get their own figure."""
    from reidbox.commands.collect_results import main

    m = {"mAP": 0.5, "rank1": 0.6, "rank5": 0.7, "rank10": 0.8, "mINP": 0.1}
    cmc = [0.6 + 0.02 * i for i in range(20)]
    for name, data in (("a", "aaaaaa111111"), ("b", "aaaaaa111111"), ("c", "cccccc333333")):
        d = dict(m, cmc=cmc[::-1] if name == "b" else cmc, test_data=data)
        _write_run(tmp_path / "runs" / name, {"synthetic": d}, epochs=1)
    assert main([str(tmp_path / "runs"), "--output-dir", str(tmp_path / "t")]) == 0
    pngs = sorted(os.listdir(tmp_path / "t"))
    assert pngs == ["cmc_synthetic_aaaaaa.png", "cmc_synthetic_cccccc.png", "results.md"]
    two = cv2.imread(str(tmp_path / "t" / "cmc_synthetic_aaaaaa.png"))
    one = cv2.imread(str(tmp_path / "t" / "cmc_synthetic_cccccc.png"))
    assert two.shape[1] > one.shape[1]  # the overlay is drawn wider, with a legend


def test_plot_cmc_axis_starts_below_the_curve():
    from reidbox.visualization.plots import _cmc_floor

    assert _cmc_floor([91.0, 99.0]) == 80.0 and _cmc_floor([3.0, 50.0]) == 0.0
