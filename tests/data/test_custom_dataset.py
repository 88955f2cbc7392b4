"""Custom (plugin) datasets: the contract is checked when the dataset is built, before training;
docs/custom_dataset.md's worked example runs as written."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from reidbox.config import load_config
from reidbox.data import DatasetError, ReIDDataset, Sample, build_dataset, build_test_sets
from reidbox.data.datasets.base import check_query_matches, validate_dataset
from reidbox.evaluation import evaluate_distmat
from reidbox.registry import DATASETS
from tests.data.fixtures import write_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "custom_dataset.md")


def _ds(train=(), query=(), gallery=(), name="custom"):
    return ReIDDataset(name, list(train), list(query), list(gallery))


def test_string_ids_are_mapped_consistently():
    ds = validate_dataset(
        _ds(
            train=[Sample("t1", "zed", 0), Sample("t2", "amy", 1), Sample("t3", "zed", 1)],
            query=[Sample("q1", "p0002", 0), Sample("q2", "p0001", 0)],
            gallery=[Sample("g1", "p0001", 1), Sample("g2", "p0003", 1), Sample("g3", "p0002", 1)],
        )
    )
    assert [s.pid for s in ds.train] == [1, 0, 1]  # sorted: amy 0, zed 1
    assert [s.pid for s in ds.query] == [1, 0]  # p0001 0, p0002 1, p0003 2 over q + g
    assert [s.pid for s in ds.gallery] == [0, 2, 1]
    assert all(type(s.pid) is int and type(s.camid) is int for s in ds.query + ds.gallery)
    # query 0 ("p0002", camera 0) meets gallery "p0002" (camera 1): a real match
    r = evaluate_distmat(
        np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]),
        [s.pid for s in ds.query],
        [s.pid for s in ds.gallery],
        [s.camid for s in ds.query],
        [s.camid for s in ds.gallery],
    )
    assert r.mAP == 1.0


def test_integer_ids_kept_and_train_relabelled():
    ds = validate_dataset(
        _ds(
            train=[Sample("a", 7, 0), Sample("b", np.int64(3), 0)],
            query=[Sample("q", 42, 0)],
            gallery=[Sample("g", 42, 1)],
        )
    )
    assert [s.pid for s in ds.train] == [1, 0]
    assert ds.query[0].pid == 42 and ds.gallery[0].pid == 42


@pytest.mark.parametrize(
    "train,query,msg",
    [
        ([Sample("a", "p1", 0), Sample("b", 2, 0)], [], "both ints and strings"),
        ([Sample("a", 1.5, 0)], [], r"1\.5 \(float\)"),
        ([Sample("a", True, 0)], [], r"True \(bool\)"),
        ([Sample("a", 0, "cam1")], [], "camid must be an integer >= 0"),
        ([Sample("a", 0, -1)], [], "camid must be an integer >= 0"),
        ([Sample("a", 0, 0.0)], [], "camid must be an integer >= 0"),
        ([Sample(None, 0, 0)], [], "path must be a string"),
        ([], [Sample("q", 1, 0), Sample("q2", "1", 0)], "query/gallery identity ids"),
    ],
)
def test_bad_ids_and_cameras_are_one_line(train, query, msg):
    with pytest.raises(DatasetError, match=msg) as e:
        validate_dataset(_ds(train=train, query=query))
    assert "\n" not in str(e.value) and "custom" in str(e.value)


@pytest.fixture
def plugin(tmp_path):
    """A registered dataset whose splits the test sets; removed afterwards."""
    box = {}
    name = f"plug_{len(DATASETS.names())}_{os.getpid()}"

    @DATASETS.register(name)
    def _factory(root="", dsetid=0):
        return box["ds"]

    yield name, box
    DATASETS._items.pop(name)


def _opts(name, tmp_path, *extra):
    return [
        "DATASETS.TRAIN",
        f"['{name}']",
        "DATASETS.TEST",
        f"['{name}']",
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        *extra,
    ]


def _images(tmp_path, spec):
    out = []
    for i, (pid, cam) in enumerate(spec):
        p = str(tmp_path / f"{i}.png")
        write_image(p, seed=i)
        out.append(Sample(p, pid, cam))
    return out


def test_empty_and_missing_splits_fail_up_front(plugin, tmp_path):
    from reidbox.data import build_train_set

    name, box = plugin
    imgs = _images(tmp_path, [("a", 0), ("a", 1), ("b", 0), ("b", 1)])
    box["ds"] = ReIDDataset(name, [], imgs[:1], imgs[1:])
    with pytest.raises(DatasetError, match="train split is empty"):
        build_train_set(load_config(None, _opts(name, tmp_path)))
    box["ds"] = ReIDDataset(name, imgs, [], imgs)
    with pytest.raises(DatasetError, match="query split is empty"):
        build_test_sets(load_config(None, _opts(name, tmp_path)))
    box["ds"] = ReIDDataset(
        name, imgs + [Sample(str(tmp_path / "gone.jpg"), "a", 0)], imgs[:1], imgs[1:]
    )
    with pytest.raises(DatasetError, match=r"1 of 5 train image files do not exist.*gone\.jpg"):
        build_train_set(load_config(None, _opts(name, tmp_path)))
    # the opt-in that drops unreadable files also drops missing ones (at load time)
    build_train_set(load_config(None, _opts(name, tmp_path, "DATALOADER.SKIP_UNREADABLE", "True")))
    box["ds"] = [imgs]
    with pytest.raises(DatasetError, match="not a ReIDDataset"):
        build_train_set(load_config(None, _opts(name, tmp_path)))


def test_single_camera_data_reported_before_training(plugin, tmp_path):
    name, box = plugin
    imgs = _images(tmp_path, [(p, 0) for p in ("a", "a", "b", "b", "c", "c")])
    box["ds"] = ReIDDataset(name, imgs, [imgs[0], imgs[2]], [imgs[1], imgs[3], imgs[5]])
    with pytest.raises(DatasetError, match="TEST.PROTOCOL same_camera") as e:
        build_test_sets(load_config(None, _opts(name, tmp_path)))
    assert "none of the 2 queries" in str(e.value)
    sets = build_test_sets(load_config(None, _opts(name, tmp_path, "TEST.PROTOCOL", "same_camera")))
    assert [s.pid for s in sets[0].query] == [0, 1]
    # same_camera refuses a gallery that contains the queries themselves
    box["ds"] = ReIDDataset(name, imgs, [imgs[0]], imgs)
    with pytest.raises(DatasetError, match="also in the gallery"):
        build_test_sets(load_config(None, _opts(name, tmp_path, "TEST.PROTOCOL", "same_camera")))


def test_single_camera_training_stops_before_the_first_epoch(plugin, tmp_path):
    from reidbox.engine import runner

    name, box = plugin
    imgs = _images(tmp_path, [(p, 0) for p in ("a", "a", "b", "b", "c", "c")])
    box["ds"] = ReIDDataset(name, imgs, [imgs[0]], [imgs[1], imgs[3]])
    cfg = load_config(
        None,
        _opts(
            name,
            tmp_path,
            "MODEL.BACKBONE.NAME",
            "resnet18",
            "DATALOADER.NUM_WORKERS",
            "0",
            "DEVICE",
            "cpu",
        ),
    )
    with pytest.raises(DatasetError, match="same_camera"):
        runner.train(cfg, progress=False)
    assert not any(f.startswith(("checkpoint_", "model_final")) for f in os.listdir(cfg.OUTPUT_DIR))


def test_same_camera_protocol_counts_same_camera_matches():
    d = np.array([[0.1, 0.5, 0.9], [0.7, 0.2, 0.3]])
    q_pids, g_pids, cams_q, cams_g = [1, 2], [1, 2, 2], [0, 0], [0, 0, 0]
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_distmat(d, q_pids, g_pids, cams_q, cams_g, protocol="market1501")
    r = evaluate_distmat(d, q_pids, g_pids, cams_q, cams_g, protocol="same_camera")
    assert r.mAP == pytest.approx(1.0) and r.cmc[0] == 1.0
    # with several cameras it equals market1501 where no same-camera match exists
    r2 = evaluate_distmat(d, q_pids, g_pids, [0, 0], [1, 1, 1], protocol="same_camera")
    r3 = evaluate_distmat(d, q_pids, g_pids, [0, 0], [1, 1, 1], protocol="market1501")
    assert r2.mAP == r3.mAP and np.array_equal(r2.cmc, r3.cmc)
    assert check_query_matches("x", [Sample("q", 1, 0)], [Sample("g", 1, 0)], True, "p") == 1


def _doc_blocks():
    text = open(DOC).read()
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    files = {}
    commands = []
    for lang, body in blocks:
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            files[first[len("# file: ") :].strip()] = body
        elif lang == "bash":
            commands.append(body)
    return files, commands


@pytest.mark.slow
def test_doc_worked_example_runs_as_written(tmp_path):
    """docs/custom_dataset.md: its files written, its commands run from a repo-like folder."""
    files, commands = _doc_blocks()
    assert set(files) == {"my_reid_data.py", "my_cams.yml", "make_toy_my_cams.py"}
    assert commands
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    for d in ("tools", "configs"):
        os.symlink(os.path.join(ROOT, d), tmp_path / d)
    env = dict(
        os.environ,
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
        PYTHONPATH=ROOT,
    )
    for cmd in commands:
        p = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", cmd],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert p.returncode == 0, p.stderr[-3000:]
    with open(tmp_path / "output" / "my_cams" / "metrics.json") as f:
        trained = json.load(f)
    (tested_file,) = (tmp_path / "output" / "my_cams" / "eval").glob("*/metrics.json")
    with open(tested_file) as f:
        tested = json.load(f)
    per = trained["per_dataset"]["my_cams"]
    assert per["num_query"] == 4 and per.get("num_gallery", 20) == 20
    assert tested["mAP"] == pytest.approx(trained["mAP"], abs=1e-6)
    # the same plugin on single-camera data: one line before training, naming the option
    labels = tmp_path / "datasets" / "my_cams" / "labels.csv"
    rows = labels.read_text().splitlines()
    labels.write_text("\n".join([rows[0]] + [r[: r.rindex(",")] + ",0" for r in rows[1:]]))
    cmd = (
        "python tools/train_net.py --no-progress --config-file "
        "my_cams.yml PLUGINS \"['my_reid_data']\" OUTPUT_DIR output/single"
    )
    p = subprocess.run(
        ["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "TEST.PROTOCOL same_camera" in err[0], p.stderr[-3000:]
    doc_err = re.search(r"```text\n(error: .*?)\n```", open(DOC).read(), re.S).group(1)
    assert err[0] == doc_err
    assert not any(f.startswith("checkpoint_") for f in os.listdir(tmp_path / "output" / "single"))


def test_builtin_parsers_pass_validation_unchanged(tmp_path):
    from tests.data.fixtures import make_market

    make_market(str(tmp_path))
    ds = build_dataset("market1501", root=str(tmp_path))
    assert sorted({s.pid for s in ds.train}) == list(range(ds.num_train_pids))
    assert all(type(s.pid) is int for s in ds.query + ds.gallery)


def test_plugin_with_string_ids_combines_with_a_builtin(plugin, tmp_path):
    from tests.data.fixtures import make_market

    name, box = plugin
    make_market(str(tmp_path))
    imgs = _images(tmp_path, [("zz", 0), ("aa", 1), ("zz", 1)])
    box["ds"] = ReIDDataset(name, imgs, imgs[:1], imgs[1:])
    market = build_dataset("market1501", root=str(tmp_path))
    ds = build_dataset(f"market1501+{name}", root=str(tmp_path))
    n = market.num_train_pids
    assert ds.num_train_pids == n + 2
    assert [s.pid for s in ds.train[-3:]] == [n + 1, n, n + 1]
    assert all(type(s.pid) is int for _, q, g in ds.evaluation_sets() for s in q + g)
