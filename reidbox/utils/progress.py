"""Progress that suits where the output goes: a tqdm bar on a terminal, and elsewhere (a log
file, a pipe, a notebook's captured stream) a plain log line every ``period`` seconds, never
carriage-return debris."""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
logger = logging.getLogger("reidbox")


def stderr_is_terminal() -> bool:
    """Progress bars only make sense on a terminal (a log file gets carriage-return debris)."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress(
    iterable: Iterable[T],
    desc: str,
    enabled: bool = True,
    total: Optional[int] = None,
    period: float = 10.0,
    unit: str = "it",
) -> Iterator[T]:
    """Iterate ``iterable`` showing progress when ``enabled``: a tqdm bar when stderr is a
    terminal, else an INFO line on the ``reidbox`` log every ``period`` seconds
    (``desc: 40/120 batches (33%), 12s``), so a long step is not silent in a log file and a
    short one adds no lines."""
    if not enabled:
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if stderr_is_terminal():
        from tqdm import tqdm

        yield from tqdm(
            iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, unit=unit
        )
        return
    of = f"/{total}" if total else ""
    start = last = time.monotonic()
    for i, item in enumerate(iterable, start=1):
        yield item
        now = time.monotonic()
        if now - last >= period:
            last = now
            pct = f" ({100 * i // total}%)" if total else ""
            logger.info("%s: %d%s %s%s, %.0fs", desc, i, of, unit, pct, now - start)
