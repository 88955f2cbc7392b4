#!/usr/bin/env python
"""Model summary: ``tools/model_info.py --config-file F [--num-classes N] [KEY VALUE ...]``.

Prints parameter counts (whole model, test-time part) in millions and the stage specs.
"""

import argparse
import json

from reidbox.utils.cli import run_main

from reidbox.config import load_config
from reidbox.modeling import build_model
from reidbox.modeling.summary import format_summary, model_summary, num_train_identities


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config-file", default="", metavar="FILE", help="yml config file")
    p.add_argument("--num-classes", type=int, default=0,
                   help="training identities (default: published count of DATASETS.TRAIN)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = p.parse_args(argv)
    cfg = load_config(args.config_file or None, args.opts)
    num_classes = args.num_classes or num_train_identities(cfg)
    summary = model_summary(build_model(cfg, num_classes=num_classes))
    summary["num_classes"] = num_classes
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    run_main(main)
