import logging

from reidbox.data.datasets.base import ReIDDataset, Sample, check_published, looks_full, relabel


def test_relabel_is_ascending_raw_order():
    items = [Sample("a", 30, 0), Sample("b", 2, 1), Sample("c", 11, 0), Sample("d", 2, 2)]
    assert [s.pid for s in relabel(items, dsetid=4)] == [2, 0, 1, 0]
    assert {s.dsetid for s in relabel(items, dsetid=4)} == {4}


def test_check_published_names_split_and_numbers(caplog):
    ds = ReIDDataset(
        "x",
        train=[Sample("a", 0, 0), Sample("b", 1, 1)],
        query=[Sample("q", 5, 0)],
        gallery=[Sample("g", 5, 1)],
    )
    with caplog.at_level(logging.WARNING):
        ok = check_published(
            ds, {("train", "images"): 2, ("query", "identities"): 7, ("gallery", "cameras"): 1}
        )
    assert not ok
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["x query: found 1 identities, the published release has 7"]
    assert check_published(ds, {("train", "identities"): 2})
    assert looks_full(95, 100) and not looks_full(10, 100)


def test_evaluation_sets():
    ds = ReIDDataset("x", train=[], query=[Sample("q", 1, 0)], gallery=[])
    assert ds.evaluation_sets() == [("x", ds.query, [])]
    comb = ReIDDataset("c", train=[], test_sets={"a": ([], []), "b": ([], [])})
    assert [n for n, _, _ in comb.evaluation_sets()] == ["a", "b"]
