"""Other toolboxes' config keys and what reidbox calls them, for "did you mean" hints.

Keys are upper-cased full names (torchreid's lower-case ``train.max_epoch`` is looked up as
``TRAIN.MAX_EPOCH``); values are the reidbox key and, where the meaning differs, a note.
"""

from __future__ import annotations

import difflib
from typing import Dict, Iterable, List, Tuple

from yacs.config import CfgNode

# fast-reid (FR), reid-strong-baseline (SB) and torchreid (TR) spellings.
ALIASES: Dict[str, Tuple[str, str]] = {
    # datasets
    "DATASETS.NAMES": ("DATASETS.TRAIN", "a list of registered names; test sets: DATASETS.TEST"),
    "DATASETS.TESTS": ("DATASETS.TEST", ""),
    "DATASETS.ROOT_DIR": ("DATASETS.ROOT", ""),
    "DATA.SOURCES": ("DATASETS.TRAIN", ""),
    "DATA.TARGETS": ("DATASETS.TEST", ""),
    "DATA.ROOT": ("DATASETS.ROOT", ""),
    "DATA.SAVE_DIR": ("OUTPUT_DIR", ""),
    "DATA.WORKERS": ("DATALOADER.NUM_WORKERS", ""),
    "DATA.HEIGHT": ("INPUT.SIZE_TRAIN", "[height, width]; test size: INPUT.SIZE_TEST"),
    "DATA.WIDTH": ("INPUT.SIZE_TRAIN", "[height, width]; test size: INPUT.SIZE_TEST"),
    # data loading
    "DATALOADER.NUM_INSTANCE": ("DATALOADER.NUM_INSTANCES", ""),
    "DATALOADER.SAMPLER_TRAIN": ("DATALOADER.SAMPLER", '"pk" or "random"'),
    "SAMPLER.NUM_INSTANCES": ("DATALOADER.NUM_INSTANCES", ""),
    "SAMPLER.TRAIN_SAMPLER": ("DATALOADER.SAMPLER", '"pk" or "random"'),
    # input
    "INPUT.FLIP.ENABLED": ("INPUT.FLIP_PROB", "a probability; 0 disables"),
    "INPUT.FLIP.PROB": ("INPUT.FLIP_PROB", ""),
    "INPUT.PROB": ("INPUT.FLIP_PROB", ""),
    "INPUT.PADDING.ENABLED": ("INPUT.PADDING", "pixels; 0 disables"),
    "INPUT.PADDING.SIZE": ("INPUT.PADDING", ""),
    "INPUT.REA.ENABLED": ("INPUT.RANDOM_ERASING.ENABLED", ""),
    "INPUT.REA.PROB": ("INPUT.RANDOM_ERASING.PROB", ""),
    "INPUT.RE_PROB": ("INPUT.RANDOM_ERASING.PROB", ""),
    "MODEL.PIXEL_MEAN": ("INPUT.PIXEL_MEAN", "in [0, 1] units, not 0..255"),
    "MODEL.PIXEL_STD": ("INPUT.PIXEL_STD", "in [0, 1] units, not 0..255"),
    # model
    "MODEL.DEVICE": ("DEVICE", ""),
    "MODEL.DEVICE_ID": ("DEVICE", '"cuda:0", "cpu" or "auto"'),
    "MODEL.NAME": ("MODEL.BACKBONE.NAME", ""),
    "MODEL.LAST_STRIDE": ("MODEL.BACKBONE.LAST_STRIDE", ""),
    "MODEL.PRETRAIN_PATH": (
        "MODEL.BACKBONE.WEIGHTS",
        "the ImageNet file; a whole trained reidbox model is MODEL.WEIGHTS",
    ),
    "MODEL.PRETRAIN_CHOICE": ("MODEL.BACKBONE.PRETRAINED", "True for ImageNet weights"),
    "MODEL.PRETRAINED": ("MODEL.BACKBONE.PRETRAINED", ""),
    "MODEL.LOAD_WEIGHTS": ("MODEL.WEIGHTS", ""),
    "MODEL.BACKBONE.PRETRAIN": ("MODEL.BACKBONE.PRETRAINED", ""),
    "MODEL.BACKBONE.PRETRAIN_PATH": ("MODEL.BACKBONE.WEIGHTS", ""),
    "MODEL.BACKBONE.DEPTH": ("MODEL.BACKBONE.NAME", 'the whole name, e.g. "resnet50"'),
    "MODEL.BACKBONE.FEAT_DIM": ("MODEL.HEADS.EMBED_DIM", "0 keeps the backbone's channels"),
    # reidbox's own earlier names: the paper head's widths belong to the head, not to PTL
    "MODEL.PTL.FEAT_DIM": ("MODEL.HEADS.PAPER.FEAT_DIM", "the paper head's, with or without cells"),
    "MODEL.PTL.CLASSIFIER_HIDDEN": ("MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN", ""),
    "MODEL.NECK": ("MODEL.HEADS.NECK", ""),
    "MODEL.NECK_FEAT": ("MODEL.HEADS.TEST_FEATURE", '"after_neck" or "before_neck"'),
    "TEST.NECK_FEAT": ("MODEL.HEADS.TEST_FEATURE", '"after_neck" or "before_neck"'),
    "MODEL.HEADS.NECK_FEAT": ("MODEL.HEADS.TEST_FEATURE", '"after_neck" or "before_neck"'),
    "MODEL.HEADS.POOL_LAYER": ("MODEL.HEADS.POOLING", '"avg", "max" or "gem"'),
    "MODEL.HEADS.EMBEDDING_DIM": ("MODEL.HEADS.EMBED_DIM", ""),
    "MODEL.HEADS.NUM_CLASSES": ("DATASETS.TRAIN", "the classifier is sized from the data"),
    "MODEL.METRIC_LOSS_TYPE": ("MODEL.LOSSES.NAMES", '["cross_entropy", "triplet"]'),
    "MODEL.IF_LABELSMOOTH": ("MODEL.LOSSES.CE.EPSILON", "0 disables label smoothing"),
    "MODEL.LOSSES.TRI.MARGIN": ("MODEL.LOSSES.TRIPLET.MARGIN", ""),
    "MODEL.LOSSES.TRI.SCALE": ("MODEL.LOSSES.TRIPLET.WEIGHT", ""),
    "MODEL.LOSSES.TRI.HARD_MINING": ("MODEL.LOSSES.TRIPLET.MARGIN", "mining is always batch-hard"),
    "MODEL.LOSSES.CE.SCALE": ("MODEL.LOSSES.CE.WEIGHT", ""),
    "MODEL.LOSSES.CE.ALPHA": ("MODEL.LOSSES.CE.EPSILON", ""),
    "LOSS.TRIPLET.MARGIN": ("MODEL.LOSSES.TRIPLET.MARGIN", ""),
    "LOSS.SOFTMAX.LABEL_SMOOTH": ("MODEL.LOSSES.CE.EPSILON", ""),
    "MODEL.LOAD_WEIGHTS_PATH": ("MODEL.WEIGHTS", ""),
    # solver
    "SOLVER.MAX_EPOCH": ("SOLVER.MAX_EPOCHS", ""),
    "SOLVER.MAX_ITER": ("SOLVER.MAX_EPOCHS", "training length is counted in epochs"),
    "SOLVER.OPT": ("SOLVER.OPTIMIZER", '"SGD", "Adam" or "AdamW"'),
    "SOLVER.OPTIMIZER_NAME": ("SOLVER.OPTIMIZER", '"SGD", "Adam" or "AdamW"'),
    "SOLVER.SCHED": ("SOLVER.SCHEDULER", '"multistep" or "cosine"'),
    "SOLVER.WARMUP_ITERS": ("SOLVER.WARMUP_EPOCHS", "warm-up is counted in epochs"),
    "SOLVER.WARMUP_METHOD": ("SOLVER.WARMUP_FACTOR", "warm-up is linear"),
    "SOLVER.MARGIN": ("MODEL.LOSSES.TRIPLET.MARGIN", ""),
    "SOLVER.EVAL_PERIOD": ("TEST.EVAL_PERIOD", ""),
    "SOLVER.AMP.ENABLED": ("SOLVER.AMP", ""),
    "SOLVER.FP16_ENABLED": ("SOLVER.AMP", ""),
    "SOLVER.BASE_LR_FACTOR": ("SOLVER.BACKBONE_LR_FACTOR", ""),
    "TRAIN.MAX_EPOCH": ("SOLVER.MAX_EPOCHS", ""),
    "TRAIN.LR": ("SOLVER.BASE_LR", ""),
    "TRAIN.OPTIM": ("SOLVER.OPTIMIZER", ""),
    "TRAIN.BATCH_SIZE": ("SOLVER.IMS_PER_BATCH", ""),
    "TRAIN.STEPSIZE": ("SOLVER.STEPS", "epochs"),
    "TRAIN.GAMMA": ("SOLVER.GAMMA", ""),
    "TRAIN.WEIGHT_DECAY": ("SOLVER.WEIGHT_DECAY", ""),
    "TRAIN.LR_SCHEDULER": ("SOLVER.SCHEDULER", ""),
    "TRAIN.PRINT_FREQ": ("SOLVER.LOG_PERIOD", ""),
    "TRAIN.SEED": ("SEED", ""),
    # test
    "TEST.FLIP.ENABLED": ("TEST.FLIP_AUG", ""),
    "TEST.FLIP": ("TEST.FLIP_AUG", ""),
    "TEST.WEIGHT": ("MODEL.WEIGHTS", ""),
    "TEST.RE_RANKING": ("TEST.RERANK.ENABLED", ""),
    "TEST.FEAT_NORM": ("TEST.NORM_FEAT", ""),
    "TEST.NORMALIZE_FEATURE": ("TEST.NORM_FEAT", ""),
    "TEST.DIST_METRIC": ("TEST.METRIC", '"euclidean", "sqeuclidean" or "cosine"'),
    "TEST.EVAL_FREQ": ("TEST.EVAL_PERIOD", ""),
    "TEST.BATCH_SIZE": ("TEST.IMS_PER_BATCH", ""),
    "TEST.RANKS": ("TEST.MAX_RANK", ""),
    "TEST.VISRANK": ("TEST.TOPK_SAVE", "images: tools/test_net.py --vis-ranks K"),
    "TEST.EVALUATE": ("MODEL.WEIGHTS", "evaluate with tools/test_net.py"),
}


def all_keys(node: CfgNode, prefix: str = "") -> List[str]:
    """Every leaf key of a config, dotted."""
    out: List[str] = []
    for k, v in node.items():
        full = f"{prefix}{k}"
        out.extend(all_keys(v, full + ".") if isinstance(v, CfgNode) else [full])
    return out


def suggest(key: str, keys: Iterable[str]) -> str:
    """`` did you mean X?`` (and what differs) for an unknown ``key``; empty when nothing fits."""
    keys = list(keys)
    up = key.upper()
    if up in ALIASES:
        target, note = ALIASES[up]
        return f"; did you mean {target}?" + (f" ({note})" if note else "")
    if up != key and up in keys:
        return f"; did you mean {up}? (keys are upper case)"
    parent, _, leaf = up.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
    close = [siblings[m] for m in difflib.get_close_matches(leaf, list(siblings), n=2, cutoff=0.6)]
    leaves: Dict[str, List[str]] = {}
    for k in keys:
        leaves.setdefault(k.rpartition(".")[2], []).append(k)
    for m in difflib.get_close_matches(leaf, list(leaves), n=2, cutoff=0.85):
        close += [k for k in leaves[m] if k not in close]
    close += [k for k in difflib.get_close_matches(up, keys, n=2, cutoff=0.8) if k not in close]
    if not close:
        return ""
    return "; did you mean " + " or ".join(close[:3]) + "?"
