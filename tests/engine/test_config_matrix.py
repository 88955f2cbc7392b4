"""Every config under configs/ trains a few iterations and tests (slow; issue 11 item 8).

Each config runs as shipped -- its sampler, batch, K, losses, meta-architecture and dataset
layout -- except: tiny inputs (a quarter of the configured size), no ImageNet weights, one
epoch, CPU, no workers, and stand-in data written in the dataset's real layout with a train
set whose size leaves a remainder of 1 by the batch (random sampler: 2 x batch + 1 images; P x K
sampler: P + 1 identities). STD configs get a stand-in teacher trained first; chain configs run
two steps (the last two when the chain distils, so the "+STD" step runs too) with a ResNet-18
backbone (the chain machinery is the point; each architecture trains in its own config's run).

Configs are discovered by glob, so new ones are covered. Configs that differ only in numbers
that select no other code path (learning rate, schedule, weight decay, a lambda strictly between
0 and 1, a dropout rate, output folder) or only in the dataset share one run (:func:`run_key`);
the config run from each group is chosen so that every dataset layout any config reads is
trained on by some run (:func:`_groups`).

CIFAR (classification) configs keep their 32x32 images (the format's size) but a batch of at
most ``stand_ins.CIFAR_MAX_BATCH``: DenseNet-100 is the costliest model per image here.
Every run evaluates its test sets at the end of training; the first config of each
meta-architecture is also tested again from its saved weights (the test_net path).
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.engine.chain import parse_steps, run_chain
from reidbox.engine.trainer import HookBase

from .stand_ins import ALIAS_PARTS, COMMON, REPO, Data, tiny_opts

pytestmark = pytest.mark.slow

CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(REPO, "configs", "**", "*.yml"), recursive=True)
    if os.sep + "_base_" + os.sep not in p
)
# Chains run the chain machinery (steps, weight hand-over, STD from the previous step) on a
# small backbone: every config's own architecture already trains in its single-config run.
CHAIN_BACKBONE = ["MODEL.BACKBONE.NAME", "resnet18"]
# Values that select no other code path: configs differing only here share a run.
SAME_PATH = (
    "OUTPUT_DIR",
    "SOLVER.BASE_LR",
    "SOLVER.STEPS",
    "SOLVER.GAMMA",
    "SOLVER.MAX_EPOCHS",
    "SOLVER.WARMUP_EPOCHS",
    "SOLVER.WARMUP_FACTOR",
    "SOLVER.WEIGHT_DECAY",
    "SOLVER.MOMENTUM",
    "SOLVER.CHECKPOINT_PERIOD",
    "SOLVER.KEEP_CHECKPOINTS",
    "SOLVER.LOG_PERIOD",
    "TEST.EVAL_PERIOD",
    "MODEL.STD.TEACHER_CONFIG",
    "MODEL.STD.TEACHER_WEIGHTS",
    "DATALOADER.NUM_WORKERS",
)


def _rel(path: str) -> str:
    return os.path.relpath(path, os.path.join(REPO, "configs"))


def _flat(cfg) -> Dict[str, Any]:
    out: Dict[str, Any] = {}

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[prefix + k] = v

    walk(yaml.safe_load(cfg.dump()), "")
    return out


def chain_steps(cfg) -> List[str]:
    """The two chain steps to run: the first two, or the last two when the chain distils."""
    steps = list(cfg.CHAIN.STEPS)
    return steps[-2:] if any(s.upper().endswith("+STD") for s in steps) else steps[:2]


def dataset_layouts(cfg) -> set:
    """The stand-in layouts a config's run reads (CUHK03 per variant; a chain: its two steps')."""
    if cfg.CHAIN.STEPS:
        steps = parse_steps(chain_steps(cfg))
        return {
            n
            for s in steps
            for t in [s.dataset.train, *s.dataset.tests]
            for n in ALIAS_PARTS.get(t, [t])
        }
    names = set(cfg.DATASETS.TRAIN) | set(cfg.DATASETS.TEST)
    return {f"{n}:{cfg.DATASETS.CUHK03.VARIANT}" if n == "cuhk03" else n for n in names}


def run_key(cfg) -> Tuple:
    """What selects code paths in a run (see the module docstring); the dataset is left out
    (configs of one architecture on several datasets share a run, see :func:`_groups`)."""
    flat = {
        k: v
        for k, v in _flat(cfg).items()
        if k not in SAME_PATH
        and not (k.startswith(("DATASETS.", "INPUT.PIXEL_")) and not cfg.CHAIN.STEPS)
    }
    lam = flat.pop("MODEL.STD.LAMBDA")
    flat["lambda"] = "0" if lam == 0 else "1" if lam == 1 else "between"
    for k in ("MODEL.BACKBONE.DROP_RATE", "INPUT.PADDING", "INPUT.FLIP_PROB"):
        flat[k] = flat[k] > 0
    if cfg.CHAIN.STEPS:
        steps = parse_steps(chain_steps(cfg))
        flat["CHAIN.STEPS"] = tuple(
            (len(s.dataset.tests) > 1 or "+" in s.dataset.train, s.std) for s in steps
        )
    return tuple(sorted((k, repr(v)) for k, v in flat.items()))


def _groups() -> List[List[str]]:
    """Configs sharing a run; the first of each group is the one run, chosen so that every
    dataset layout any config reads is trained on by some run."""
    groups: Dict[Tuple, List[str]] = {}
    layouts = {}
    for path in CONFIGS:
        cfg = load_config(path, COMMON)
        layouts[path] = dataset_layouts(cfg)
        groups.setdefault(run_key(cfg), []).append(path)
    covered: set = set()
    out = []
    for paths in sorted(groups.values(), key=len):
        pick = max(paths, key=lambda p: len(layouts[p] - covered))  # first on ties
        covered |= layouts[pick]
        out.append([pick] + [p for p in paths if p != pick])
    assert covered == set().union(*layouts.values()), "a dataset layout is not covered"
    return out


GROUPS = _groups()


def _first_per_meta_architecture() -> set:
    seen: Dict[str, str] = {}
    for paths in GROUPS:
        cfg = load_config(paths[0], COMMON)
        if not cfg.CHAIN.STEPS:
            seen.setdefault(cfg.MODEL.META_ARCHITECTURE, paths[0])
    return set(seen.values())


TESTED = _first_per_meta_architecture()


class Steps(HookBase):
    def __init__(self) -> None:
        self.sizes: List[int] = []

    def after_step(self) -> None:
        self.sizes.append(self.trainer.last_batch_size)


def _opts_for(path: str, data: Data, teacher: List[str], out: str) -> Tuple[Any, List[str]]:
    cfg = load_config(path, COMMON)
    opts = COMMON + tiny_opts(cfg)
    cfg = load_config(path, opts)
    names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    if cfg.CHAIN.STEPS:
        names = [d for s in parse_steps(chain_steps(cfg)) for d in s.dataset.tests]
        names += [s.dataset.train for s in parse_steps(chain_steps(cfg))]
        opts += CHAIN_BACKBONE
    _, root_opts = data.root(cfg, names)
    opts += root_opts + ["OUTPUT_DIR", out]
    if cfg.MODEL.META_ARCHITECTURE == "std":
        opts += teacher
    return load_config(path, opts), opts


@pytest.mark.parametrize("paths", GROUPS, ids=lambda ps: "+".join(_rel(p) for p in ps))
def test_config_trains_and_tests(paths, stand_in_data, stand_in_teacher, tmp_path):
    t0, cpu0 = time.perf_counter(), time.process_time()
    path = paths[0]
    cfg, opts = _opts_for(path, stand_in_data, stand_in_teacher, str(tmp_path / "run"))
    if cfg.CHAIN.STEPS:
        steps = chain_steps(cfg)
        rows = run_chain(path, steps=steps, opts=opts, progress=False)
        assert len(rows) == 2
        for step in parse_steps(steps):
            folder = os.path.join(cfg.OUTPUT_DIR, step.folder)
            for name in ("model_final.pth", "metrics.json"):
                assert os.path.isfile(os.path.join(folder, name)), (step.label, name)
    else:
        hook = Steps()
        record = runner.train(cfg, progress=False, extra_hooks=[hook])
        batch = cfg.SOLVER.IMS_PER_BATCH
        # N mod batch = 1: only full batches (two; CIFAR-10's five images make one)
        assert hook.sizes and set(hook.sizes) == {batch}, hook.sizes
        one_batch = cfg.DATASETS.TRAIN[0] in ("cifar10", "cifar10_synthetic")
        assert len(hook.sizes) == (1 if one_batch else 2)
        key = "top1_error" if cfg.TASK == "classification" else "mAP"
        assert 0 <= record[key] <= 1
        if path in TESTED:  # test_net on the saved weights: one config per meta-architecture
            weights = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
            test_cfg = load_config(path, opts + ["OUTPUT_DIR", str(tmp_path / "test")])
            again = runner.test(test_cfg, weights=weights, progress=False)
            assert again[key] == pytest.approx(record[key], abs=1e-6)
    print(
        f"\n{'+'.join(_rel(p) for p in paths)}: {time.perf_counter() - t0:.1f}s wall, "
        f"{time.process_time() - cpu0:.1f}s CPU"
    )
