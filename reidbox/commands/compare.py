"""Paired comparison: ``tools/compare.py --config-file CFG [--variant "NAME: [FILE.yml] [KEY
VALUE ...]"]... --seeds 0 1 2 --output-dir DIR [KEY VALUE ...]``.

Every variant trains once per seed from the same starting weights (the seed's initial state of
its plain twin, or of its ``MODEL.WEIGHTS`` without their classifier) with the same data order;
the table gives each seed, mean ± sample std, and per pair the paired difference with its 95%
t-interval and win count (``results.md``, ``results.json``, ``compare.png``). Without
``--variant`` it measures the side network on top of the config's model: ``plain:
MODEL.PTL.ENABLED False`` against ``+PTL: MODEL.PTL.ENABLED True``. Finished runs are reused and
unfinished ones resumed when the same command runs again.

Example (the demo's model, with and without PTL, 3 seeds)::

    python tools/compare.py --config-file configs/demo/baseline.yml --seeds 0 1 2 \\
        --output-dir output/compare/demo_ptl
"""

from __future__ import annotations

from ..cli import add_output_dir, default_argument_parser, parse_args
from ..engine.compare import DEFAULT_VARIANTS, Variant, run_compare


def main(argv=None) -> int:
    p = default_argument_parser(__doc__)
    p.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar='"NAME: [FILE.yml] [KEY VALUE ...]"',
        help="a variant (repeat; default: plain and +PTL twins of --config-file)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default 0 1 2")
    p.add_argument(
        "--pair",
        nargs=2,
        action="append",
        metavar=("A", "B"),
        help="report A - B (repeat; default: every variant against the first)",
    )
    p.add_argument(
        "--metrics", nargs="+", default=["mAP", "rank1"], help="metrics.json keys to compare"
    )
    add_output_dir(p, "runs go to DIR/<variant>/seed<s>/, the table to DIR", required=True)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parse_args(p, argv)
    variants = [Variant.parse(v) for v in (args.variant or DEFAULT_VARIANTS)]
    run_compare(
        variants,
        args.seeds,
        args.output_dir,
        base_config=args.config_file,
        opts=args.opts,
        pairs=[tuple(x) for x in args.pair] if args.pair else None,
        metrics=args.metrics,
        progress=not args.no_progress,
    )
    return 0
