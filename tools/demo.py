#!/usr/bin/env python
"""The demo behind ``make demo``: PTL and plain models on the embedded synthetic dataset."""


from reidbox.engine.demo import run_demo
from reidbox.utils.cli import argument_parser, parse_args, run_main


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument("--output-dir", default="output/demo")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("opts", nargs="*", help="config overrides for every run")
    args = parse_args(p, argv)
    run_demo(args.output_dir, opts=args.opts, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    run_main(main)
