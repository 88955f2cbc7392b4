"""``utils.misc.exclusive``: the lock dataset builders share."""

import multiprocessing as mp
import os
import time

import pytest

from reidbox.utils.misc import exclusive


def _hold(lock_path, ready, seconds):
    with exclusive(lock_path):
        ready.set()
        time.sleep(seconds)


def test_a_second_holder_waits_for_the_first(tmp_path):
    lock = str(tmp_path / ".x.lock")
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(lock, ready, 0.5))
    holder.start()
    assert ready.wait(10)
    t0 = time.perf_counter()
    with exclusive(lock):
        waited = time.perf_counter() - t0
    holder.join()
    assert waited > 0.2


def test_no_lock_file_possible_runs_the_body_and_keeps_its_error_alone(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ValueError) as e:
        with exclusive(os.path.join(str(afile), ".x.lock")):  # its folder is a file
            raise ValueError("from the body")
    assert e.value.__context__ is None  # not reported "during handling of" the lock's OSError
