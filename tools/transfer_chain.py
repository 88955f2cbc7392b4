#!/usr/bin/env python
"""Fine-tune one model through datasets in order, evaluating on every earlier test set.

``tools/transfer_chain.py Duke Market MSMT17 [--config-file F] [KEY VALUE ...]``, or with the
chain declared in the config: ``tools/transfer_chain.py --config-file configs/chains/X.yml``.
Rerunning the same command resumes where it stopped; finished steps are never retrained.
See docs/transfer.md.
"""

import argparse

from reidbox.engine.chain import run_chain, split_steps_and_opts
from reidbox.utils.cli import run_main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="", metavar="FILE", help="yml config for every step")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("tokens", nargs="*",
                   help="dataset aliases (Duke, Market, MSMT17, CUHK03, Market-Duke, any "
                        "registered name; 'X+STD' distils), then KEY VALUE overrides")
    args = p.parse_intermixed_args(argv)  # options may follow the dataset names
    steps, opts = split_steps_and_opts(args.tokens)
    rows = run_chain(args.config_file or None, steps or None, opts,
                     progress=not args.no_progress)
    print(f"{len(rows)} steps done; see summary.md in the chain's OUTPUT_DIR")
    return 0


if __name__ == "__main__":
    run_main(main)
