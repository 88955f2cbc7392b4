#!/usr/bin/env python
"""The demo behind ``make demo``: ResNet-18 with and without PTL's side network, under the
BN-neck head and under the paper's head, paired over seeds on the embedded synthetic dataset.

The body is reidbox/commands/demo.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.demo import main

if __name__ == "__main__":
    run_main(main)
