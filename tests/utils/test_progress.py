"""Progress off a terminal: timed log lines, never carriage returns (issue 22.7)."""

import contextlib
import io
import logging

import numpy as np

from reidbox.utils import progress as progress_mod
from reidbox.utils.logger import command_line


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_off_a_terminal_progress_is_log_lines(monkeypatch):
    err = io.StringIO()
    clock = iter(range(0, 1000, 4))  # every item takes 4 s
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: next(clock))
    logger = logging.getLogger("reidbox")
    seen = _Lines()
    monkeypatch.setattr(logger, "handlers", [seen])  # only this test's handler
    monkeypatch.setattr(logger, "level", logging.INFO)
    with contextlib.redirect_stderr(err):
        assert list(progress_mod.progress(range(9), "features", period=10)) == list(range(9))
    assert err.getvalue() == ""  # nothing drawn on stderr
    assert seen.lines == [f"features: {i}/9 it ({100 * i // 9}%), {4 * i}s" for i in (3, 6, 9)]
    seen.lines.clear()
    assert list(progress_mod.progress(range(9), "features", enabled=False)) == list(range(9))
    assert not seen.lines


def test_feature_extractor_draws_no_bar_off_a_terminal(tmp_path):
    from reidbox.api import FeatureExtractor
    from reidbox.config import load_config

    cfg = load_config(None, ["MODEL.BACKBONE.NAME", "resnet18", "INPUT.SIZE_TEST", "[32, 16]"])
    ex = FeatureExtractor(
        cfg, device="cpu", batch_size=2, progress_threshold=1, allow_untrained=True
    )
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        feats = ex([np.zeros((32, 16, 3), np.uint8)] * 5)
    assert feats.shape[0] == 5 and "\r" not in err.getvalue() + out.getvalue()


def test_command_line_is_what_a_user_retypes():
    assert command_line(["/venv/bin/reidbox", "test", "--config-file", "a b.yml"]).startswith(
        "reidbox test --config-file 'a b.yml'  (in "
    )
    assert command_line(["tools/test_net.py", "SEED", "1"]).startswith(
        "python tools/test_net.py SEED 1"
    )
    main = "/x/reidbox/commands/__main__.py"
    assert command_line([main, "train"]).startswith("python -m reidbox.commands train")
