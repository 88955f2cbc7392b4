#!/usr/bin/env python
"""Activation maps: ``tools/visualize_actmap.py`` (see reidbox/commands/visualize_actmap.py)."""

from reidbox.cli import run_main
from reidbox.commands.visualize_actmap import main

if __name__ == "__main__":
    run_main(main)
