"""Export a trained model to ONNX or TorchScript: ``tools/export.py --config-file F
MODEL.WEIGHTS w --format onnx|torchscript --output-dir DIR`` (flags before or after the
``KEY VALUE`` overrides)."""

import argparse
import os

from reidbox.config import load_config
from reidbox.modeling import build_inference_model, require_retrieval_model
from reidbox.evaluation import FeatureModel
from reidbox.export import export_model
from reidbox.cli import (
    add_allow_untrained,
    add_output_dir,
    default_argument_parser,
    parse_args,
    require_weights,
)
from reidbox.data.transforms import preprocessing
from reidbox.utils.misc import check_output_file


def main(argv=None) -> int:
    p = default_argument_parser(__doc__)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    add_output_dir(
        p, "writes DIR/model.onnx or DIR/model.pt (the config's OUTPUT_DIR)", config_key=True
    )
    p.add_argument("--output", default="", help=argparse.SUPPRESS)  # a file: the old spelling
    add_allow_untrained(p, "export")
    args = parse_args(p, argv)
    cfg = load_config(args.config_file or None, args.opts)
    require_retrieval_model(cfg, "tools/export.py")
    require_weights(cfg, args, "export needs", "export")
    ext = "onnx" if args.format == "onnx" else "pt"
    out = check_output_file(args.output or os.path.join(cfg.OUTPUT_DIR, f"model.{ext}"), "--output")
    model = build_inference_model(cfg, cfg.MODEL.WEIGHTS or None, device="cpu")
    features = FeatureModel.from_config(model, cfg)  # TEST.FLIP_AUG / NORM_FEAT, as test_net
    export_model(
        features, args.format, out, tuple(cfg.INPUT.SIZE_TEST), preprocessing=preprocessing(cfg)
    )
    print(f"wrote {out} (baked in: {features.describe()})")
    return 0
