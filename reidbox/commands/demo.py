"""The demo behind ``make demo``: ResNet-18 with and without PTL's side network, under the
BN-neck head and under the paper's head, paired over seeds on the embedded synthetic dataset.

``tools/demo.py --output-dir output/demo [--transfer] [--seeds S ...] [KEY VALUE ...]``

``--transfer`` (``make demo-transfer``): pre-train on synthetic_a, fine-tune the same four
variants on synthetic_b, once per ``--seeds`` value. Both report per-seed values, mean ± std
and the paired differences with their 95% t-intervals (``tools/compare.py`` does it for any
config).
"""

from reidbox.engine.demo import run_demo, run_transfer_demo
from reidbox.cli import argument_parser, parse_args


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument(
        "--output-dir",
        default=None,
        metavar="DIR",
        help="default output/demo (output/demo/transfer with --transfer)",
    )
    p.add_argument(
        "--transfer",
        action="store_true",
        help="the transfer demo: pre-train, then fine-tune the four variants from it",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="seeds (default 0 1; with --transfer 0 1 2)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("opts", nargs="*", help="config overrides for every run")
    args = parse_args(p, argv)
    if args.transfer:
        run_transfer_demo(
            args.output_dir or "output/demo/transfer",
            seeds=args.seeds or [0, 1, 2],
            opts=args.opts,
            progress=not args.no_progress,
        )
    else:
        run_demo(
            args.output_dir or "output/demo",
            seeds=args.seeds or [0, 1],
            opts=args.opts,
            progress=not args.no_progress,
        )
    return 0
