"""Rank-list images of a trained model: the query, then its top-k gallery images with green
(true match) / red (false match) borders and the distance under each, one PNG per query.

``tools/visualize_ranks.py --config-file F MODEL.WEIGHTS model_final.pth [--topk 10]
[--num-queries 20 [--order worst] | --queries 0 5 17] [--output-dir DIR] [KEY VALUE ...]``
"""

import argparse

from reidbox.config import load_config
from reidbox.engine.ranks import rank_images
from reidbox.visualization.ranks import ORDERS
from reidbox.cli import add_output_dir, default_argument_parser, parse_args
from reidbox.utils.misc import check_output_dir

COMMAND = "ranks"  # reidbox ranks


def main(argv=None) -> int:
    p = default_argument_parser(__doc__)
    p.add_argument("--topk", type=int, default=10, help="gallery images per query")
    p.add_argument("--num-queries", type=int, default=10, help="queries drawn per test set")
    p.add_argument(
        "--order",
        choices=ORDERS,
        default="random",
        help="which queries: seeded random ones, the worst (lowest AP first: where the model "
        "fails) or the best",
    )
    p.add_argument(
        "--queries",
        type=int,
        nargs="+",
        default=None,
        metavar="I",
        help="query indices to draw (the query_index column of ranklist_<set>.csv)",
    )
    add_output_dir(
        p,
        "the run folder: images go to DIR/eval/<settings>/ranks/<test set>/, beside "
        "test_net's results for the same settings (the config's OUTPUT_DIR)",
        config_key=True,
    )
    p.add_argument("--out", default="", help=argparse.SUPPRESS)  # the old spelling: the folder
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parse_args(p, argv)
    cfg = load_config(args.config_file or None, args.opts)
    if args.out:
        check_output_dir(args.out)
    paths = rank_images(
        cfg,
        cfg.MODEL.WEIGHTS or None,
        args.out or None,
        args.topk,
        args.num_queries,
        args.queries,
        not args.no_progress,
        order=args.order,
    )
    print(f"wrote {len(paths)} rank lists" + (f", e.g. {paths[0]}" if paths else ""))
    return 0
