#!/usr/bin/env python
"""Paired comparison of variants over seeds: ``reidbox.commands.compare`` (``--help``)."""

from reidbox.cli import run_main
from reidbox.commands.compare import main

if __name__ == "__main__":
    run_main(main)
