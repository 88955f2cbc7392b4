"""LatentStateStore: carry / reset, per-sample / batch-mean, batch-size changes, init."""

import pytest
import torch

from reidbox.modeling.ptl import LatentStateStore


def test_carry_returns_what_was_written_detached():
    s = LatentStateStore("carry")
    new = torch.randn(4, 2, 3, 3, requires_grad=True) * 2
    s.write("a", new)
    got = s.read("a", torch.zeros(4, 2, 3, 3))
    torch.testing.assert_close(got, new.detach())
    assert not got.requires_grad


def test_first_read_and_reset_give_fresh_zeros():
    s = LatentStateStore("carry")
    tmpl = torch.zeros(2, 1, 2, 2)
    assert torch.equal(s.read("a", tmpl), tmpl)
    s.write("a", torch.ones(2, 1, 2, 2))
    s.reset()
    assert len(s) == 0
    assert torch.equal(s.read("a", tmpl), tmpl)


def test_smaller_batch_uses_first_rows_and_keeps_the_rest():
    s = LatentStateStore("carry", "per_sample")
    full = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 2, 2).clone()
    s.write("a", full)
    got = s.read("a", torch.zeros(3, 2, 2, 2))
    torch.testing.assert_close(got, full[:3])
    s.write("a", torch.full((3, 2, 2, 2), -1.0))
    after = s.get("a")
    assert after.shape[0] == 4
    assert (after[:3] == -1).all() and torch.equal(after[3], full[3])


def test_larger_batch_starts_extra_rows_fresh():
    s = LatentStateStore("carry", "per_sample")
    s.write("a", torch.ones(2, 1, 2, 2))
    got = s.read("a", torch.zeros(5, 1, 2, 2))
    assert got.shape[0] == 5
    assert (got[:2] == 1).all() and (got[2:] == 0).all()


def test_batch_mean_stores_one_state_shared_by_the_batch():
    s = LatentStateStore("carry", "batch_mean")
    new = torch.randn(4, 2, 3, 3)
    s.write("a", new)
    assert s.get("a").shape == (1, 2, 3, 3)
    got = s.read("a", torch.zeros(6, 2, 3, 3))
    assert got.shape == (6, 2, 3, 3)
    torch.testing.assert_close(got, new.mean(0, keepdim=True).expand(6, 2, 3, 3))


def test_reset_each_batch_never_keeps_anything():
    s = LatentStateStore("reset_each_batch")
    s.write("a", torch.ones(2, 1, 2, 2))
    assert len(s) == 0
    assert torch.equal(s.read("a", torch.zeros(2, 1, 2, 2)), torch.zeros(2, 1, 2, 2))


def test_normal_init_is_small_noise():
    torch.manual_seed(0)
    s = LatentStateStore("carry", init="normal")
    got = s.read("a", torch.zeros(64, 8, 8, 8))
    assert 0.8e-3 < float(got.std()) < 1.2e-3
    assert abs(float(got.mean())) < 1e-4


def test_tuple_states_of_v2_cells_and_shape_change_starts_fresh():
    s = LatentStateStore("carry")
    s.write("a", (torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)))
    c, h = s.read("a", (torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)))
    assert (c == 1).all() and (h == 2).all() and c.shape[0] == 1
    c, h = s.read("a", (torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)))  # new input size
    assert (c == 0).all() and (h == 0).all()


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"mode": "keep"}, "STATE_MODE"),
        ({"shape": "global"}, "STATE_SHAPE"),
        ({"init": "ones"}, "STATE_INIT"),
    ],
)
def test_bad_settings_name_the_config_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        LatentStateStore(**kwargs)


def test_info_records_the_settings():
    assert LatentStateStore("reset_each_batch", "batch_mean", "normal").info() == {
        "state_mode": "reset_each_batch",
        "state_shape": "batch_mean",
        "state_init": "normal",
    }
