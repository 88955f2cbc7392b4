#!/usr/bin/env python
"""Train: ``tools/train_net.py --config-file F [--resume | --resume-force | --overwrite]

The body is reidbox/commands/train_net.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.train_net import main

if __name__ == "__main__":
    run_main(main)
