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

Rerunning plans first (:func:`plan_chain`), then runs each step (:func:`run_step`). Every step
folder is judged by the run folder's one rule (:meth:`~reidbox.engine.run_folder.RunFolder.judge`,
the rule of ``train_net --resume``): a finished step of the same config is reused (a moved
datasets folder or a changed runtime key included), an unfinished one resumes from its newest
epoch checkpoint, a grown ``SOLVER.MAX_EPOCHS`` continues a finished step, and the later steps
that started from a step that trains again are trained again; a step folder of another config
is an error, so a changed chain never silently mixes old and new results.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..config import ConfigError, get_cfg_defaults, load_config, merge_opts
from ..config.loader import import_plugins, merge_file, opts_set_plugins, shipped_config
from ..data import build_test_sets, build_train_set
from ..data.catalog import DatasetAlias, dataset_aliases
from ..errors import UserError
from ..modeling import build_model
from ..modeling.backbones import build_backbone
from ..modeling.transfer import transfer_weights
from ..registry import DATASETS
from ..utils.logger import setup_logger
from ..utils.misc import write_json
from ..visualization.results import step_row, write_chain_summary
from .run_folder import CONFIG_FILE, FINAL_WEIGHTS, RunFolder, StartMode, Verdict
from .trainer import HookBase

logger = logging.getLogger("reidbox")

INIT = "init_weights.pth"  # a step's starting weights: the previous step's, classifier removed


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


def _student_config(cfg, step: ChainStep, opts: Sequence[str], prev_dir: Optional[str]) -> None:
    """A ``+STD`` step: the student of ``CHAIN.STD_CONFIG`` over ``cfg`` (the command line still
    wins), taught by the previous step's run unless the config names a teacher."""
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
        cfg.MODEL.STD.TEACHER_CONFIG = os.path.join(prev_dir, CONFIG_FILE)
        cfg.MODEL.STD.TEACHER_WEIGHTS = os.path.join(prev_dir, FINAL_WEIGHTS)


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
        _student_config(cfg, step, opts, prev_dir)
    tests = list(step.dataset.tests)
    if cfg.CHAIN.TEST_EARLIER:
        tests += [t for t in earlier_tests if t not in tests]
    cfg.OUTPUT_DIR = os.path.join(chain_dir, step.folder)
    cfg.DATASETS.TRAIN = [step.dataset.train]
    cfg.DATASETS.TEST = tests
    source = cfg.MODEL.WEIGHTS or None
    if prev_dir is not None:
        source = os.path.join(prev_dir, FINAL_WEIGHTS)
    if source is not None:  # the source minus its classifier, written by prepare_weights
        cfg.MODEL.WEIGHTS = os.path.join(cfg.OUTPUT_DIR, INIT)
    cfg.CHAIN.STEPS = list(labels[: step.index])  # the chain up to here: extending keeps it
    import_plugins(cfg.PLUGINS, trusted=opts_set_plugins(opts), where=config_file)
    cfg.freeze()
    return cfg, source


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


class Action(str, Enum):
    """What a rerun does with a step, as the run folder's rule decides (:func:`plan_chain`)."""

    REUSE = "reuse"  # finished, same config: nothing to do
    TRAIN = "train"  # nothing trained yet
    RESUME = "resume"  # unfinished: continue from the newest checkpoint
    CONTINUE = "continue"  # finished, with epochs (a grown schedule) or an evaluation left
    EVALUATE = "evaluate"  # final weights without metrics.json and no checkpoint to resume
    RETRAIN = "retrain"  # an earlier step trains again: this one started from its old weights


@dataclass
class StepPlan:
    step: ChainStep
    cfg: Any
    source: Optional[str]  # the weights it starts from (None: ImageNet / scratch)
    action: Action
    why: str = ""  # what changed (CONTINUE, RETRAIN)
    left: int = 0  # epochs a CONTINUE trains (0: only evaluated again)

    @property
    def trains(self) -> bool:
        """Its final weights change, so every later step that started from them is stale."""
        return self.action in (Action.TRAIN, Action.RESUME, Action.RETRAIN) or (
            self.action is Action.CONTINUE and self.left > 0
        )

    @property
    def start(self) -> StartMode:
        return StartMode.OVERWRITE if self.action is Action.RETRAIN else StartMode.RESUME

    def words(self) -> tuple:
        """What the step is doing / has done, for the log and the manifest's history."""
        folder = RunFolder(self.cfg.OUTPUT_DIR)
        if self.action is Action.EVALUATE:
            what = "its final weights (training had finished)"
            return f"evaluating {what}", f"evaluated {what}"
        if self.action is Action.RESUME:
            epoch = folder.epochs_done()
            return f"resuming after epoch {epoch}", f"resumed after epoch {epoch}"
        if self.action is Action.CONTINUE:
            return f"continuing ({self.why})", f"continued ({self.why})"
        if self.action is Action.RETRAIN:
            return f"training again ({self.why})", f"trained again ({self.why})"
        return "training", "trained"


def decide(step: ChainStep, cfg) -> StepPlan:
    """A step's action from its folder, judged by the run folder's one rule; a folder of
    another config is refused in one line."""
    folder = RunFolder(cfg.OUTPUT_DIR)
    c = folder.judge(cfg)
    if c.verdict is Verdict.OTHER:
        raise ConfigError(
            f"chain step {step.index} ({step.label}) in {cfg.OUTPUT_DIR} was run with "
            f"another config ({c.what()}); use another OUTPUT_DIR or delete that folder to "
            "retrain it"
        )
    if c.verdict is Verdict.SAME:
        return StepPlan(step, cfg, None, Action.REUSE)
    if c.finished:
        why = "; ".join(c["schedule"] + c["evaluation"])
        return StepPlan(step, cfg, None, Action.CONTINUE, why, c.left)
    if os.path.isfile(folder.final_weights) and not (c["schedule"] or c.left):
        return StepPlan(step, cfg, None, Action.EVALUATE)
    return StepPlan(step, cfg, None, Action.RESUME if folder.checkpoints() else Action.TRAIN)


def plan_chain(
    config_file: Optional[str], labels: Sequence[str], opts: Sequence[str], chain_dir: str
) -> List[StepPlan]:
    """Every step's config, starting weights and action, and every step that will run checked
    (datasets read, model built on the meta device), before anything trains: a wrong or
    changed chain fails before a missing dataset of step 3 costs the hours of steps 1 and 2.
    A step after one that trains again is trained again (:attr:`StepPlan.trains`)."""
    plans: List[StepPlan] = []
    prev_dir: Optional[str] = None
    earlier: List[str] = []
    checked: set = set()
    for step in parse_steps(labels):
        cfg, source = step_config(config_file, opts, step, chain_dir, labels, prev_dir, earlier)
        plan = decide(step, cfg)
        plan.source = source
        stale = next((p for p in plans if p.trains), None)
        # a later step's weights (finished or a checkpoint) grew from the earlier weights of a
        # step that trains again: it starts over from the new ones (a fresh folder just trains)
        if stale is not None and plan.action is not Action.TRAIN:
            plan.action, plan.why = Action.RETRAIN, f"step {stale.step.index} trains again"
        if plan.action is not Action.REUSE:
            check_step(cfg, step, checked)
        plans.append(plan)
        prev_dir = cfg.OUTPUT_DIR
        earlier = earlier + [t for t in step.dataset.tests if t not in earlier]
    return plans


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


@dataclass
class ChainManifest:
    """``manifest.json``: the chain, its config and overrides, and one entry per step done so
    far (config, weights in / out, teacher, skipped weights, history of every invocation)."""

    path: str
    chain: List[str]
    config_file: Optional[str]
    opts: List[str]
    updated: str = field(default_factory=_now)
    steps: List[Dict[str, Any]] = field(default_factory=list)
    earlier: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)  # folder -> history

    @classmethod
    def open(cls, chain_dir: str, labels, config_file, opts) -> ChainManifest:
        path = os.path.join(chain_dir, "manifest.json")
        old: Dict[str, Any] = {}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        earlier = {s.get("folder"): s.get("history", []) for s in old.get("steps", [])}
        return cls(path, list(labels), config_file or None, list(opts), earlier=earlier)

    def entry(self, p: StepPlan) -> Dict[str, Any]:
        out, cfg = p.cfg.OUTPUT_DIR, p.cfg
        folder = RunFolder(out)
        entry: Dict[str, Any] = {
            "index": p.step.index,
            "step": p.step.label,
            "folder": p.step.folder,
            "output_dir": out,
            "train": p.step.dataset.train,
            "tests": list(cfg.DATASETS.TEST),
            "config": folder.config_file,
            "weights_in": p.source,
            "weights_out": folder.final_weights,
            "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            # earlier invocations' actions, unless the folder was deleted since
            "history": list(self.earlier.get(p.step.folder, []))
            if os.path.isfile(folder.config_file)
            else [],
        }
        if p.step.std:
            entry["teacher"] = {
                "config": cfg.MODEL.STD.TEACHER_CONFIG,
                "weights": cfg.MODEL.STD.TEACHER_WEIGHTS,
                "lambda": cfg.MODEL.STD.LAMBDA,
            }
        return entry

    def write(self, pending: Optional[Dict[str, Any]] = None) -> None:
        record = asdict(self)
        del record["path"], record["earlier"]
        record["steps"] = self.steps + ([pending] if pending else [])
        write_json(record, self.path)


@dataclass
class StepRunner:
    """How a step runs: the runner's ``train`` / ``test`` and what every step passes them."""

    train: Callable
    test: Callable
    progress: bool = True
    extra_hooks: Sequence[HookBase] = ()

    def __call__(self, p: StepPlan) -> None:
        folder = RunFolder(p.cfg.OUTPUT_DIR)
        if p.action is Action.EVALUATE:
            # training finished but its metrics.json is missing: the evaluation of the final
            # weights (written to eval/<settings>/) becomes the step's result
            record = self.test(p.cfg, weights=folder.final_weights, progress=self.progress)
            write_json(record, folder.metrics_file)
        else:
            hooks = list(self.extra_hooks)
            self.train(p.cfg, p.start, progress=self.progress, extra_hooks=hooks)


def note_start(p: StepPlan, note: _ChainLog) -> Dict[str, Any]:
    """Write a step's starting weights (:func:`prepare_weights`) and say where they came from."""
    report = prepare_weights(p.cfg, p.source)
    i, label = p.step.index, p.step.label
    if p.action in (Action.RESUME, Action.CONTINUE, Action.EVALUATE):
        # the run already started from these weights: its checkpoint (or final weights) goes on
        note("step %d %s: started from %s; its run goes on", i, label, p.source or report["start"])
        return report
    if p.source is None:
        note("step %d %s: starts from %s", i, label, report["start"])
        return report
    note(
        "step %d %s: starts from %s; classifier replaced (%s -> %d identities, freshly "
        "initialised); skipped weights: %s; newly initialised tensors: %d; unused tensors of "
        "the file: %d",
        i,
        label,
        p.source,
        report["previous_num_classes"],
        report["num_classes"],
        ", ".join(report["skipped"]) or "none",
        len(report["new"]),
        len(report["unused"]),
    )
    return report


def run_step(p: StepPlan, manifest: ChainManifest, note: _ChainLog, run: StepRunner):
    """Do what the plan says for one step, recording it; returns its summary row."""
    entry = manifest.entry(p)
    i, label = p.step.index, p.step.label
    if p.action is Action.REUSE:
        note("step %d %s: finished earlier, not retrained", i, label)
        entry["history"].append({"at": _now(), "action": "reused"})
    else:
        entry["load"] = note_start(p, note)
        doing, done = p.words()
        entry["history"].append({"at": _now(), "action": doing})
        manifest.write(pending=entry)
        tests = ", ".join(p.cfg.DATASETS.TEST)
        note("step %d %s: %s (%s -> tests %s)", i, label, doing, p.step.dataset.train, tests)
        try:
            run(p)
        except BaseException as e:  # the manifest says the step stopped, then re-raise
            entry["history"][-1]["action"] = f"{doing}, stopped ({type(e).__name__})"
            manifest.write(pending=entry)
            raise
        entry["history"][-1]["action"] = done
        entry["finished"] = _now()
        note("step %d %s: %s", i, label, done)
    manifest.steps.append(entry)
    manifest.write()
    metrics = RunFolder(p.cfg.OUTPUT_DIR).metrics()
    return step_row(i, label, p.step.dataset.train, metrics)


def note_plan(plans: List[StepPlan], note: _ChainLog) -> None:
    """One line for the steps trained again because an earlier step trains again."""
    again = [p for p in plans if p.action is Action.RETRAIN]
    if not again:
        return
    first = next(p for p in plans if p.trains)
    what = f" ({first.why})" if first.why else ""
    note(
        "step %d %s %s%s: %s, which started from its weights, %s trained again",
        first.step.index,
        first.step.label,
        "continues" if first.action is Action.CONTINUE else "trains again",
        what,
        ", ".join(f"step {p.step.index} {p.step.label}" for p in again),
        "is" if len(again) == 1 else "are",
    )


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
    ``train(cfg, start, progress=, extra_hooks=)`` and ``test(cfg, weights=, progress=)`` run
    a step (default :func:`reidbox.engine.runner.train` / ``test``): the chain only plans the
    steps (:func:`plan_chain`), prepares their starting weights and records what happened.
    """
    if train is None or test is None:
        from . import runner

        train, test = train or runner.train, test or runner.test
    base = load_config(config_file or None, opts)
    labels = list(steps) if steps else list(base.CHAIN.STEPS)
    parse_steps(labels)  # a bad chain is one line before anything is written
    chain_dir = base.OUTPUT_DIR
    os.makedirs(chain_dir, exist_ok=True)
    setup_logger(None)  # chain messages on the console; each step then logs into its folder
    note = _ChainLog(chain_dir)
    note("chain %s in %s (config %s)", " -> ".join(labels), chain_dir, config_file or "defaults")
    if not config_file:
        note(
            "no --config-file: every step uses reidbox's bare defaults (%s) plus its "
            "dataset's configs/_base_ fragment and the command-line overrides; the paper's "
            "recipes are configs/chains/*.yml",
            describe_recipe(base),
        )
    plans = plan_chain(config_file, labels, opts, chain_dir)
    note("checked all %d steps: configs, datasets and models are readable", len(plans))
    note_plan(plans, note)
    manifest = ChainManifest.open(chain_dir, labels, config_file, opts)
    run = StepRunner(train, test, progress, extra_hooks)
    rows = [run_step(p, manifest, note, run) for p in plans]
    write_chain_summary(chain_dir, rows)
    note("summary written to %s", os.path.join(chain_dir, "summary.md"))
    return rows
