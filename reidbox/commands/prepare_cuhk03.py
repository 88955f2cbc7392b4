"""Convert CUHK03 (cuhk-03.mat + protocol files) into a Market-style folder.

    python tools/prepare_cuhk03.py --root datasets --variant labeled --protocol new

writes <root>/cuhk03-market/<variant>_<protocol>/{bounding_box_train,query,bounding_box_test},
which the registered dataset ``cuhk03_market`` (or any Market-style tool) reads.
"""

from __future__ import annotations

import logging

from reidbox.cli import add_output_dir, argument_parser, parse_args
from reidbox.data.datasets.cuhk03 import prepare_market_style


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument("--root", default="datasets", help="the datasets folder (holds cuhk03/)")
    p.add_argument("--variant", default="labeled", choices=["labeled", "detected"])
    p.add_argument("--protocol", default="new", choices=["new", "classic"])
    p.add_argument("--split", type=int, default=0, help="classic protocol split 0..19")
    add_output_dir(p, "output folder (default under --root)", old=["--out"])
    p.add_argument("--copy", action="store_true", help="copy files instead of hard-linking")
    args = parse_args(p, argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out, counts = prepare_market_style(
        args.root, args.variant, args.protocol, args.split, args.output_dir, link=not args.copy
    )
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
