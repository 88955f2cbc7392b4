"""Gather runs into one markdown table: ``tools/collect_results.py output/... [--output-dir DIR]``.

Every ``metrics.json`` under the given folders gives one row per test set: model, datasets
(train -> test), PTL state mode, evaluation settings, mAP, CMC-1/5/10, mINP, parameter count,
epochs and date. Rows of one test set measured on different data (another size of a generated
set) are labelled and noted. ``--output-dir`` also draws each test set's CMC curves of all
runs on one figure.
"""

import argparse
import os

from reidbox.cli import add_output_dir, argument_parser, parse_args
from reidbox.errors import MissingInputError
from reidbox.utils.misc import check_output_dir, check_output_file
from reidbox.visualization.results import collect_results, format_results, plot_results_cmc

COMMAND = "collect"  # reidbox collect


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument("paths", nargs="+", help="run folders or metrics.json files")
    add_output_dir(
        p,
        "also write the table to DIR/results.md and every test set's CMC curves, one line per "
        "run, to DIR/cmc_<test set>.png",
    )
    p.add_argument("--out", default="", help=argparse.SUPPRESS)  # a file: the old spelling
    args = parse_args(p, argv)
    if args.output_dir:
        check_output_dir(args.output_dir, "--output-dir")
        args.out = os.path.join(args.output_dir, "results.md")
    if args.out:
        check_output_file(args.out)
    rows = collect_results(args.paths)
    if not rows:
        raise MissingInputError(f"no metrics.json under {', '.join(args.paths)}")
    table = format_results(rows)
    print(table, end="")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
        print(f"wrote {args.out}")
    if args.output_dir:
        for path in plot_results_cmc(rows, args.output_dir):
            print(f"wrote {path}")
    return 0
