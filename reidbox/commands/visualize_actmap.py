"""Activation maps of a trained model: where its last stage (and PTL's side network) responds,
overlaid on each image, one grid PNG.

``tools/visualize_actmap.py --config-file F MODEL.WEIGHTS model_final.pth --images DIR
[--num-images 8] --output-dir OUT [KEY VALUE ...]`` writes OUT/actmap.png.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from ..cli import add_allow_untrained, default_argument_parser, parse_args, require_weights
from ..config import load_config
from ..data.transforms import transforms_from_config
from ..gallery import list_images
from ..modeling import build_inference_model, require_retrieval_model
from ..utils.misc import check_output_dir, resolve_device
from ..visualization.actmap import draw_actmap_grid


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = default_argument_parser(__doc__)
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images (recursive)")
    p.add_argument("--num-images", type=int, default=8, help="rows: the first N images")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="where actmap.png goes")
    add_allow_untrained(p, "draw")
    args = parse_args(p, argv)
    cfg = load_config(args.config_file or None, args.opts)
    require_retrieval_model(cfg, "tools/visualize_actmap.py")
    require_weights(cfg, args, "activation maps need", "draw the maps of")
    if args.num_images < 1:
        raise ValueError(f"--num-images must be >= 1, got {args.num_images}")
    out = check_output_dir(args.output_dir, "--output-dir")
    paths = list_images(args.images)[: args.num_images]
    device = resolve_device(cfg.DEVICE)
    model = build_inference_model(cfg, cfg.MODEL.WEIGHTS or None, device)
    png = draw_actmap_grid(
        model,
        paths,
        transforms_from_config(cfg, is_train=False),
        os.path.join(out, "actmap.png"),
        tuple(cfg.INPUT.SIZE_TEST),
        device,
    )
    print(f"wrote {png} ({len(paths)} images)")
    return 0
