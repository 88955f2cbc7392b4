#!/usr/bin/env python
"""Test a model: ``tools/test_net.py --config-file F MODEL.WEIGHTS path [KEY VALUE ...]``.

The body is reidbox/commands/test_net.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.test_net import main

if __name__ == "__main__":
    run_main(main)
