#!/usr/bin/env python
"""Gallery search: ``tools/search.py build | add | query`` (see reidbox/commands/search.py)."""

from reidbox.cli import run_main
from reidbox.commands.search import main

if __name__ == "__main__":
    run_main(main)
