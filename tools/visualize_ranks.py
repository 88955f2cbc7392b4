#!/usr/bin/env python
"""Rank-list images of a trained model: the query, then its top-k gallery images with green

The body is reidbox/commands/visualize_ranks.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.visualize_ranks import main

if __name__ == "__main__":
    run_main(main)
