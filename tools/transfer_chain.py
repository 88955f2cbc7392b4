#!/usr/bin/env python
"""Fine-tune one model through datasets in order, evaluating on every earlier test set.

The body is reidbox/commands/transfer_chain.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.transfer_chain import main

if __name__ == "__main__":
    run_main(main)
