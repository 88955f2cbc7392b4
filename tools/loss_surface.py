#!/usr/bin/env python
"""Loss surfaces of trained classification runs, side by side (journal Fig. 3; Li et al. 2018).

The body is reidbox/commands/loss_surface.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.loss_surface import main

if __name__ == "__main__":
    run_main(main)
