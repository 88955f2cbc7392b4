#!/usr/bin/env python
"""Model summary: ``tools/model_info.py --config-file F [--num-classes N] [KEY VALUE ...]``.

The body is reidbox/commands/model_info.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.model_info import main

if __name__ == "__main__":
    run_main(main)
