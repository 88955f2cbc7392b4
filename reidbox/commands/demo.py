"""The demo behind ``make demo``: PTL and plain models on the embedded synthetic dataset.

``tools/demo.py --output-dir output/demo [--transfer] [KEY VALUE ...]``

``--transfer`` (``make demo-transfer``): pre-train on synthetic_a, fine-tune on synthetic_b
with and without PTL, once per ``--seeds`` value, and report mean +- std.
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
        help="the transfer demo: pre-train, then fine-tune plain and PTL twins",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="fine-tuning seeds of the transfer demo",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("opts", nargs="*", help="config overrides for every run")
    args = parse_args(p, argv)
    if args.transfer:
        run_transfer_demo(
            args.output_dir or "output/demo/transfer",
            seeds=args.seeds,
            opts=args.opts,
            progress=not args.no_progress,
        )
    else:
        run_demo(args.output_dir or "output/demo", opts=args.opts, progress=not args.no_progress)
    return 0
