"""Command-line plumbing: common arguments and one clear error line instead of a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional, Sequence


def default_argument_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config-file", default="", metavar="FILE", help="yml config file")
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="config overrides as KEY VALUE pairs, e.g. SOLVER.MAX_EPOCHS 10")
    return p


def user_error_types() -> tuple:
    """Errors caused by input (config, data, files), reported as one line."""
    from ..config import ConfigError
    from ..engine.trainer import NonFiniteLossError
    from ..data import DatasetError, ImageReadError
    from ..modeling.backbones import WeightsNotFoundError
    from .checkpoint import CheckpointError

    return (ConfigError, DatasetError, ImageReadError, WeightsNotFoundError, CheckpointError,
            NonFiniteLossError, OSError, KeyError, ValueError)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.filename:
        from .misc import describe_os_error

        return describe_os_error(e)
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = str(msg)
    if "Original Traceback" in msg:  # re-raised from a DataLoader worker: keep the cause line
        msg = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
    return msg


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv=None) -> None:
    """Run ``main``; input errors print ``error: ...`` on stderr and exit with status 2."""
    try:
        code = main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except user_error_types() as e:
        logging.getLogger("reidbox").debug("error", exc_info=True)
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
