#!/usr/bin/env python
"""Gather runs into one markdown table: ``tools/collect_results.py output/... [--out F.md]``.

The body is reidbox/commands/collect_results.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.collect_results import main

if __name__ == "__main__":
    run_main(main)
