"""Logging to the console and to ``OUTPUT_DIR/log.txt``."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from typing import Optional


def setup_logger(
    output_dir: Optional[str] = None, name: str = "reidbox", level: int = logging.INFO
) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(output_dir, "log.txt"))
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


def command_line(argv=None) -> str:
    """The command that started this process, as a user would retype it (``reidbox test ...``,
    ``python tools/test_net.py ...``, ``python -m pytest ...``), and the folder it ran in."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0]:
        return f"python (interactive) in {os.getcwd()}"
    prog, rest = argv[0], argv[1:]
    name = os.path.basename(prog)
    if name == "__main__.py":  # python -m package
        head = ["python", "-m", os.path.basename(os.path.dirname(prog))]
        if os.path.basename(os.path.dirname(os.path.dirname(prog))) == "reidbox":
            head[-1] = "reidbox." + head[-1]
    elif name.endswith(".py"):
        rel = os.path.relpath(prog)
        head = ["python", prog if rel.startswith("..") else rel]
    else:
        head = [name]  # a console script: reidbox, torchrun, pytest
    return f"{shlex.join(head + rest)}  (in {os.getcwd()})"
