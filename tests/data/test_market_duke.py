import logging
import os
import re

import pytest

from reidbox.data import DatasetError, build_dataset
from reidbox.data.datasets.market1501 import Market1501, MarketStyleDataset

from .fixtures import make_duke, make_market, write_image


def _check(ds, exp, splits=("train", "query", "gallery")):
    for split in splits:
        items = getattr(ds, split)
        assert len(items) == exp[split]["images"], split
        assert len({s.pid for s in items}) == exp[split]["identities"], split
        assert {s.camid for s in items} == exp[split]["cameras"], split
        assert all(os.path.isfile(s.path) for s in items)


def _raw(path):
    return int(re.match(r"^(-1|\d{4})", os.path.basename(path)).group(1))


def test_market_rules(tmp_path):
    exp = make_market(str(tmp_path))
    ds = build_dataset("market1501", root=str(tmp_path))
    _check(ds, exp)
    # train labels 0..N-1 in ascending raw-pid order
    order = exp["train_raw_pids"]
    assert all(s.pid == order.index(_raw(s.path)) for s in ds.train)
    # query/gallery raw pids; -1 dropped, 0000 kept in the gallery
    assert all(s.pid == _raw(s.path) for s in ds.query + ds.gallery)
    assert sorted({s.pid for s in ds.gallery}) == exp["gallery_pids"]
    assert 0 in {s.pid for s in ds.gallery} and -1 not in {s.pid for s in ds.gallery}
    assert all(
        s.path.endswith(".jpg") and not os.path.basename(s.path).startswith(".")
        for s in ds.train + ds.query + ds.gallery
    )
    assert all(s.dsetid == 0 for s in ds.train)


@pytest.mark.parametrize("where", ["flat", "dataset_dir", "release_dir"])
def test_market_layouts(tmp_path, where):
    exp = make_market(str(tmp_path), release=where != "flat")
    root = {"flat": tmp_path, "dataset_dir": tmp_path / "market1501", "release_dir": exp["base"]}[
        where
    ]
    _check(build_dataset("market1501", root=str(root)), exp)


def test_market_missing_folder_names_path_and_tree(tmp_path):
    with pytest.raises(DatasetError) as e:
        build_dataset("market1501", root=str(tmp_path))
    msg = str(e.value)
    assert os.path.join(str(tmp_path), "market1501") in msg and "bounding_box_train" in msg


def test_market_bad_filename_names_file(tmp_path):
    exp = make_market(str(tmp_path))
    bad = os.path.join(exp["base"], "query", "0001_c7s1_000001_00.jpg")  # camera 7
    write_image(bad)
    with pytest.raises(DatasetError, match="0001_c7s1_000001_00.jpg"):
        build_dataset("market1501", root=str(tmp_path))


def test_regex_on_basename_not_parent_dirs(tmp_path):
    root = tmp_path / "run_2_c3" / "-1_c1"
    exp = make_market(str(root))
    _check(build_dataset("market1501", root=str(root)), exp)


def test_published_counts_warn_not_fail(tmp_path, caplog):
    exp = make_market(str(tmp_path))

    class Full(Market1501):
        # the fixture's numbers, except gallery images: the folder "looks full" and one differs
        published = {
            ("train", "images"): exp["train"]["images"],
            ("train", "identities"): exp["train"]["identities"],
            ("gallery", "images"): exp["gallery"]["images"] + 1,
        }

    with caplog.at_level(logging.WARNING):
        ds = Full(root=str(tmp_path))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "gallery" in warnings[0]
    assert str(exp["gallery"]["images"]) in warnings[0]
    assert str(exp["gallery"]["images"] + 1) in warnings[0]
    assert len(ds.gallery) == exp["gallery"]["images"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_dataset("market1501", root=str(tmp_path))  # tiny tree: not compared
    assert not caplog.records


def test_market_style_subclass_without_published(tmp_path):
    exp = make_market(str(tmp_path))

    class Other(MarketStyleDataset):
        dataset_dir = "market1501"
        published = None

    ds = Other(str(tmp_path), dsetid=3, name="other")
    assert ds.name == "other" and {s.dsetid for s in ds.train + ds.query} == {3}
    _check(ds, exp)


def test_duke_rules(tmp_path):
    exp = make_duke(str(tmp_path))
    ds = build_dataset("dukemtmcreid", root=str(tmp_path))
    _check(ds, exp)
    order = exp["train_raw_pids"]
    assert all(s.pid == order.index(_raw(s.path)) for s in ds.train)
    assert 4000 in {s.pid for s in ds.gallery}  # single-camera distractor keeps its pid
    assert max(s.camid for s in ds.train) == 7


def test_duke_rejects_market_names(tmp_path):
    exp = make_duke(str(tmp_path))
    write_image(os.path.join(exp["base"], "bounding_box_test", "0002_c1s1_000451_03.jpg"))
    with pytest.raises(DatasetError, match="0002_c1s1_000451_03.jpg"):
        build_dataset("dukemtmcreid", root=str(tmp_path))
