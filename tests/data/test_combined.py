import pytest

from reidbox.config import load_config
from reidbox.data import build_dataset, build_test_sets, build_train_set
from reidbox.data.datasets.base import DatasetError, ReIDDataset, Sample, combine

from .fixtures import make_duke, make_market, make_msmt17


@pytest.fixture()
def root(tmp_path):
    exp = {
        "market1501": make_market(str(tmp_path)),
        "dukemtmcreid": make_duke(str(tmp_path)),
        "msmt17": make_msmt17(str(tmp_path)),
    }
    return str(tmp_path), exp


def test_market_duke(root):
    path, exp = root
    ds = build_dataset("market_duke", root=path)
    m, d = exp["market1501"]["train"], exp["dukemtmcreid"]["train"]
    assert len(ds.train) == m["images"] + d["images"]
    assert ds.num_train_pids == m["identities"] + d["identities"]
    assert sorted({s.pid for s in ds.train}) == list(range(ds.num_train_pids))
    market = [s for s in ds.train if s.dsetid == 0]
    duke = [s for s in ds.train if s.dsetid == 1]
    assert {s.camid for s in market} == m["cameras"]
    assert {s.camid for s in duke} == {c + 6 for c in d["cameras"]}  # 14 cameras in all
    assert max(s.pid for s in market) < min(s.pid for s in duke)
    assert all("market1501" in s.path for s in market) and all("dukemtmc" in s.path for s in duke)
    assert ds.query == [] and ds.gallery == []
    assert list(ds.test_sets) == ["market1501", "dukemtmcreid"]
    q, g = ds.test_sets["dukemtmcreid"]
    assert len(q) == exp["dukemtmcreid"]["query"]["images"]
    assert {s.camid for s in g} == exp["dukemtmcreid"]["gallery"]["cameras"]  # not shifted
    assert {s.dsetid for s in q + g} == {1}


def test_any_list_from_config(root):
    path, exp = root
    cfg = load_config(
        None,
        [
            "DATASETS.ROOT",
            path,
            "DATASETS.TRAIN",
            "['msmt17', 'market1501', 'dukemtmcreid']",
            "DATASETS.TEST",
            "['market_duke', 'msmt17']",
            "DATASETS.MSMT17.INCLUDE_VAL",
            "False",
        ],
    )
    ds = build_train_set(cfg)
    sizes = [exp[n]["train"]["identities"] for n in ("msmt17", "market1501", "dukemtmcreid")]
    assert len(ds.train) == (
        exp["msmt17"]["train_only"]["images"]
        + exp["market1501"]["train"]["images"]
        + exp["dukemtmcreid"]["train"]["images"]
    )
    assert ds.num_train_pids == sum(sizes)
    for k in range(3):
        pids = {s.pid for s in ds.train if s.dsetid == k}
        assert pids == set(range(sum(sizes[:k]), sum(sizes[: k + 1])))
    cams = [{s.camid for s in ds.train if s.dsetid == k} for k in range(3)]
    assert not cams[0] & cams[1] and not cams[1] & cams[2] and not cams[0] & cams[2]
    tests = build_test_sets(cfg)
    assert [t.name for t in tests] == ["market1501", "dukemtmcreid", "msmt17"]
    assert len(tests[2].gallery) == exp["msmt17"]["gallery"]["images"]


def test_plus_names(root):
    path, exp = root
    ds = build_dataset("dukemtmcreid+market1501", root=path)
    assert ds.num_train_pids == (
        exp["market1501"]["train"]["identities"] + exp["dukemtmcreid"]["train"]["identities"]
    )
    assert {s.camid for s in ds.train if s.dsetid == 1} == {
        c + 8 for c in exp["market1501"]["train"]["cameras"]
    }


def test_combine_offsets_use_max_not_count():
    a = ReIDDataset("a", [Sample("x", 0, 0), Sample("y", 4, 3)])  # sparse labels and cameras
    b = ReIDDataset("b", [Sample("z", 0, 0)])
    ds = combine([a, b])
    assert ds.train[2] == Sample("z", 5, 4, 1)
    with pytest.raises(DatasetError):
        combine([])


def test_nested_combination_keeps_sources_apart(root):
    path, exp = root
    from reidbox.data.datasets.combined import combine_by_name

    ds = combine_by_name(["market_duke", "msmt17"], root=path)
    assert sorted({s.dsetid for s in ds.train}) == [0, 1, 2]
    msmt = [s for s in ds.train if s.dsetid == 2]
    assert len(msmt) == exp["msmt17"]["train"]["images"]
    assert min(s.camid for s in msmt) == 14
    assert list(ds.test_sets) == ["market1501", "dukemtmcreid", "msmt17"]
    assert {s.dsetid for s in ds.test_sets["msmt17"][0]} == {2}
    assert {s.dsetid for s in ds.test_sets["dukemtmcreid"][1]} == {1}
