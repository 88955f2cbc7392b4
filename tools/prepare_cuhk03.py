"""Convert CUHK03 (cuhk-03.mat + protocol files) into a Market-style folder.

The body is reidbox/commands/prepare_cuhk03.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.prepare_cuhk03 import main

if __name__ == "__main__":
    run_main(main)
