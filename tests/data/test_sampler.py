from collections import Counter

import pytest

from reidbox.data import PKBatchSampler


def _pids():
    # 10 identities with 1..10 images each: some have fewer than K.
    return [pid for pid in range(10) for _ in range(pid + 1)]


def test_pk_batches_balanced_and_every_identity_once():
    pids = _pids()
    s = PKBatchSampler(pids, batch_size=12, num_instances=4, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 4  # ceil(10 / 3)
    seen = Counter()
    for i, b in enumerate(batches):
        ids = Counter(pids[j] for j in b)
        assert all(c == 4 for c in ids.values())  # K images of each identity
        if i < len(batches) - 1:
            assert len(ids) == 3 and len(b) == 12  # P identities
        seen.update(ids.keys())
    assert seen == Counter(range(10))  # every identity exactly once per epoch


def test_small_identities_sampled_with_replacement_large_without():
    pids = _pids()
    s = PKBatchSampler(pids, batch_size=8, num_instances=4, seed=0)
    for b in s:
        by_id = {}
        for j in b:
            by_id.setdefault(pids[j], []).append(j)
        for pid, idx in by_id.items():
            if pid + 1 >= 4:
                assert len(set(idx)) == 4
            assert all(pids[j] == pid for j in idx)


def test_epoch_seeding_is_deterministic_and_varies():
    pids = _pids()
    a = PKBatchSampler(pids, 8, 4, seed=3)
    b = PKBatchSampler(pids, 8, 4, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_ranks_split_identities_without_overlap():
    pids = list(range(12)) * 4
    ranks = [PKBatchSampler(pids, 8, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(1)
    batches = [list(r) for r in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0])
    ids = [{pids[j] for b in bs for j in b} for bs in batches]
    assert not ids[0] & ids[1]
    assert ids[0] | ids[1] == set(range(12))


def test_bad_batch_size():
    with pytest.raises(ValueError, match="multiple of K"):
        PKBatchSampler([0, 1], batch_size=6, num_instances=4)
