"""Every config key is born here, with a one-line reason.

yml files only override these keys; a key that is not here is an error, so typos cannot slip by.
"""

import os

from yacs.config import CfgNode as CN

# Environment variable giving the default DATASETS.ROOT (as fast-reid's FASTREID_DATASETS).
DATASETS_ENV = "REIDBOX_DATASETS"

_C = CN()

# Where every output of a run goes (config.yaml, checkpoints, metrics.json, logs, TensorBoard).
_C.OUTPUT_DIR = "output/default"
# Global seed for python, numpy and torch; the sampler derives its per-epoch seed from it.
_C.SEED = 0
# "auto" picks CUDA when available, else CPU; or name a torch device ("cpu", "cuda:0").
_C.DEVICE = "auto"
# Python modules imported before building, so user code can register datasets/models/losses.
_C.PLUGINS = []
# "reid" (retrieval metrics) or "classification" (top-1 error, CIFAR extension).
_C.TASK = "reid"

# ----------------------------------------------------------------------------------------------
_C.DATASETS = CN()
# Folder holding every dataset in its own sub-folder (see docs/datasets.md); the default is
# $REIDBOX_DATASETS when set, else "datasets" (a yml file or the command line still wins).
_C.DATASETS.ROOT = "datasets"
# Registered dataset names trained on together; labels never collide across them.
_C.DATASETS.TRAIN = ["synthetic"]
# Registered dataset names whose query/gallery are evaluated (each reported separately).
_C.DATASETS.TEST = ["synthetic"]
# Options for the embedded procedural dataset (synthetic / synthetic_a|b|c domains).
_C.DATASETS.SYNTHETIC = CN()
# Number of training identities generated.
_C.DATASETS.SYNTHETIC.NUM_TRAIN_IDS = 150
# Number of test identities generated (query + gallery).
_C.DATASETS.SYNTHETIC.NUM_TEST_IDS = 150
# Number of cameras (2..6, Market-style single-digit camera ids).
_C.DATASETS.SYNTHETIC.NUM_CAMERAS = 6
# Image height and width written to disk (Market crops are 128x64).
_C.DATASETS.SYNTHETIC.IMAGE_SIZE = [128, 64]
# CUHK03 options: which boxes, which protocol and (classic only) which of the 20 splits.
_C.DATASETS.CUHK03 = CN()
_C.DATASETS.CUHK03.VARIANT = "labeled"
_C.DATASETS.CUHK03.PROTOCOL = "new"
_C.DATASETS.CUHK03.SPLIT = 0
# MSMT17 options: release folder ("auto" tries V1 first) and whether list_val joins training.
_C.DATASETS.MSMT17 = CN()
_C.DATASETS.MSMT17.VERSION = "auto"
_C.DATASETS.MSMT17.INCLUDE_VAL = True

# ----------------------------------------------------------------------------------------------
_C.INPUT = CN()
# Training input (height, width); the paper uses 256x128 (384x128 for MGN).
_C.INPUT.SIZE_TRAIN = [256, 128]
# Test input (height, width).
_C.INPUT.SIZE_TEST = [256, 128]
# Horizontal flip probability in training (0 disables).
_C.INPUT.FLIP_PROB = 0.5
# Zero padding before a random crop back to SIZE_TRAIN (0 disables pad+crop). Off by default:
# the paper states no such augmentation (10 is a common ReID choice; CIFAR "+" uses 4).
_C.INPUT.PADDING = 0
# ImageNet statistics, since backbones are ImageNet pre-trained.
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
_C.INPUT.RANDOM_ERASING = CN()
# Random erasing (Zhong et al.) as torchvision implements it; a standard ReID regulariser.
_C.INPUT.RANDOM_ERASING.ENABLED = False
_C.INPUT.RANDOM_ERASING.PROB = 0.5

# ----------------------------------------------------------------------------------------------
_C.DATALOADER = CN()
# "pk": identity-balanced P x K batches (needed by triplet losses); "pk_camera": P x K whose K
# images of an identity come from as many cameras as it has (round-robin); "random": shuffling.
_C.DATALOADER.SAMPLER = "pk"
# K, images per identity in a P x K batch; P = SOLVER.IMS_PER_BATCH // K.
_C.DATALOADER.NUM_INSTANCES = 4
# DataLoader worker processes (0 loads in the main process).
_C.DATALOADER.NUM_WORKERS = 2
# Drop unreadable/corrupt images (checked once, counted in the log) instead of failing.
_C.DATALOADER.SKIP_UNREADABLE = False

# ----------------------------------------------------------------------------------------------
_C.MODEL = CN()
# Registered meta-architecture: "baseline", "mgn", "std", "classifier", "paper_classifier";
# PTL is MODEL.PTL.ENABLED on any of baseline/mgn/paper_classifier ("ptl", "mgn_ptl" and
# "ptl_classifier" are read as those with it: config/loader.py ARCH_ALIASES).
_C.MODEL.META_ARCHITECTURE = "baseline"
# Weights of a whole trained model to start from (test, fine-tuning); classifier shape may differ.
_C.MODEL.WEIGHTS = ""
# Load only the tensors of MODEL.WEIGHTS that fit, leaving the rest as initialised. Off: a file
# of another architecture/config must fail, not silently yield a half-random model (only a
# classifier sized for other identities is ever skipped). On: deliberate partial transfer.
_C.MODEL.WEIGHTS_PARTIAL = False
# Store activations NHWC (channels_last): faster convolutions on recent GPUs and CPUs.
_C.MODEL.CHANNELS_LAST = False
# torch.compile the training forward + losses: "" (eager), a mode ("default", "reduce-overhead"
# = CUDA graphs, "max-autotune") or a backend ("aot_eager": no code generation). Static shapes:
# one graph per batch shape (+1 for an epoch's partial last batch).
_C.MODEL.COMPILE = ""
# Convert BatchNorm to SyncBatchNorm under DDP, so BN statistics span the global batch.
_C.MODEL.SYNC_BN = False

_C.MODEL.BACKBONE = CN()
# Registered backbone name (resnet50, resnet50_ibn_a, osnet_x1_0, densenet161, ...; the list:
# tools/model_info.py --list) or "timm:<model>" for any timm CNN (e.g. timm:convnext_atto).
_C.MODEL.BACKBONE.NAME = "resnet50"
# Load ImageNet weights from a local file (no network access at run time).
_C.MODEL.BACKBONE.PRETRAINED = False
# Explicit path of the ImageNet weight file; empty: the file in the cache of the library that
# publishes it (torchvision/IBN-Net: $TORCH_HOME/hub/checkpoints, torchreid's OSNet:
# $TORCH_HOME/checkpoints, timm: the Hugging Face cache); docs/model_zoo.md lists each.
_C.MODEL.BACKBONE.WEIGHTS = ""
# Stride of the last stage; 1 doubles the final feature map (a standard ReID trick).
_C.MODEL.BACKBONE.LAST_STRIDE = 1
# Dropout after each conv of dense layers/transitions (CIFAR DenseNets: 0.2 unaugmented); others
# ignore it.
_C.MODEL.BACKBONE.DROP_RATE = 0.0

_C.MODEL.HEADS = CN()
# "embedding": pool -> optional embedding -> BN neck -> linear classifier (strong baseline);
# "paper": the PTL paper's head, pool -> 1x1 conv + BN + ReLU -> feature, three FC layers.
_C.MODEL.HEADS.NAME = "embedding"
# Global pooling: "avg", "max" or "gem".
_C.MODEL.HEADS.POOLING = "avg"
# Optional linear embedding before the BN neck (0 keeps the backbone's channels).
_C.MODEL.HEADS.EMBED_DIM = 0
# "bnneck" (BN between feature and classifier, Luo et al.) or "none".
_C.MODEL.HEADS.NECK = "bnneck"
# Which tensor the eval forward returns: "after_neck" (BN'd) or "before_neck".
_C.MODEL.HEADS.TEST_FEATURE = "after_neck"
# Classifier: "linear" or "cosine" (logits = cosines to unit class weights; the margin losses
# cosface / arcface need it, plain cross_entropy does not suit it).
_C.MODEL.HEADS.CLS_LAYER = "linear"
_C.MODEL.HEADS.PAPER = CN()
# The paper head's feature width, made by its 1x1 conv (0: the backbone's channels).
_C.MODEL.HEADS.PAPER.FEAT_DIM = 512
# Hidden widths of its training classifier; with the output layer, three FC layers (paper).
_C.MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN = [1024, 512]

_C.MODEL.LOSSES = CN()
# Registered losses applied in training; weights below.
_C.MODEL.LOSSES.NAMES = ["cross_entropy"]
_C.MODEL.LOSSES.CE = CN()
# Label smoothing epsilon (0 = plain cross-entropy).
_C.MODEL.LOSSES.CE.EPSILON = 0.1
_C.MODEL.LOSSES.CE.WEIGHT = 1.0
_C.MODEL.LOSSES.TRIPLET = CN()
# Batch-hard triplet margin (ignored when SOFT_MARGIN).
_C.MODEL.LOSSES.TRIPLET.MARGIN = 0.3
# Soft margin log(1 + exp(d_ap - d_an)) instead of a hinge.
_C.MODEL.LOSSES.TRIPLET.SOFT_MARGIN = False
_C.MODEL.LOSSES.TRIPLET.WEIGHT = 1.0
# Circle loss, pair-wise form (Sun et al. 2020): relaxation margin m and scale gamma.
_C.MODEL.LOSSES.CIRCLE = CN()
_C.MODEL.LOSSES.CIRCLE.MARGIN = 0.25
_C.MODEL.LOSSES.CIRCLE.GAMMA = 128.0
_C.MODEL.LOSSES.CIRCLE.WEIGHT = 1.0
# CosFace (additive cosine margin m) and ArcFace (additive angular margin m, radians): scale s
# and margin m, on a cosine classifier (MODEL.HEADS.CLS_LAYER cosine).
_C.MODEL.LOSSES.COSFACE = CN(dict(SCALE=30.0, MARGIN=0.35, WEIGHT=1.0))
_C.MODEL.LOSSES.ARCFACE = CN(dict(SCALE=30.0, MARGIN=0.5, WEIGHT=1.0))
# Center loss (Wen et al. 2016): centers move by ALPHA each step (not by the optimizer);
# 0.0005 is the weight of Luo et al.'s bag of tricks.
_C.MODEL.LOSSES.CENTER = CN()
_C.MODEL.LOSSES.CENTER.ALPHA = 0.5
_C.MODEL.LOSSES.CENTER.WEIGHT = 0.0005

_C.MODEL.PTL = CN()
# PTL's side network (BConv-Cells beside the stages and on the image, Fig. 2) added to the model;
# False: exactly the plain twin (docs/ptl.md, "PTL on equal terms").
_C.MODEL.PTL.ENABLED = False
# Pooling of the final cell's output before it joins the head: "max" (the authors' code) or
# "avg"; independent of HEADS.POOLING. The paper is silent (docs/ptl.md gives the measured effect).
_C.MODEL.PTL.CELL_POOLING = "max"
# BConv-Cell version: "v1" (Eq. 1, PTL) or "v2" (journal's BConv-Cell-v2, PTL-v2); docs/ptl.md.
_C.MODEL.PTL.CELL = "v1"
# "carry": latent state passed batch to batch (paper); "reset_each_batch": what its code ran.
_C.MODEL.PTL.STATE_MODE = "carry"
# "per_sample": one state row per batch slot (paper's code); "batch_mean": one shared (text).
_C.MODEL.PTL.STATE_SHAPE = "per_sample"
# Fresh-state values in training: "zeros" (paper's text) or "normal" N(0, 1e-3^2) (its code).
_C.MODEL.PTL.STATE_INIT = "zeros"
# BConv-Cell conv init: "kaiming_normal" (the paper's code; zero bias) or "pytorch_default".
_C.MODEL.PTL.CELL_INIT = "kaiming_normal"
# Derived widths: fuse_i and cells are CHANNEL_RATIO x the stage's channels, capped below.
_C.MODEL.PTL.CHANNEL_RATIO = 0.5
# Cap on derived fuse/cell widths, so deep stages (2112-channel DenseNet) stay affordable.
_C.MODEL.PTL.MAX_CHANNELS = 512
# Width of the final cell(s) whose output joins the backbone's (128 in the paper's code).
_C.MODEL.PTL.LAST_CELL_CHANNELS = 128
# Explicit cell widths [image cell, one per tap..., final]; empty derives them from the stages.
_C.MODEL.PTL.CELL_CHANNELS = []
# Explicit fuse widths, one per tapped stage; empty derives them from the stages.
_C.MODEL.PTL.FUSE_CHANNELS = []

_C.MODEL.MGN = CN()
# Width of each of MGN's reduced features (global and part); 256 in the MGN paper.
_C.MODEL.MGN.FEAT_DIM = 256
# Number of horizontal stripes of each part branch (besides the global branch): 2 and 3.
_C.MODEL.MGN.PARTS = [2, 3]
# One 1x1 reduction shared by all 8 features, as the reproduction the PTL paper used (66m).
_C.MODEL.MGN.SHARED_REDUCTION = True

_C.MODEL.STD = CN()
# STD (Eq. 4, meta-arch "std"): weight lambda of the L1 feature term; cross-entropy gets 1-lambda.
_C.MODEL.STD.LAMBDA = 0.8
# Config of the frozen teacher (a trained run's config.yaml); its feature width sizes the student's.
_C.MODEL.STD.TEACHER_CONFIG = ""
# Weights of the teacher (a trained run's model_final.pth); loaded only when LAMBDA > 0.
_C.MODEL.STD.TEACHER_WEIGHTS = ""

# ----------------------------------------------------------------------------------------------
_C.SOLVER = CN()
# "SGD" (with momentum), "Adam" or "AdamW" (decoupled weight decay).
_C.SOLVER.OPTIMIZER = "SGD"
_C.SOLVER.BASE_LR = 0.01
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 5e-4
# Adam's amsgrad variant (the paper's MGN code uses it).
_C.SOLVER.AMSGRAD = False
# Learning-rate multiplier for pre-trained backbone parameters (new layers use 1.0).
_C.SOLVER.BACKBONE_LR_FACTOR = 1.0
# Number of training epochs.
_C.SOLVER.MAX_EPOCHS = 50
# Images per training batch (P x K with the pk sampler).
_C.SOLVER.IMS_PER_BATCH = 32
# "multistep" (divide by 1/GAMMA at STEPS) or "cosine".
_C.SOLVER.SCHEDULER = "multistep"
# Epochs at which the multistep schedule multiplies the LR by GAMMA.
_C.SOLVER.STEPS = [10, 20, 30, 40]
_C.SOLVER.GAMMA = 0.1
# Linear warm-up length in epochs (0 disables) and starting fraction of BASE_LR.
_C.SOLVER.WARMUP_EPOCHS = 0.0
_C.SOLVER.WARMUP_FACTOR = 0.1
# Save a checkpoint every N epochs (the last epoch is always saved).
_C.SOLVER.CHECKPOINT_PERIOD = 1
# Number of recent epoch checkpoints kept on disk.
_C.SOLVER.KEEP_CHECKPOINTS = 3
# Every N iterations: read the loss terms from the device (the only sync of the steady-state
# step: a NaN is found at this read, naming its step), write a log line and TensorBoard points.
_C.SOLVER.LOG_PERIOD = 20
# Optimizer kernels: "auto" (fused on CUDA: one launch for all parameters; torch's default
# elsewhere, which keeps CPU results unchanged), "fused", "foreach" or "loop" (per parameter).
_C.SOLVER.OPTIMIZER_IMPL = "auto"
# Train only the new layers (heads, PTL cells) for the first N epochs: the backbone's weights
# are frozen and its BatchNorm statistics held (fast-reid's FREEZE_ITERS, in epochs).
_C.SOLVER.FREEZE_BACKBONE_EPOCHS = 0
# Clip the gradients' global L2 norm to this value before each step (0 disables).
_C.SOLVER.CLIP_GRAD_NORM = 0.0
# Mixed precision with torch.autocast: bf16 where supported (CPU, Ampere+), else fp16 + GradScaler.
_C.SOLVER.AMP = False

# ----------------------------------------------------------------------------------------------
_C.TEST = CN()
# Evaluate every N epochs during training (0: only at the end).
_C.TEST.EVAL_PERIOD = 0
_C.TEST.IMS_PER_BATCH = 128
# Average features of the image and its horizontal flip.
_C.TEST.FLIP_AUG = False
# L2-normalise features before matching.
_C.TEST.NORM_FEAT = True
# Distance: "euclidean", "sqeuclidean" or "cosine".
_C.TEST.METRIC = "euclidean"
# Evaluation protocol name (see docs/evaluation.md); "market1501" is torchreid/fast-reid's.
_C.TEST.PROTOCOL = "market1501"
# Ranks reported in the CMC curve.
_C.TEST.MAX_RANK = 50
# --- retrieval / evaluation engine (reidbox.evaluation, reidbox.retrieval) ---
# AP formula override ("" = the protocol's own; "step", "trapezoid", "sklearn", "sklearn_pre019"),
# e.g. "sklearn_pre019" to match Open-ReID numbers published with scikit-learn <= 0.18.
_C.TEST.AP_MODE = ""
# Seed of the single-gallery-shot draws (cuhk03_classic, openreid_cuhk03), so results repeat.
_C.TEST.SEED = 0
# Distance blocks: "torch" (exact GEMM, CPU/GPU), "faiss" (FAISS pairwise, GPU if built), "auto".
_C.TEST.BACKEND = "auto"
# Query rows per distance block (0 = about 16M distances per block); bounds evaluation memory.
_C.TEST.CHUNK_SIZE = 0
# Ranked gallery entries saved per query (0 disables the ranked-list file).
_C.TEST.TOPK_SAVE = 10
_C.TEST.RERANK = CN()
# k-reciprocal re-ranking (Zhong et al. 2017) of the query-gallery distances.
_C.TEST.RERANK.ENABLED = False
# k1: size of the k-reciprocal neighbourhood; reference default 20.
_C.TEST.RERANK.K1 = 20
# k2: neighbours averaged in local query expansion; reference default 6.
_C.TEST.RERANK.K2 = 6
# lambda: weight of the original distance against the Jaccard distance; reference default 0.3.
_C.TEST.RERANK.LAMBDA = 0.3
# Distances fed to re-ranking: "reference" = TEST.METRIC's (Euclidean: what Zhong et al.'s code
# expects), "torchreid" = what torchreid's engine feeds (squared Euclidean for "euclidean"), the
# only setting that reproduces torchreid's re-ranked numbers (they differ by up to ~0.01 mAP).
_C.TEST.RERANK.INPUT = "reference"
_C.TEST.ROC = CN()
# Verification metrics beside CMC/mAP (fast-reid's TEST.ROC.ENABLED): TPR at FPR 1e-4, 1e-3 and
# 1e-2 and the ROC area over query-gallery pairs, streamed (docs/search.md says how they differ
# from fast-reid's numbers). Off by default: one more pass over the distances.
_C.TEST.ROC.ENABLED = False

# ----------------------------------------------------------------------------------------------
_C.CHAIN = CN()
# Transfer chain (tools/transfer_chain.py): dataset aliases in fine-tuning order; "X+STD" distils.
_C.CHAIN.STEPS = []
# Config file merged into "+STD" steps (the student's architecture); empty keeps the chain's.
_C.CHAIN.STD_CONFIG = ""
# Evaluate every step on the test sets of all earlier steps too, so forgetting is visible.
_C.CHAIN.TEST_EARLIER = True


# ----------------------------------------------------------------------------------------------
# Valid range of every numeric key (and of the fixed-choice keys), checked by load_config:
# "[a, b]" / "(a, b)" intervals (inf allowed; ints stay ints), "{x, y}" choices, "N x <range>"
# a list of N such values, "each <range>" a list of any length. Keys without a fixed set of
# values (registered names, paths) are checked by the builders that use them.
RANGES = {
    "SEED": "[0, 4294967295]",
    "TASK": "{reid, classification}",
    "DATASETS.SYNTHETIC.NUM_TRAIN_IDS": "[2, inf)",  # one identity leaves nothing to tell apart
    "DATASETS.SYNTHETIC.NUM_TEST_IDS": "[1, inf)",
    "DATASETS.SYNTHETIC.NUM_CAMERAS": "[2, 6]",
    "DATASETS.SYNTHETIC.IMAGE_SIZE": "2 x [1, inf)",
    "DATASETS.CUHK03.VARIANT": "{labeled, detected}",
    "DATASETS.CUHK03.PROTOCOL": "{new, classic}",
    "DATASETS.CUHK03.SPLIT": "[0, 19]",
    "DATASETS.MSMT17.VERSION": "{auto, v1, v2, V1, V2}",
    "INPUT.SIZE_TRAIN": "2 x [1, inf)",
    "INPUT.SIZE_TEST": "2 x [1, inf)",
    "INPUT.FLIP_PROB": "[0, 1]",
    "INPUT.PADDING": "[0, inf)",
    "INPUT.PIXEL_MEAN": "3 x [0, 1]",
    "INPUT.PIXEL_STD": "3 x (0, inf)",
    "INPUT.RANDOM_ERASING.PROB": "[0, 1]",
    "DATALOADER.SAMPLER": "{pk, pk_camera, random}",
    "DATALOADER.NUM_INSTANCES": "[1, inf)",
    "DATALOADER.NUM_WORKERS": "[0, inf)",
    "MODEL.BACKBONE.LAST_STRIDE": "[1, 2]",
    "MODEL.BACKBONE.DROP_RATE": "[0, 1)",
    "MODEL.HEADS.EMBED_DIM": "[0, inf)",
    "MODEL.HEADS.NAME": "{embedding, paper}",
    "MODEL.HEADS.NECK": "{bnneck, none}",
    "MODEL.HEADS.TEST_FEATURE": "{after_neck, before_neck}",
    "MODEL.HEADS.CLS_LAYER": "{linear, cosine}",
    "MODEL.LOSSES.CE.EPSILON": "[0, 1)",
    "MODEL.LOSSES.CE.WEIGHT": "[0, inf)",
    "MODEL.LOSSES.TRIPLET.MARGIN": "[0, inf)",
    "MODEL.LOSSES.TRIPLET.WEIGHT": "[0, inf)",
    "MODEL.LOSSES.CIRCLE.MARGIN": "[0, 1]",
    "MODEL.LOSSES.CIRCLE.GAMMA": "(0, inf)",
    "MODEL.LOSSES.CIRCLE.WEIGHT": "[0, inf)",
    "MODEL.LOSSES.COSFACE.SCALE": "(0, inf)",
    "MODEL.LOSSES.COSFACE.MARGIN": "[0, 2]",
    "MODEL.LOSSES.COSFACE.WEIGHT": "[0, inf)",
    "MODEL.LOSSES.ARCFACE.SCALE": "(0, inf)",
    "MODEL.LOSSES.ARCFACE.MARGIN": "[0, 3.14159]",
    "MODEL.LOSSES.ARCFACE.WEIGHT": "[0, inf)",
    "MODEL.LOSSES.CENTER.ALPHA": "[0, 1]",
    "MODEL.LOSSES.CENTER.WEIGHT": "[0, inf)",
    "MODEL.PTL.CELL": "{v1, v2}",
    "MODEL.PTL.STATE_MODE": "{carry, reset_each_batch}",
    "MODEL.PTL.STATE_SHAPE": "{per_sample, batch_mean}",
    "MODEL.PTL.STATE_INIT": "{zeros, normal}",
    "MODEL.HEADS.PAPER.FEAT_DIM": "[0, inf)",
    "MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN": "each [1, inf)",
    "MODEL.PTL.CELL_POOLING": "{avg, max}",
    "MODEL.PTL.CHANNEL_RATIO": "(0, inf)",
    "MODEL.PTL.MAX_CHANNELS": "[1, inf)",
    "MODEL.PTL.LAST_CELL_CHANNELS": "[1, inf)",
    "MODEL.PTL.CELL_CHANNELS": "each [1, inf)",
    "MODEL.PTL.FUSE_CHANNELS": "each [1, inf)",
    "MODEL.MGN.FEAT_DIM": "[1, inf)",
    "MODEL.MGN.PARTS": "each [1, inf)",
    "MODEL.STD.LAMBDA": "[0, 1]",
    "SOLVER.BASE_LR": "[0, inf)",  # 0: weights frozen (tests, state-only checks)
    "SOLVER.MOMENTUM": "[0, 1)",
    "SOLVER.WEIGHT_DECAY": "[0, inf)",
    "SOLVER.BACKBONE_LR_FACTOR": "[0, inf)",
    "SOLVER.MAX_EPOCHS": "[1, inf)",
    "SOLVER.IMS_PER_BATCH": "[1, inf)",
    "SOLVER.STEPS": "each [1, inf)",
    "SOLVER.GAMMA": "(0, 1]",
    "SOLVER.WARMUP_EPOCHS": "[0, inf)",
    "SOLVER.WARMUP_FACTOR": "(0, 1]",
    "SOLVER.CHECKPOINT_PERIOD": "[1, inf)",
    "SOLVER.KEEP_CHECKPOINTS": "[1, inf)",
    "SOLVER.LOG_PERIOD": "[1, inf)",
    "SOLVER.FREEZE_BACKBONE_EPOCHS": "[0, inf)",
    "SOLVER.CLIP_GRAD_NORM": "[0, inf)",
    "TEST.EVAL_PERIOD": "[0, inf)",
    "TEST.IMS_PER_BATCH": "[1, inf)",
    "TEST.MAX_RANK": "[1, inf)",
    "TEST.SEED": "[0, 4294967295]",
    "TEST.CHUNK_SIZE": "[0, inf)",
    "TEST.TOPK_SAVE": "[0, inf)",
    "TEST.RERANK.K1": "[1, inf)",
    "TEST.RERANK.K2": "[1, inf)",
    "TEST.RERANK.LAMBDA": "[0, 1]",
}


def get_cfg_defaults() -> CN:
    """A fresh, mutable copy of the defaults (``DATASETS.ROOT`` from ``$REIDBOX_DATASETS``)."""
    cfg = _C.clone()
    root = os.environ.get(DATASETS_ENV, "").strip()
    if root:
        cfg.DATASETS.ROOT = root
    return cfg
