"""Print images / identities / cameras per split of registered datasets.

The body is reidbox/commands/dataset_stats.py, which the ``reidbox`` console command runs too.
"""

from reidbox.cli import run_main
from reidbox.commands.dataset_stats import main

if __name__ == "__main__":
    run_main(main)
