import json
import os

import numpy as np
import pytest
from PIL import Image

from reidbox.data import DatasetError, build_dataset
from reidbox.data.datasets.cuhk03 import read_new_protocol

from .fixtures import run_tool
from .fixtures import CUHK03_PAIRS, TESTSETS, cuhk03_files, cuhk03_pixels, make_cuhk03


@pytest.fixture(scope="module")
def cuhk(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuhk")
    return str(root), make_cuhk03(str(root))


def _check(ds, exp):
    for split in ("train", "query", "gallery"):
        items = getattr(ds, split)
        assert len(items) == exp[split]["images"], split
        assert len({s.pid for s in items}) == exp[split]["identities"], split
        assert {s.camid for s in items} == exp[split]["cameras"], split


@pytest.mark.parametrize("variant", ["labeled", "detected"])
def test_new_protocol(cuhk, variant):
    root, exp = cuhk
    ds = build_dataset("cuhk03", root=root, variant=variant)
    _check(ds, exp["new"][variant])
    assert sorted({s.pid for s in ds.train}) == list(
        range(exp["new"][variant]["train"]["identities"])
    )
    # query/gallery keep the raw 1-based labels of the .mat; camid = view - 1
    for s in ds.query + ds.gallery:
        name = os.path.basename(s.path)
        gid = {n: g for n, g, _ in cuhk03_files(variant)}[name]
        assert s.pid == gid and s.camid == int(name.split("_")[2]) - 1
    raw = {n: g for n, g, _ in cuhk03_files(variant)}
    train_ids = {raw[os.path.basename(s.path)] for s in ds.train}
    assert not train_ids & {s.pid for s in ds.query + ds.gallery}
    assert set(map(os.path.basename, (s.path for s in ds.train + ds.query + ds.gallery))) == set(
        exp["new"][variant]["files"]
    )


def test_extraction_names_pixels_and_empty_cells(cuhk):
    root, _ = cuhk
    ds = build_dataset("cuhk03", root=root, variant="labeled")
    folder = os.path.join(root, "cuhk03", "cuhk03_release", "images_labeled")
    assert ds.image_dir == folder
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    assert names == sorted(n for n, _, _ in cuhk03_files("labeled"))
    # the person with no view-1 image: view-2 slots numbered 06..10
    assert not [n for n in names if n.startswith("3_002_1_")]
    assert [n for n in names if n.startswith("3_002_2_")] == [
        f"3_002_2_{k:02d}.png" for k in range(6, 11)
    ]
    # orientation: the stored (H, W, 3) image comes back pixel for pixel
    for name in ("1_001_1_01.png", "2_003_2_06.png"):
        pair, person, _, slot = (int(x) for x in name[:-4].split("_"))
        got = np.asarray(Image.open(os.path.join(folder, name)))
        np.testing.assert_array_equal(got, cuhk03_pixels("labeled", pair - 1, person - 1, slot - 1))


def test_extraction_is_reused_and_redone_when_mat_changes(tmp_path):
    exp = make_cuhk03(str(tmp_path), new_protocol=False)
    build_dataset("cuhk03", root=str(tmp_path), protocol="classic")
    folder = os.path.join(os.path.dirname(exp["mat"]), "images_labeled")
    probe = os.path.join(folder, "1_001_1_01.png")
    os.remove(probe)
    build_dataset("cuhk03", root=str(tmp_path), protocol="classic")
    assert not os.path.exists(probe)  # reused: not extracted again
    st = os.stat(exp["mat"])
    os.utime(exp["mat"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    build_dataset("cuhk03", root=str(tmp_path), protocol="classic")
    assert os.path.exists(probe)
    with open(os.path.join(folder, ".extracted.json")) as f:
        assert json.load(f)["images"] == len(cuhk03_files("labeled"))


@pytest.mark.parametrize("variant", ["labeled", "detected"])
@pytest.mark.parametrize("split", [0, 7, 19])
def test_classic_protocol(cuhk, variant, split):
    root, exp = cuhk
    ds = build_dataset("cuhk03", root=root, variant=variant, protocol="classic", split=split)
    _check(ds, exp["classic"][variant][split])
    assert ds.query == ds.gallery
    assert not {s.path for s in ds.query} & {s.path for s in ds.train}
    # raw global ids: person j of pair p -> persons in earlier pairs + j
    offsets = np.cumsum((0,) + CUHK03_PAIRS)
    expected = {int(offsets[a - 1]) + b for a, b in TESTSETS[split]}
    assert {s.pid for s in ds.query} == expected


def test_bad_options_and_layouts(cuhk, tmp_path):
    root, _ = cuhk
    with pytest.raises(ValueError, match="0..19"):
        build_dataset("cuhk03", root=root, protocol="classic", split=20)
    with pytest.raises(ValueError, match="variant"):
        build_dataset("cuhk03", root=root, variant="both")
    with pytest.raises(DatasetError, match="cuhk03_release"):
        build_dataset("cuhk03", root=str(tmp_path))
    make_cuhk03(str(tmp_path), new_protocol=False)
    with pytest.raises(DatasetError, match="cuhk03_new_protocol_config_labeled.mat"):
        build_dataset("cuhk03", root=str(tmp_path))
    mat = os.path.join(str(tmp_path), "cuhk03", "cuhk03_release", "cuhk-03.mat")
    with open(mat, "wb") as f:
        f.write(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)
    with pytest.raises(DatasetError, match="v7.3"):
        build_dataset("cuhk03", root=str(tmp_path), protocol="classic")


def test_new_protocol_file_is_read_as_in_the_release(cuhk):
    root, exp = cuhk
    cfg = read_new_protocol(os.path.join(root, "cuhk03", "cuhk03_new_protocol_config_detected.mat"))
    n = len(cfg["filelist"])
    assert cfg["train_idx"].dtype == np.int64 and cfg["train_idx"].min() >= 0
    allidx = np.concatenate([cfg["train_idx"], cfg["query_idx"], cfg["gallery_idx"]])
    assert sorted(allidx.tolist()) == list(range(n))
    assert cfg["filelist"][0] == "1_001_1_01.png"


def test_prepare_market_style_roundtrip(cuhk, tmp_path):
    root, exp = cuhk
    out = str(tmp_path / "out")
    run_tool("prepare_cuhk03.py", ["--root", root, "--variant", "detected", "--out", out])
    ds = build_dataset("cuhk03_market", root=out)
    _check(ds, exp["new"]["detected"])
    orig = build_dataset("cuhk03", root=root, variant="detected")
    assert sorted(s.pid for s in ds.query) == sorted(s.pid for s in orig.query)


@pytest.mark.parametrize("sub", ["cuhk03", "cuhk03/cuhk03_release"])
def test_root_at_the_dataset_folder(cuhk, sub):
    root, exp = cuhk
    ds = build_dataset("cuhk03", root=os.path.join(root, sub), variant="detected")
    _check(ds, exp["new"]["detected"])


def test_cuhk03_published_counts_warn(cuhk, monkeypatch, caplog):
    import logging

    from reidbox.data.datasets import cuhk03

    root, exp = cuhk
    e = exp["new"]["labeled"]
    monkeypatch.setattr(cuhk03, "PUBLISHED_TOTAL", {"labeled": len(e["files"]), "detected": 1})
    monkeypatch.setattr(
        cuhk03,
        "PUBLISHED_NEW",
        {
            "labeled": (
                e["train"]["images"],
                e["train"]["identities"],
                e["query"]["images"] - 1,
                e["query"]["identities"],
                e["gallery"]["images"],
                e["gallery"]["identities"],
            )
        },
    )
    with caplog.at_level(logging.WARNING):
        build_dataset("cuhk03", root=root)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [
        f"cuhk03 (labeled, new) query: found {e['query']['images']} images, "
        f"the published release has {e['query']['images'] - 1}"
    ]


def test_config_keys_reach_the_parser(cuhk):
    from reidbox.config import load_config
    from reidbox.data import build_test_sets, build_train_set

    root, exp = cuhk
    cfg = load_config(
        None,
        [
            "DATASETS.ROOT",
            root,
            "DATASETS.TRAIN",
            "['cuhk03']",
            "DATASETS.TEST",
            "['cuhk03']",
            "DATASETS.CUHK03.VARIANT",
            "detected",
            "DATASETS.CUHK03.PROTOCOL",
            "classic",
            "DATASETS.CUHK03.SPLIT",
            "7",
        ],
    )
    assert len(build_train_set(cfg).train) == exp["classic"]["detected"][7]["train"]["images"]
    (test,) = build_test_sets(cfg)
    assert test.name == "cuhk03"
    assert len(test.gallery) == exp["classic"]["detected"][7]["gallery"]["images"]
