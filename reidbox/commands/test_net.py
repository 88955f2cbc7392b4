"""Test a model: ``tools/test_net.py --config-file F MODEL.WEIGHTS path [KEY VALUE ...]``."""

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.visualization.ranks import ORDERS
from reidbox.cli import add_output_dir, default_argument_parser, parse_args

COMMAND = "test"  # reidbox test


def main(argv=None) -> int:
    p = default_argument_parser(__doc__)
    add_output_dir(
        p,
        "the run folder; results go to DIR/eval/<settings>/ (the config's OUTPUT_DIR)",
        config_key=True,
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--vis-ranks",
        type=int,
        default=0,
        metavar="K",
        help="also draw the top-K gallery images of --vis-queries queries (chosen by "
        "--vis-order) into DIR/eval/<settings>/ranks/<test set>/",
    )
    p.add_argument(
        "--vis-queries", type=int, default=10, metavar="N", help="queries drawn per test set"
    )
    p.add_argument(
        "--vis-order",
        choices=ORDERS,
        default="random",
        help="which queries: seeded random ones, the worst (lowest AP first: where the model "
        "fails, as fast-reid's visualiser) or the best",
    )
    p.add_argument(
        "--eval-only",
        action="store_true",
        help="accepted for fast-reid habits: test_net only evaluates anyway",
    )
    args = parse_args(
        p,
        argv,
        hints={
            "--resume": "test_net only evaluates; to continue training run "
            "tools/train_net.py --config-file F --resume"
        },
    )
    cfg = load_config(args.config_file or None, args.opts)
    runner.test(
        cfg,
        progress=not args.no_progress,
        vis_ranks=args.vis_ranks,
        vis_queries=args.vis_queries,
        vis_order=args.vis_order,
    )
    return 0
