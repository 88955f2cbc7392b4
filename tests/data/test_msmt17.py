import os

import pytest

from reidbox.data import DatasetError, build_dataset

from .fixtures import make_msmt17


def _check(items, exp):
    assert len(items) == exp["images"]
    assert len({s.pid for s in items}) == exp["identities"]
    assert {s.camid for s in items} == exp["cameras"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt17_splits(tmp_path, version):
    exp = make_msmt17(str(tmp_path), version)
    ds = build_dataset("msmt17", root=str(tmp_path), version=version)
    assert ds.version == version
    for split in ("train", "query", "gallery"):
        _check(getattr(ds, split), exp[split])
    assert any(s.path.endswith("_ex.jpg") for s in ds.train + ds.gallery)
    assert max(s.camid for s in ds.train + ds.gallery) == 14  # camera 15, two digits
    assert sorted({s.pid for s in ds.train}) == list(range(exp["train"]["identities"]))
    assert 0 in {s.pid for s in ds.query}  # test ids restart at 0 (raw)
    train_dir = "train" if version == "v1" else "mask_train_v2"
    assert all(f"{os.sep}{train_dir}{os.sep}" in s.path for s in ds.train)


def test_msmt17_include_val(tmp_path):
    exp = make_msmt17(str(tmp_path))
    ds = build_dataset("msmt17", root=str(tmp_path), include_val=False)
    _check(ds.train, exp["train_only"])
    assert len(build_dataset("msmt17", root=str(tmp_path)).train) == exp["train"]["images"]


def test_msmt17_auto_prefers_v1_and_accepts_release_root(tmp_path):
    make_msmt17(str(tmp_path), "v2")
    assert build_dataset("msmt17", root=str(tmp_path)).version == "v2"
    exp = make_msmt17(str(tmp_path), "v1")
    assert build_dataset("msmt17", root=str(tmp_path)).version == "v1"
    for where in (exp["base"], os.path.join(str(tmp_path), "msmt17")):
        ds = build_dataset("msmt17", root=where)
        _check(ds.query, exp["query"])
    with pytest.raises(ValueError, match="v3"):
        build_dataset("msmt17", root=str(tmp_path), version="v3")


def test_msmt17_missing_lists_and_release(tmp_path):
    with pytest.raises(DatasetError, match="MSMT17_V1"):
        build_dataset("msmt17", root=str(tmp_path))
    exp = make_msmt17(str(tmp_path))
    os.remove(os.path.join(exp["base"], "list_val.txt"))
    with pytest.raises(DatasetError, match="list_val.txt") as e:
        build_dataset("msmt17", root=str(tmp_path))
    assert exp["base"] in str(e.value)
    # list_val is only needed when it joins training
    assert (
        len(build_dataset("msmt17", root=str(tmp_path), include_val=False).train)
        == exp["train_only"]["images"]
    )
    os.remove(os.path.join(exp["base"], "list_query.txt"))
    with pytest.raises(DatasetError, match="list_query.txt"):
        build_dataset("msmt17", root=str(tmp_path), include_val=False)


@pytest.mark.parametrize(
    "line",
    [
        "../../../../etc/passwd 0",
        "0000/../../train/x.jpg 0",
        "/abs/0000_001_01_0113morning_0001_0.jpg 0",
    ],
)
def test_msmt17_refuses_paths_outside(tmp_path, line):
    make_msmt17(str(tmp_path), bad_line=line)
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        build_dataset("msmt17", root=str(tmp_path))


@pytest.mark.parametrize(
    "line,match",
    [
        ("0000/0000_001_1_0113morning_0001_0.jpg 0", "grammar"),  # one-digit camera
        ("0000/0000_001_16_0113morning_0001_0.jpg 0", "camera 16"),
        ("0000/0000_001_01_0113morning_0001_0.jpg", "<relative path> <pid>"),
        ("0000/0000_999_01_0113morning_0001_0.jpg 0", "does not exist"),
    ],
)
def test_msmt17_bad_lines_name_the_line(tmp_path, line, match):
    make_msmt17(str(tmp_path), bad_line=line)
    with pytest.raises(DatasetError, match=match) as e:
        build_dataset("msmt17", root=str(tmp_path))
    assert "list_gallery.txt:6" in str(e.value)


def test_msmt17_published_counts_warn(tmp_path, monkeypatch, caplog):
    import logging

    from reidbox.data.datasets import msmt17

    exp = make_msmt17(str(tmp_path))
    fake = {
        "train_images": exp["train"]["images"],
        "list_train_images": 8,
        "train_ids": exp["train"]["identities"],
        "query_images": exp["query"]["images"],
        "gallery_images": exp["gallery"]["images"] + 2,
        "test_ids": 3,
        "cameras": 15,
    }
    monkeypatch.setattr(msmt17, "PUBLISHED", fake)
    with caplog.at_level(logging.WARNING):
        build_dataset("msmt17", root=str(tmp_path))
    msgs = "\n".join(r.getMessage() for r in caplog.records)
    assert (
        f"gallery: found {exp['gallery']['images']} images, the published release has "
        f"{exp['gallery']['images'] + 2}" in msgs
    )
    assert "train: found 10 cameras, the published release has 15" in msgs
    assert "query: found" in msgs and "train: found 10 images" not in msgs
