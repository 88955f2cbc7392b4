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
    for b in batches:
        ids = Counter(pids[j] for j in b)
        assert all(c == 4 for c in ids.values())  # K images of each identity
        assert len(ids) == 3 and len(b) == 12  # P identities, the last batch too
        seen.update(ids.keys())
    assert set(seen) == set(range(10))  # every identity once per epoch ...
    first = {pids[j] for j in batches[0]}
    twice = {p for p, c in seen.items() if c == 2}
    assert len(twice) == 2 and twice <= first  # ... plus the top-up from the first batch


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


def test_ranks_split_each_global_batch_without_overlap():
    pids = list(range(13)) * 4
    single = PKBatchSampler(pids, 8, 4, seed=0)  # P=2 per step
    ranks = [PKBatchSampler(pids, 4, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    for s in [single, *ranks]:
        s.set_epoch(1)
    batches = [list(r) for r in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == 7
    for b0, b1 in zip(batches[0], batches[1]):
        assert len(b0) == len(b1) == 4
        assert not {pids[j] for j in b0} & {pids[j] for j in b1}
    seen = {pids[j] for bs in batches for b in bs for j in b}
    assert seen == set(range(13))  # 13 ids: the last batch is topped up with a repeat
    # Ranks together replay the single-process batches, the topped-up last one included.
    assert [a + b for a, b in zip(*batches)] == list(single)
    even = list(range(12)) * 4
    one = PKBatchSampler(even, 8, 4, seed=5)
    two = [PKBatchSampler(even, 4, 4, seed=5, rank=r, world_size=2) for r in range(2)]
    assert [a + b for a, b in zip(*[list(t) for t in two])] == list(one)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="multiple of K"):
        PKBatchSampler([0, 1], batch_size=6, num_instances=4)


def test_camera_balanced_k_spans_the_cameras_of_each_identity():
    # identity p has 2 + p images over 1 + p % 4 cameras, camera sizes deliberately uneven
    pids, camids = [], []
    for pid in range(8):
        ncam = 1 + pid % 4
        for i in range(2 + pid):
            pids.append(pid)
            camids.append(0 if i < (2 + pid) // 2 else i % ncam)
    plain = PKBatchSampler(pids, batch_size=8, num_instances=4, seed=3)
    cams = PKBatchSampler(pids, batch_size=8, num_instances=4, seed=3, camids=camids)
    spread = {"plain": [], "camera": []}
    for kind, sampler in (("plain", plain), ("camera", cams)):
        for epoch in range(5):
            sampler.set_epoch(epoch)
            for b in sampler:
                assert len(b) == 8
                by_id = {}
                for j in b:
                    by_id.setdefault(pids[j], []).append(j)
                for pid, idx in by_id.items():
                    assert len(idx) == 4 and all(pids[j] == pid for j in idx)
                    have = len({camids[j] for j in range(len(pids)) if pids[j] == pid})
                    got = Counter(camids[j] for j in idx)
                    spread[kind].append(len(got) / min(4, have))
                    if kind == "camera":  # every camera it has (up to K), evenly
                        assert len(got) == min(4, have)
                        assert max(got.values()) - min(got.values()) <= 1
                        # without replacement while a camera has images left
                        for cam, n in got.items():
                            size = sum(
                                1 for j, c in enumerate(camids) if pids[j] == pid and c == cam
                            )
                            picked = [j for j in idx if camids[j] == cam]
                            assert len(set(picked)) == min(n, size)
    assert min(spread["camera"]) == 1.0 and min(spread["plain"]) < 1.0
    # the same seed and epoch give the same batches
    cams.set_epoch(2)
    again = PKBatchSampler(pids, batch_size=8, num_instances=4, seed=3, camids=camids)
    again.set_epoch(2)
    assert list(cams) == list(again)


def test_camera_ids_must_match_images():
    with pytest.raises(ValueError, match="3 camera ids for 4 images"):
        PKBatchSampler([0, 0, 1, 1], batch_size=4, num_instances=2, camids=[0, 1, 0])
