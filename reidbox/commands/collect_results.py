"""Gather runs into one markdown table: ``tools/collect_results.py output/... [--output-dir DIR]``.

Every ``metrics.json`` under the given folders gives one row per test set: model, datasets
(train -> test), PTL state mode, mAP, CMC-1/5/10, mINP and parameter count.
"""

import argparse
import os

from reidbox.cli import add_output_dir, argument_parser, parse_args
from reidbox.utils.misc import check_output_dir, check_output_file
from reidbox.visualization.results import collect_results, format_results

COMMAND = "collect"  # reidbox collect


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument("paths", nargs="+", help="run folders or metrics.json files")
    add_output_dir(p, "also write the table to DIR/results.md")
    p.add_argument("--out", default="", help=argparse.SUPPRESS)  # a file: the old spelling
    args = parse_args(p, argv)
    if args.output_dir:
        check_output_dir(args.output_dir, "--output-dir")
        args.out = os.path.join(args.output_dir, "results.md")
    if args.out:
        check_output_file(args.out)
    rows = collect_results(args.paths)
    if not rows:
        raise FileNotFoundError(f"no metrics.json under {', '.join(args.paths)}")
    table = format_results(rows)
    print(table, end="")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
        print(f"wrote {args.out}")
    return 0
