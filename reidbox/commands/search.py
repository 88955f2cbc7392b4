"""Search a folder of person crops: build a gallery index once, add to it, query it many times.

``tools/search.py build --config-file CFG MODEL.WEIGHTS W --images DIR --index INDEX``
``tools/search.py add --index INDEX --images DIR2``
``tools/search.py query --index INDEX --images QDIR --topk K --output-dir DIR
[--rerank] [--aqe N] [--approx ivf_flat|ivf_pq|hnsw] [--no-draw]``

``query`` writes DIR/results.csv (query, rank, gallery, distance) and DIR/ranks/*.png. Queries
are embedded with the index's own config and weights; ``--config-file`` / ``KEY VALUE`` on add
and query (e.g. ``MODEL.WEIGHTS`` where the weights moved) are checked against the index.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from ..cli import default_argument_parser, parse_args
from ..config import load_config
from ..errors import UsageError
from ..gallery import GalleryIndex, GalleryIndexError
from ..retrieval.approx import APPROX_KINDS
from ..utils.misc import check_output_dir

VERBS = ("build", "add", "query")


def _parser(verb: str):
    p = default_argument_parser(__doc__)
    p.prog = f"{p.prog} {verb}"
    p.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images (recursive)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    if verb == "query":
        p.add_argument("--topk", type=int, default=10, help="gallery images per query")
        p.add_argument("--output-dir", required=True, metavar="DIR", help="where results go")
        p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
        p.add_argument("--aqe", type=int, default=0, metavar="N", help="average query expansion")
        p.add_argument("--approx", choices=APPROX_KINDS, default=None, help="approximate index")
        p.add_argument("--no-draw", action="store_true", help="results.csv only, no images")
    return p


def _config(args, index: GalleryIndex):
    """The index's config, or the one the command line names (checked by the index)."""
    if not args.config_file and not args.opts:
        return None
    return load_config(args.config_file or index.config_path, args.opts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):  # the verbs and their flags, as the docstring says
        parse_args(default_argument_parser(__doc__), ["--help"])  # prints, exits 0
    if not argv or argv[0] not in VERBS:
        got = f" (got {argv[0]!r})" if argv else ""
        raise UsageError(
            f"tools/search.py needs a verb first: {', '.join(VERBS)}{got}; e.g. "
            "tools/search.py query --index INDEX --images QDIR --topk 10 --output-dir OUT"
        )
    verb = argv[0]
    p = _parser(verb)
    args = parse_args(p, argv[1:])
    if verb == "build":
        cfg = load_config(args.config_file or None, args.opts)
        index = GalleryIndex.build(cfg, args.images, args.index, None, cfg.DEVICE, args.batch_size)
        print(f"indexed {len(index.paths)} images into {args.index}")
        return 0
    index = GalleryIndex.load(args.index)
    cfg = _config(args, index)
    device = cfg.DEVICE if cfg is not None else index.config().DEVICE
    if verb == "add":
        n = index.add(args.images, cfg, device, args.batch_size)
        print(f"added {n} images to {args.index} ({len(index.paths)} in all)")
        return 0
    out = check_output_dir(args.output_dir, "--output-dir")
    csv_path = os.path.join(out, "results.csv")
    if os.path.exists(csv_path):
        raise GalleryIndexError(
            f"--output-dir {out} already holds results.csv; choose another folder or move it"
        )
    result = index.query(
        args.images, args.topk, args.rerank, args.aqe, args.approx, cfg, device, args.batch_size
    )
    size = tuple(index.meta["fingerprint"]["preprocessing"]["input_size_hw"])
    result.save(out, draw=not args.no_draw, size=size)
    print(
        f"searched {len(result.queries)} queries in {len(result.gallery)} images "
        f"({result.method}); wrote {csv_path}"
        + ("" if args.no_draw else f" and {os.path.join(out, 'ranks')}")
    )
    return 0
