"""Gather runs into one markdown table: ``tools/collect_results.py output/... [--out F.md]``.

Every ``metrics.json`` under the given folders gives one row per test set: model, datasets
(train -> test), PTL state mode, mAP, CMC-1/5/10, mINP and parameter count.
"""

from reidbox.cli import argument_parser, parse_args
from reidbox.utils.misc import check_output_file
from reidbox.visualization.results import collect_results, format_results

COMMAND = "collect"  # reidbox collect


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument("paths", nargs="+", help="run folders or metrics.json files")
    p.add_argument("--out", default="", help="also write the table to this file")
    args = parse_args(p, argv)
    if args.out:
        check_output_file(args.out)
    rows = collect_results(args.paths)
    if not rows:
        raise FileNotFoundError(f"no metrics.json under {', '.join(args.paths)}")
    table = format_results(rows)
    print(table, end="")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
    return 0
