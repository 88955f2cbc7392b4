"""Loss surfaces of trained classification runs, side by side (journal Fig. 3; Li et al. 2018).

``tools/loss_surface.py --runs RUN_A RUN_B --labels "A" "B" --output-dir DIR [--dim 2]
[--range -1 1] [--points 21] [--num-samples 5000] [--replot] [KEY VALUE ...]``

Each run folder needs ``config.yaml`` and ``model_final.pth``. Writes ``DIR/<label>_<dim>d.npz``
(grid, loss, accuracy) and ``DIR/loss_surface_<dim>d.png``; ``--replot`` redraws from the
``.npz`` files without recomputing. Trailing ``KEY VALUE`` pairs override every run's config
(e.g. ``DATASETS.ROOT /data``). Method and choices: docs/classification.md.
"""

import os

from reidbox.cli import add_output_dir, argument_parser, parse_args
from reidbox.visualization.loss_surface import loss_surfaces


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument("--runs", nargs="+", required=True, help="run folders (OUTPUT_DIR of training)")
    p.add_argument("--labels", nargs="+", help="one label per run (default: folder names)")
    add_output_dir(p, "folder for the .npz files and the figure", old=["--out"], required=True)
    p.add_argument("--dim", type=int, default=2, choices=(1, 2), help="1-D curve or 2-D contour")
    p.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=(-1.0, 1.0),
        metavar=("MIN", "MAX"),
        help="step range along each direction",
    )
    p.add_argument("--points", type=int, default=21, help="grid points per direction")
    p.add_argument("--num-samples", type=int, default=5000, help="training images used")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="directions and subset seed")
    p.add_argument("--device", default="cpu", help='"cpu", "cuda", "auto", ...')
    p.add_argument(
        "--vmax",
        type=float,
        default=10.0,
        help="top of the plotted loss range (Li et al.: 10); 0 draws everything",
    )
    p.add_argument("--replot", action="store_true", help="redraw from the saved .npz files")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("opts", nargs="*", help="config overrides for every run")
    args = parse_args(p, argv)
    labels = args.labels or [os.path.basename(os.path.normpath(r)) for r in args.runs]
    out = loss_surfaces(
        args.runs,
        labels,
        args.output_dir,
        args.dim,
        tuple(args.range),
        args.points,
        args.num_samples,
        args.batch_size,
        args.seed,
        args.device,
        args.opts,
        args.replot,
        args.vmax or None,
        progress=not args.no_progress,
    )
    for s in out["surfaces"]:
        print(
            f"{s.label}: loss at the trained weights {s.center_loss():.4f}, "
            f"min {s.loss.min():.4f}, max {s.loss.max():.4f}"
        )
    print(f"figure: {out['figure']}")
    return 0
