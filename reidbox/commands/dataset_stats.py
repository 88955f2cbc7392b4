"""Print images / identities / cameras per split of registered datasets.

python tools/dataset_stats.py market1501 dukemtmcreid --root datasets
python tools/dataset_stats.py cuhk03 --set variant=detected --set protocol=classic
"""

from __future__ import annotations

import ast
import logging

from reidbox.cli import argument_parser, parse_args
from reidbox.data import build_dataset
from reidbox.data.stats import format_stats
from reidbox.registry import DATASETS

COMMAND = "stats"  # reidbox stats


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument("names", nargs="+", help=f"registered datasets: {', '.join(DATASETS.names())}")
    p.add_argument("--root", default="datasets", help="the datasets folder")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="parser option, e.g. variant=detected, include_val=False",
    )
    args = parse_args(p, argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    kwargs = {}
    for item in args.set:
        if "=" not in item:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        kwargs[key] = _value(value)
    for name in args.names:
        # a generated dataset is described as it lies on disk, not regenerated at default size
        existing = (
            getattr(DATASETS.get(name), "existing_options", None) if name in DATASETS else None
        )
        options = {**(existing(args.root) if existing else {}), **kwargs}
        print(format_stats(build_dataset(name, root=args.root, **options)) + "\n")
    return 0
