"""Model summary: ``tools/model_info.py --config-file F [--num-classes N] [KEY VALUE ...]``.

Prints parameter counts (whole model, test-time part) in millions and the stage specs. Reads
no weight file: ImageNet weights, ``MODEL.WEIGHTS`` and an STD teacher's weights are not needed.
``--list`` prints the backbone zoo instead: every backbone with its size, multiply-adds at
256x128, stages and the ImageNet file it looks for.
"""

import json

from reidbox.cli import default_argument_parser, parse_args

from reidbox.config import load_config
from reidbox.data.catalog import num_train_identities
from reidbox.modeling.summary import build_for_summary, format_summary, model_summary

COMMAND = "info"  # reidbox info


def main(argv=None) -> int:
    p = default_argument_parser(__doc__)
    p.add_argument(
        "--num-classes",
        type=int,
        default=0,
        help="training identities (default: published count of DATASETS.TRAIN)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--list", action="store_true", help="print every backbone (the zoo) and exit")
    args = parse_args(p, argv)
    if args.list:
        from dataclasses import asdict

        from reidbox.modeling.zoo import backbone_info, backbone_names, format_zoo

        rows = [backbone_info(n) for n in backbone_names()]
        print(json.dumps([asdict(r) for r in rows], indent=1) if args.json else format_zoo(rows))
        return 0
    cfg = load_config(args.config_file or None, args.opts)
    num_classes = args.num_classes or num_train_identities(cfg)
    model, notes = build_for_summary(cfg, num_classes)
    summary = model_summary(model)
    summary["num_classes"] = num_classes
    summary["notes"] = notes
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0
