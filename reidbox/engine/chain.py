"""Transfer chains: fine-tune one model through datasets in order (Tables V and VI of the paper).

``run_chain(config_file, ["Duke", "Market", "MSMT17"])`` trains step 1 from ImageNet (or
``MODEL.WEIGHTS``), step k from step k-1's ``model_final.pth`` (minus the classifier of the
previous identities: replaced, and reported), and evaluates step k on its own test set and on
every earlier step's (forgetting is visible). A step ``"MSMT17+STD"`` distils the previous step's
model (teacher) into the student of ``CHAIN.STD_CONFIG`` (meta-arch ``std``, Eq. 4).

Layout of ``OUTPUT_DIR``::

    01_dukemtmcreid/ 02_market1501/ ...   one ordinary run folder per step
    manifest.json                           steps, configs, weights in, skipped weights, history
    summary.csv, summary.md, chain_map.png  rows = steps, columns = each test set's mAP / rank-1
    chain_log.txt                           what each invocation did

Rerunning resumes: a step is finished when its folder holds ``model_final.pth`` and
``metrics.json`` (never retrained); an unfinished step resumes from its newest epoch
checkpoint. A finished step whose recorded config differs from the one the chain would use now
is an error, so a changed chain never silently mixes old and new results.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..config import ConfigError, get_cfg_defaults, load_config, merge_opts
from ..config.loader import (
    flat_config,
    flat_saved_config,
    import_plugins,
    merge_file,
    opts_set_plugins,
    shipped_config,
)
from ..data import build_test_sets, build_train_set
from ..data.catalog import DatasetAlias, dataset_aliases
from ..errors import UserError
from ..modeling import build_model
from ..modeling.backbones import build_backbone
from ..modeling.transfer import transfer_weights
from ..registry import DATASETS
from ..utils.checkpoint import Checkpointer
from ..utils.logger import setup_logger
from ..utils.misc import write_json
from ..visualization.results import step_row, write_chain_summary
from .trainer import HookBase

logger = logging.getLogger("reidbox")

FINAL, METRICS = "model_final.pth", "metrics.json"
INIT = "init_weights.pth"  # a step's starting weights: the previous step's, classifier removed
# Keys that may change between invocations without changing what a step computes.
RUNTIME_KEYS = ("DEVICE", "DATALOADER.NUM_WORKERS", "TEST.IMS_PER_BATCH", "SOLVER.LOG_PERIOD")
# CHAIN.* keys say how steps are composed; what they change in a step shows in its other keys
# (CHAIN.STD_CONFIG in a +STD step's model, CHAIN.TEST_EARLIER in its DATASETS.TEST), so a
# finished step is compared without them: extending a chain with a +STD step reuses it.
# CHAIN.STEPS (the steps up to this one: where its weights came from) is compared.
COMPOSITION_PREFIX = "CHAIN."
COMPARED_CHAIN_KEYS = ("CHAIN.STEPS",)


# Chain step names: what each registered dataset declares (data.catalog); no table here.
def resolve_dataset(name: str) -> DatasetAlias:
    """A chain step's dataset: a paper alias (``Duke``) or any registered dataset name."""
    key = name.strip().lower()
    aliases = dataset_aliases()  # asked now: a plugin's datasets declare theirs too
    if key in aliases:
        return aliases[key]
    if key in DATASETS:
        return DatasetAlias(key, [key])
    raise ConfigError(
        f"unknown chain step dataset {name!r}; aliases: "
        f"{', '.join(sorted(aliases))}; registered: {', '.join(sorted(DATASETS))}"
    )


@dataclass
class ChainStep:
    index: int  # 1-based
    label: str  # as written, e.g. "MSMT17+STD"
    dataset: DatasetAlias
    std: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"{self.index:02d}_{self.dataset.train}{'_std' if self.std else ''}"


def parse_steps(labels: Sequence[str]) -> List[ChainStep]:
    """``["Duke", "Market", "MSMT17+STD"]`` -> steps; ``+STD`` (any case) marks distillation."""
    steps = []
    for i, label in enumerate(labels, 1):
        name, std = label, False
        if label.lower().endswith("+std"):
            name, std = label[:-4], True
        steps.append(ChainStep(i, label, resolve_dataset(name), std))
    seen: Dict[str, str] = {}
    for s in steps:
        key = f"{s.dataset.train}{'+std' if s.std else ''}"
        if key in seen:
            raise ConfigError(
                f"chain step {s.label!r} trains on {s.dataset.train} twice "
                f"(also as {seen[key]!r}); name each dataset once"
            )
        seen[key] = s.label
    if not steps:
        raise ConfigError(
            "empty chain: name the datasets (tools/transfer_chain.py Duke Market) "
            "or set CHAIN.STEPS in the config file"
        )
    return steps


def _fragment_path(alias: DatasetAlias) -> Optional[str]:
    return shipped_config(f"_base_/{alias.fragment}") if alias.fragment else None


def step_config(
    config_file: Optional[str],
    opts: Sequence[str],
    step: ChainStep,
    chain_dir: str,
    labels: Sequence[str],
    prev_dir: Optional[str],
    earlier_tests: Sequence[str],
):
    """The frozen config of one step and the weights it starts from (None: ImageNet/scratch).

    Layers: defaults <- dataset fragment <- ``config_file`` <- ``CHAIN.STD_CONFIG`` (``+STD``
    steps) <- ``opts``; then the chain sets OUTPUT_DIR, DATASETS.TRAIN/TEST, MODEL.WEIGHTS (the
    previous step's final weights, or the given ``MODEL.WEIGHTS`` for step 1, minus the
    classifier: see :func:`prepare_weights`) and, for ``+STD``, the teacher (the previous run).
    """
    cfg = get_cfg_defaults()
    fragment = _fragment_path(step.dataset)
    if fragment:
        merge_file(cfg, fragment)
    if config_file:
        merge_file(cfg, config_file)
    merge_opts(cfg, opts)
    if step.std:
        if not cfg.CHAIN.STD_CONFIG:
            raise ConfigError(
                f"step {step.label!r} distils, so CHAIN.STD_CONFIG must name the "
                "student's config (e.g. configs/std/d161_student.yml)"
            )
        merge_file(cfg, cfg.CHAIN.STD_CONFIG)
        merge_opts(cfg, opts)  # the command line still wins
        # Eq. 4's student is the plain model: the PTL chain's side network and paper head (its
        # config and the opts name them for every step) are the teacher's, not the student's
        cfg.MODEL.PTL.ENABLED = False
        cfg.MODEL.HEADS.NAME = "embedding"
        if cfg.MODEL.META_ARCHITECTURE != "std":
            raise ConfigError(
                f"CHAIN.STD_CONFIG {cfg.CHAIN.STD_CONFIG} must set MODEL.META_ARCHITECTURE 'std'"
            )
        if not cfg.MODEL.STD.TEACHER_WEIGHTS:
            if prev_dir is None:
                raise ConfigError(
                    f"step {step.label!r} is the first: no previous step to "
                    "distil from; set MODEL.STD.TEACHER_CONFIG/TEACHER_WEIGHTS"
                )
            cfg.MODEL.STD.TEACHER_CONFIG = os.path.join(prev_dir, "config.yaml")
            cfg.MODEL.STD.TEACHER_WEIGHTS = os.path.join(prev_dir, FINAL)
    tests = list(step.dataset.tests)
    if cfg.CHAIN.TEST_EARLIER:
        tests += [t for t in earlier_tests if t not in tests]
    cfg.OUTPUT_DIR = os.path.join(chain_dir, step.folder)
    cfg.DATASETS.TRAIN = [step.dataset.train]
    cfg.DATASETS.TEST = tests
    source = os.path.join(prev_dir, FINAL) if prev_dir is not None else (cfg.MODEL.WEIGHTS or None)
    if source is not None:  # the source minus its classifier, written by prepare_weights
        cfg.MODEL.WEIGHTS = os.path.join(cfg.OUTPUT_DIR, INIT)
    cfg.CHAIN.STEPS = list(labels[: step.index])  # the chain up to here: extending keeps it
    import_plugins(cfg.PLUGINS, trusted=opts_set_plugins(opts), where=config_file)
    cfg.freeze()
    return cfg, source


def config_differences(cfg, folder: str) -> List[str]:
    """Keys whose value in ``folder/config.yaml`` differs from ``cfg`` (runtime keys ignored)."""
    path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        old = flat_saved_config(f.read())
    new = flat_config(cfg.dump())
    return sorted(
        k
        for k in set(old) | set(new)
        if k not in RUNTIME_KEYS
        and (not k.startswith(COMPOSITION_PREFIX) or k in COMPARED_CHAIN_KEYS)
        and old.get(k) != new.get(k)
    )


def is_finished(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, n)) for n in (FINAL, METRICS))


def prepare_weights(cfg, source: Optional[str]) -> Dict[str, Any]:
    """Write ``MODEL.WEIGHTS`` (``init_weights.pth``): ``source`` without its classifier
    (:func:`reidbox.modeling.transfer.transfer_weights`: a new dataset means new identities).
    Returns the report for the log and the manifest."""
    if source is None:
        return {
            "weights": None,
            "start": "ImageNet" if cfg.MODEL.BACKBONE.PRETRAINED else "scratch",
        }
    num_classes = build_train_set(cfg).num_train_pids
    return transfer_weights(cfg, source, num_classes, cfg.MODEL.WEIGHTS)


def describe_recipe(cfg) -> str:
    """A one-line description of the training recipe of ``cfg`` for the log."""
    m, s = cfg.MODEL, cfg.SOLVER
    return (
        f"{m.META_ARCHITECTURE}/{m.BACKBONE.NAME}, "
        f"{'ImageNet' if m.BACKBONE.PRETRAINED else 'random'} init, "
        f"{s.MAX_EPOCHS} epochs, {s.OPTIMIZER} lr {s.BASE_LR}, "
        f"batch {s.IMS_PER_BATCH}, input {list(cfg.INPUT.SIZE_TRAIN)}"
    )


def check_step(cfg, step: ChainStep, checked: set) -> None:
    """Read a step's datasets and build its model on the meta device, so that a missing or
    broken dataset (or config) of any step fails before the first step trains."""
    key = (cfg.DATASETS.ROOT, tuple(cfg.DATASETS.TRAIN))
    if key not in checked:
        build_train_set(cfg)
        checked.add(key)
    if any((cfg.DATASETS.ROOT, (t,), "test") not in checked for t in cfg.DATASETS.TEST):
        build_test_sets(cfg)
        checked.update((cfg.DATASETS.ROOT, (t,), "test") for t in cfg.DATASETS.TEST)
    # shapes only (the teacher is an earlier step, not trained yet) ...
    try:
        with torch.device("meta"):
            build_model(cfg, 2, pretrained=False, teacher=False)
    except (ConfigError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise ConfigError(f"chain step {step.index} ({step.label}): {msg}") from None
    # ... and the ImageNet file, read and fitted to the backbone, for every step that builds
    # its backbone from one (later steps too: MODEL.WEIGHTS is loaded over it)
    b = cfg.MODEL.BACKBONE
    key = ("imagenet", b.NAME, b.WEIGHTS)
    if b.PRETRAINED and key not in checked:
        try:
            build_backbone(b.NAME, pretrained=True, weights=b.WEIGHTS)
        except UserError as e:
            raise ConfigError(f"chain step {step.index} ({step.label}): {e}") from None
        checked.add(key)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _ChainLog:
    def __init__(self, chain_dir: str) -> None:
        self.path = os.path.join(chain_dir, "chain_log.txt")

    def __call__(self, msg: str, *args) -> None:
        text = msg % args if args else msg
        logger.info("chain: %s", text)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{_now()} {text}\n")


def run_chain(
    config_file: Optional[str] = None,
    steps: Optional[Sequence[str]] = None,
    opts: Sequence[str] = (),
    progress: bool = True,
    extra_hooks: Sequence[HookBase] = (),
    train: Optional[Callable] = None,
    test: Optional[Callable] = None,
) -> List[Dict[str, Any]]:
    """Run (or resume) a chain; returns the summary rows (one per step).

    ``steps`` defaults to ``CHAIN.STEPS`` of the config; ``opts`` are ``KEY VALUE`` overrides
    applied to every step. ``extra_hooks`` go to every step's trainer (tests use them).
    ``train(cfg, resume=, progress=, extra_hooks=)`` and ``test(cfg, weights=, progress=)`` run
    a step (default :func:`reidbox.engine.runner.train` / ``test``): the chain only orders the
    steps, prepares their configs and starting weights, and records what happened.
    """
    if train is None or test is None:
        from . import runner

        train, test = train or runner.train, test or runner.test
    base = load_config(config_file or None, opts)
    labels = list(steps) if steps else list(base.CHAIN.STEPS)
    chain = parse_steps(labels)
    chain_dir = base.OUTPUT_DIR
    os.makedirs(chain_dir, exist_ok=True)
    setup_logger(None)  # chain messages on the console; each step then logs into its folder
    note = _ChainLog(chain_dir)
    manifest_path = os.path.join(chain_dir, "manifest.json")
    manifest: Dict[str, Any] = {"steps": []}
    if os.path.isfile(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    history = {s.get("folder"): s.get("history", []) for s in manifest.get("steps", [])}
    manifest.update(chain=labels, config_file=config_file or None, opts=list(opts), updated=_now())
    manifest["steps"] = []
    note("chain %s in %s (config %s)", " -> ".join(labels), chain_dir, config_file or "defaults")
    if not config_file:
        note(
            "no --config-file: every step uses reidbox's bare defaults (%s) plus its "
            "dataset's configs/_base_ fragment and the command-line overrides; the paper's "
            "recipes are configs/chains/*.yml",
            describe_recipe(base),
        )

    # Every step's config, data and model first: a wrong or changed chain fails before anything
    # trains (a missing dataset of step 3 must not cost the hours of steps 1 and 2).
    configs, sources = [], []
    prev_dir: Optional[str] = None
    earlier: List[str] = []
    checked: set = set()
    for step in chain:
        cfg, source = step_config(config_file, opts, step, chain_dir, labels, prev_dir, earlier)
        changed = config_differences(cfg, cfg.OUTPUT_DIR)
        if changed:
            raise ConfigError(
                f"chain step {step.index} ({step.label}) in {cfg.OUTPUT_DIR} was "
                f"run with another config ({', '.join(changed[:6])}); use another "
                "OUTPUT_DIR or delete that folder to retrain it"
            )
        if not is_finished(cfg.OUTPUT_DIR):
            check_step(cfg, step, checked)
        configs.append(cfg)
        sources.append(source)
        prev_dir = cfg.OUTPUT_DIR
        earlier = earlier + [t for t in step.dataset.tests if t not in earlier]
    note("checked all %d steps: configs, datasets and models are readable", len(chain))

    rows: List[Dict[str, Any]] = []
    for step, cfg, source in zip(chain, configs, sources):
        out = cfg.OUTPUT_DIR
        entry: Dict[str, Any] = {
            "index": step.index,
            "step": step.label,
            "folder": step.folder,
            "output_dir": out,
            "train": step.dataset.train,
            "tests": list(cfg.DATASETS.TEST),
            "config": os.path.join(out, "config.yaml"),
            "weights_in": source,
            "weights_out": os.path.join(out, FINAL),
            "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            # earlier invocations' actions, unless the folder was deleted since
            "history": list(history.get(step.folder, []))
            if os.path.isfile(os.path.join(out, "config.yaml"))
            else [],
        }
        if step.std:
            entry["teacher"] = {
                "config": cfg.MODEL.STD.TEACHER_CONFIG,
                "weights": cfg.MODEL.STD.TEACHER_WEIGHTS,
                "lambda": cfg.MODEL.STD.LAMBDA,
            }
        if is_finished(out):
            note("step %d %s: finished earlier, not retrained", step.index, step.label)
            entry["history"].append({"at": _now(), "action": "reused"})
        else:
            report = prepare_weights(cfg, source)
            entry["load"] = report
            if source is None:
                note("step %d %s: starts from %s", step.index, step.label, report["start"])
            else:
                note(
                    "step %d %s: starts from %s; classifier replaced (%s -> %d identities, "
                    "freshly initialised); skipped weights: %s; newly initialised tensors: %d; "
                    "unused tensors of the file: %d",
                    step.index,
                    step.label,
                    source,
                    report["previous_num_classes"],
                    report["num_classes"],
                    ", ".join(report["skipped"]) or "none",
                    len(report["new"]),
                    len(report["unused"]),
                )
            ckpts = Checkpointer(out).list()
            if os.path.isfile(os.path.join(out, FINAL)):
                doing, done = (
                    "evaluating its final weights (training had finished)",
                    "evaluated its final weights (training had finished)",
                )
            elif ckpts:
                epoch = int(Checkpointer.PATTERN.search(ckpts[-1]).group(1))
                doing, done = (f"resuming after epoch {epoch}", f"resumed after epoch {epoch}")
            else:
                doing, done = "training", "trained"
            entry["history"].append({"at": _now(), "action": doing})
            write_json(dict(manifest, steps=manifest["steps"] + [entry]), manifest_path)
            note(
                "step %d %s: %s (%s -> tests %s)",
                step.index,
                step.label,
                doing,
                step.dataset.train,
                ", ".join(cfg.DATASETS.TEST),
            )
            try:
                if done.startswith("evaluated"):
                    # training finished but its metrics.json is missing: the evaluation of
                    # the final weights (written to eval/<settings>/) becomes the step's result
                    record = test(cfg, weights=os.path.join(out, FINAL), progress=progress)
                    write_json(record, os.path.join(out, METRICS))
                else:
                    train(cfg, resume=True, progress=progress, extra_hooks=list(extra_hooks))
            except BaseException as e:  # the manifest says the step stopped, then re-raise
                entry["history"][-1]["action"] = f"{doing}, stopped ({type(e).__name__})"
                write_json(dict(manifest, steps=manifest["steps"] + [entry]), manifest_path)
                raise
            entry["history"][-1]["action"] = done
            entry["finished"] = _now()
            note("step %d %s: %s", step.index, step.label, done)
        manifest["steps"].append(entry)
        write_json(manifest, manifest_path)
        rows.append(
            step_row(step.index, step.label, step.dataset.train, os.path.join(out, METRICS))
        )
    write_chain_summary(chain_dir, rows)
    note("summary written to %s", os.path.join(chain_dir, "summary.md"))
    return rows
