"""The saved gallery index and tools/search.py: build, add, query (issue 25)."""

import csv
import os
import shutil

import numpy as np
import pytest
import torch

import reidbox
from reidbox.cli import run_main
from reidbox.commands.search import main as search
from reidbox.config import load_config
from reidbox.errors import UserError
from reidbox.gallery import GalleryIndex, GalleryIndexError
from reidbox.modeling import build_inference_model
from reidbox.retrieval import pairwise_distance
from tests.conftest import write_market_tree

OPTS = ["MODEL.BACKBONE.NAME", "resnet18", "INPUT.SIZE_TEST", "[32, 16]", "DEVICE", "cpu"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("search")
    write_market_tree(str(base / "data"))
    release = base / "data" / "market1501" / "Market-1501-v15.09.15"
    torch.manual_seed(0)
    model = build_inference_model(load_config(None, OPTS), None, "cpu")
    weights = str(base / "model_final.pth")
    torch.save({"model": model.state_dict()}, weights)
    gallery = base / "gallery"
    shutil.copytree(release / "bounding_box_test", gallery / "cam")  # nested: found recursively
    return {
        "base": base,
        "gallery": str(gallery),
        "query": str(release / "query"),
        "more": str(release / "bounding_box_train"),
        "weights": weights,
        "opts": OPTS + ["MODEL.WEIGHTS", weights],
    }


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_build_then_query_gives_the_k_nearest_by_the_models_own_features(setup, tmp_path):
    idx, out1, out2 = tmp_path / "idx", tmp_path / "q1", tmp_path / "q2"
    search(["build", *setup["opts"], "--images", setup["gallery"], "--index", str(idx)])
    args = ["--index", str(idx), "--images", setup["query"], "--topk", "4"]
    search(["query", *args, "--output-dir", str(out1)])
    rows = _read(out1 / "results.csv")
    assert list(rows[0]) == ["query", "rank", "gallery", "distance"]

    fx = reidbox.FeatureExtractor(load_config(None, setup["opts"]), device="cpu")
    gallery = sorted(
        os.path.join(setup["gallery"], "cam", f)
        for f in os.listdir(os.path.join(setup["gallery"], "cam"))
        if f.endswith(".jpg")
    )
    queries = sorted(os.path.join(setup["query"], f) for f in os.listdir(setup["query"]))
    d = pairwise_distance(fx(queries), fx(gallery)).numpy()
    want = np.argsort(d, axis=1, kind="stable")[:, :4]
    assert len(rows) == 4 * len(queries)
    for qi, q in enumerate(queries):
        mine = [r for r in rows if r["query"] == q]
        assert [int(r["rank"]) for r in mine] == [1, 2, 3, 4]
        assert [r["gallery"] for r in mine] == [gallery[j] for j in want[qi]]
        np.testing.assert_allclose([float(r["distance"]) for r in mine], d[qi, want[qi]], atol=1e-5)
    assert len(os.listdir(out1 / "ranks")) == len(queries)
    # a second query on the saved index (a fresh process's view: loaded from disk) agrees
    search(["query", *args, "--output-dir", str(out2), "--no-draw"])
    assert _read(out2 / "results.csv") == rows and not (out2 / "ranks").exists()
    with pytest.raises(GalleryIndexError, match="already holds results.csv"):
        search(["query", *args, "--output-dir", str(out1)])


def test_add_appends_only_new_images_and_drops_stale_approximate_indexes(setup, tmp_path):
    idx = GalleryIndex.build(
        load_config(None, setup["opts"]), setup["gallery"], str(tmp_path / "i"), device="cpu"
    )
    n0 = len(idx.paths)
    idx.query(setup["query"], topk=3, approx="ivf_flat", device="cpu")
    assert (tmp_path / "i" / "approx_ivf_flat.faiss").is_file()
    added = idx.add(setup["more"], device="cpu")
    assert added == len(os.listdir(setup["more"])) and len(idx.paths) == n0 + added
    assert not (tmp_path / "i" / "approx_ivf_flat.faiss").exists()
    assert idx.add(setup["more"], device="cpu") == 0  # already there
    again = GalleryIndex.load(str(tmp_path / "i"))
    assert again.paths == idx.paths and np.array_equal(again.features, idx.features)
    # an added image is found by itself as its own nearest neighbour
    probe = os.path.join(setup["more"], sorted(os.listdir(setup["more"]))[0])
    res = again.query([probe], topk=1, device="cpu")
    assert res.gallery[res.indices[0, 0]] == probe and res.distances[0, 0] < 1e-3


def test_a_query_with_another_model_or_preprocessing_is_refused(setup, tmp_path):
    idx = str(tmp_path / "i")
    search(["build", *setup["opts"], "--images", setup["gallery"], "--index", idx])
    torch.manual_seed(1)
    other = str(tmp_path / "other.pth")
    torch.save({"model": build_inference_model(load_config(None, OPTS), None).state_dict()}, other)
    base = ["query", "--index", idx, "--images", setup["query"], "--output-dir", str(tmp_path)]
    with pytest.raises(GalleryIndexError, match="other weights"):
        search([*base, "MODEL.WEIGHTS", other])
    with pytest.raises(GalleryIndexError, match="input_size_hw"):
        search([*base, "INPUT.SIZE_TEST", "[64, 32]"])
    with pytest.raises(GalleryIndexError, match="MODEL.BACKBONE"):
        search([*base, "MODEL.BACKBONE.LAST_STRIDE", "2"])
    with pytest.raises(GalleryIndexError, match="not an empty folder"):
        search(["build", *setup["opts"], "--images", setup["gallery"], "--index", idx])
    with pytest.raises(GalleryIndexError, match="not a gallery index"):
        search(["query", "--index", str(tmp_path / "none"), *base[3:]])
    with pytest.raises(GalleryIndexError, match="no images"):
        search(["add", "--index", idx, "--images", str(tmp_path / "i")])


def test_rerank_aqe_and_approximate_search_options(setup, tmp_path):
    idx = GalleryIndex.build(
        load_config(None, setup["opts"]), setup["gallery"], str(tmp_path / "i"), device="cpu"
    )
    exact = idx.query(setup["query"], topk=5)
    q = idx.extractor()(exact.queries)  # embedded once; the options search these features
    for kind in ("ivf_flat", "ivf_pq", "hnsw"):
        i, _ = idx.search_features(q, topk=5, approx=kind)
        assert i.shape == exact.indices.shape
        assert np.mean(i[:, 0] == exact.indices[:, 0]) >= 0.9, kind
    rr_i, rr_d = idx.search_features(q, 5, rerank={"k1": 4, "k2": 2, "lambda_value": 0.3})
    aqe_i, aqe_d = idx.search_features(q, 5, aqe=2)
    assert np.all(np.diff(rr_d, axis=1) >= 0) and np.all(np.diff(aqe_d, axis=1) >= 0)
    assert not np.array_equal(rr_d, exact.distances)  # re-ranked distances differ
    # AQE searches with the mean of the query and its first two results
    want = torch.nn.functional.normalize(
        q + torch.from_numpy(idx.features[exact.indices[:, :2]]).sum(1)
    )
    d = pairwise_distance(want, idx.features).numpy()
    np.testing.assert_array_equal(aqe_i, np.argsort(d, axis=1, kind="stable")[:, :5])
    with pytest.raises(GalleryIndexError, match="--rerank needs exact search"):
        idx.search_features(q, rerank={"k1": 4, "k2": 2, "lambda_value": 0.3}, approx="hnsw")


def test_search_tool_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        run_main(search, ["find", "--index", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: tools/search.py needs a verb first: build, add, query")
    assert issubclass(GalleryIndexError, UserError)


def test_moved_weights_are_found_again_by_content(setup, tmp_path):
    w = tmp_path / "w.pth"
    shutil.copy(setup["weights"], w)
    idx = str(tmp_path / "i")
    search(["build", *OPTS, "MODEL.WEIGHTS", str(w), "--images", setup["gallery"], "--index", idx])
    moved = tmp_path / "moved.pth"
    os.rename(w, moved)
    base = ["query", "--index", idx, "--images", setup["query"], "--topk", "2"]
    with pytest.raises(GalleryIndexError, match="are gone.*MODEL.WEIGHTS NEW_PATH"):
        search([*base, "--output-dir", str(tmp_path / "a")])
    assert search([*base, "--output-dir", str(tmp_path / "b"), "MODEL.WEIGHTS", str(moved)]) == 0
    assert len(_read(tmp_path / "b" / "results.csv")) == 2 * len(os.listdir(setup["query"]))
