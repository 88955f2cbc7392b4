"""The run folder (``OUTPUT_DIR``): its one owner.

What a run folder holds (the file names: spelled once, in :mod:`reidbox.utils.run_folder`, the
low floor that also keeps the lock and the run record), how a run starts in it
(:class:`StartMode`), its log, its results (:meth:`RunFolder.metrics`, the one reader) and the
one rule that says whether the folder holds *this* config's run (:func:`config_changes` ->
:class:`Comparison` -> :class:`Verdict`). ``train_net --resume``, transfer chains and the paired
comparisons (the demos) all ask this rule, so they never disagree about a folder:

- runtime keys (:data:`RUNTIME_KEYS`), path keys (:data:`PATH_KEYS`) and a chain's composition
  keys (``CHAIN.*`` but ``CHAIN.STEPS``) may change: the same run;
- evaluation-only keys (:data:`EVALUATION_KEYS`) may change: training is the same, a finished
  run is evaluated again (resumed with nothing left to train);
- schedule keys (:data:`SCHEDULE_KEYS`) may change while epochs remain to follow them: a grown
  ``SOLVER.MAX_EPOCHS`` continues a finished run from its last checkpoint;
- any other key makes it another run: refused (``--resume-force`` continues anyway).
"""

from __future__ import annotations

import hashlib
import json
import logging
import logging.handlers
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Union

import torch

from ..config import ConfigError, save_config
from ..config.loader import flat_config, flat_saved_config
from ..errors import InputError, StoppedWithRankZero, UserError
from ..utils import distributed as du
from ..utils.checkpoint import (
    Checkpointer,
    CheckpointError,
    atomic_save,
    load_file,
    match_state,
    nonfinite_tensors,
    rng_states,
    set_rng_states,
)
from ..utils.run_folder import (  # noqa: F401  the names are re-exported: engine code imports them here
    CONFIG_FILE,
    DEAD_RUN_PATTERNS,
    EVAL_DIR,
    FINAL_WEIGHTS,
    LAST_GOOD,
    LOCK_FILE,
    LOG_FILE,
    METRICS_FILE,
    RUN_PATTERNS,
    RUN_RECORD,
    TB_DIR,
    RunFolderError,
    acquire_lock,
    check_fresh_folder,
    check_overwrite,
    clear_run_files,
    read_metrics,
    read_run_record,
    remove_stale_temps,
    start_run_record,
)
from .solver import resume_schedule

logger = logging.getLogger("reidbox")


class StartMode(str, Enum):
    """How a training run starts in its folder (``train_net`` flags in brackets)."""

    NEW = "new"  # refuse a folder holding an earlier run's results
    RESUME = "resume"  # continue the folder's run from its newest checkpoint [--resume]
    OVERWRITE = "overwrite"  # delete the earlier run's files once this one starts [--overwrite]

    @classmethod
    def of(
        cls, start: Union[StartMode, str, bool, None] = None, resume=False, overwrite=False
    ) -> StartMode:
        """``start`` as a mode (a mode, its name, or True for RESUME); ``resume`` /
        ``overwrite`` are the older spelling of ``train(...)``, kept for callers."""
        if isinstance(start, bool) or start is None:
            resume, start = resume or bool(start), cls.NEW
        try:
            mode = cls(start)
        except ValueError:
            raise InputError(f"start {start!r}: use new, resume or overwrite") from None
        if resume or overwrite:
            if mode is not cls.NEW or (resume and overwrite):
                raise InputError("start a run one way: new, resume or overwrite")
            mode = cls.RESUME if resume else cls.OVERWRITE
        return mode


# ---------------------------------------------------------------------------- the one rule
#: How fast, how often to log and save: never what a run computes.
RUNTIME_KEYS = (
    "DEVICE",
    "DATALOADER.NUM_WORKERS",
    "TEST.IMS_PER_BATCH",
    "SOLVER.LOG_PERIOD",
    "SOLVER.CHECKPOINT_PERIOD",
    "SOLVER.KEEP_CHECKPOINTS",
    "MODEL.CHANNELS_LAST",
)
#: Where things are: the run's own folder, the datasets folder, the files weights start from.
#: A moved folder holds the same run.
PATH_KEYS = ("OUTPUT_DIR", "DATASETS.ROOT", "MODEL.WEIGHTS", "MODEL.BACKBONE.WEIGHTS")
#: How a chain composes runs; what they change in a run shows in its other keys. Only
#: ``CHAIN.STEPS`` (where a step's weights came from) is part of the run.
COMPOSITION_PREFIX, LINEAGE_KEYS = "CHAIN.", ("CHAIN.STEPS",)
#: Read only by evaluation: training is the same, the numbers are not (evaluated again).
EVALUATION_KEYS = ("TEST.", "DATASETS.TEST")
#: The LR schedule: a function of the global step, recomputed from the current config on
#: resume, so it may change while epochs remain to follow it.
SCHEDULE_KEYS = (
    "SOLVER.MAX_EPOCHS",
    "SOLVER.SCHEDULER",
    "SOLVER.STEPS",
    "SOLVER.GAMMA",
    "SOLVER.WARMUP_EPOCHS",
    "SOLVER.WARMUP_FACTOR",
    "SOLVER.BASE_LR",
)


def key_kind(key: str) -> str:
    """Which set ``key`` belongs to: runtime, path, composition, evaluation, schedule or run."""
    if key in RUNTIME_KEYS:
        return "runtime"
    if key in PATH_KEYS:
        return "path"
    if key.startswith(COMPOSITION_PREFIX) and key not in LINEAGE_KEYS:
        return "composition"
    if key in EVALUATION_KEYS or key.startswith(tuple(k for k in EVALUATION_KEYS if k[-1] == ".")):
        return "evaluation"
    return "schedule" if key in SCHEDULE_KEYS else "run"


def config_changes(saved: str, cfg) -> Dict[str, List[str]]:
    """Every key whose value differs between a recorded config (yaml text; keys it lacks count
    at their default) and ``cfg``, as ``KEY (old -> new)`` under its :func:`key_kind`."""
    old, new = flat_saved_config(saved or ""), flat_config(cfg.dump())
    out: Dict[str, List[str]] = {}
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            line = f"{k} ({old.get(k, 'absent')} -> {new.get(k, 'absent')})"
            out.setdefault(key_kind(k), []).append(line)
    return out


class Verdict(str, Enum):
    SAME = "same"  # a finished run of this config: reuse it
    CONTINUE = "continue"  # this config's run with epochs or an evaluation left: resume it
    OTHER = "other"  # another config's run: refuse


@dataclass
class Comparison:
    """A folder's run against a config: the changes by kind, epochs done and wanted."""

    changes: Dict[str, List[str]] = field(default_factory=dict)
    done: int = 0  # epochs the folder's run trained
    max_epochs: int = 0  # SOLVER.MAX_EPOCHS of the config
    finished: bool = False  # the folder holds its results

    def __getitem__(self, kind: str) -> List[str]:
        return self.changes.get(kind, [])

    @property
    def left(self) -> int:
        return max(0, self.max_epochs - self.done)

    @property
    def verdict(self) -> Verdict:
        if self.reason():
            return Verdict.OTHER
        if self.finished and not (self["schedule"] or self["evaluation"] or self.left):
            return Verdict.SAME
        return Verdict.CONTINUE

    def reason(self) -> str:
        """Why this is another run ("" when it is not)."""
        if self["run"]:
            return f"was trained with another config: {'; '.join(self['run'])}"
        if self.done > self.max_epochs:
            return (
                f"has {self.done} epochs done but SOLVER.MAX_EPOCHS is {self.max_epochs}; "
                f"raise it to at least {self.done}"
            )
        if self["schedule"] and not self.left:
            return (
                f"has all its {self.done} epochs done and its schedule changed "
                f"({'; '.join(self['schedule'])}): no epoch is left to follow the new one; "
                "raise SOLVER.MAX_EPOCHS to continue the run"
            )
        return ""

    def what(self) -> str:
        """What makes it another run, in short ("" when nothing does)."""
        if self["run"]:
            return "; ".join(self["run"][:6])
        if self.done > self.max_epochs:
            return f"{self.done} epochs done, SOLVER.MAX_EPOCHS {self.max_epochs}"
        if self["schedule"] and not self.left:
            return (
                f"{'; '.join(self['schedule'][:4])}, with no epoch left to follow the new "
                "schedule (raise SOLVER.MAX_EPOCHS to continue the run)"
            )
        return ""


def compare_run(saved: str, cfg, done: int, finished: bool) -> Comparison:
    """The one rule: a run recorded with ``saved`` (yaml) that trained ``done`` epochs."""
    return Comparison(config_changes(saved, cfg), done, int(cfg.SOLVER.MAX_EPOCHS), finished)


RESUME_FORCE_HINT = (
    "use the config it was trained with, another OUTPUT_DIR, or --resume-force "
    "(train(..., force_resume=True)) to continue it with the new config"
)


# ------------------------------------------------------------------------------ the folder
class RunFolder:
    """One run's folder: its files, how a run starts there, and whether it holds a config's run.

    ``cfg``: the config of the run that trains here (what the run's life in the folder needs:
    :meth:`open`, :meth:`start`, :meth:`load_resume`); judging a folder needs none."""

    def __init__(self, path: str, cfg=None) -> None:
        self.path, self.cfg = str(path), cfg

    def __repr__(self) -> str:
        return f"RunFolder({self.path!r})"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def final_weights(self) -> str:
        return self.file(FINAL_WEIGHTS)

    @property
    def config_file(self) -> str:
        return self.file(CONFIG_FILE)

    @property
    def metrics_file(self) -> str:
        return self.file(METRICS_FILE)

    def finished(self) -> bool:
        """The folder holds a finished run: its config, final weights and results."""
        return all(os.path.isfile(self.file(n)) for n in (CONFIG_FILE, FINAL_WEIGHTS, METRICS_FILE))

    def metrics(self) -> Dict[str, Any]:
        return read_metrics(self.metrics_file)

    def saved_config(self) -> Optional[str]:
        try:
            with open(self.config_file, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def checkpoints(self) -> List[str]:
        return Checkpointer(self.path).list()

    def epochs_done(self, saved: Optional[str] = None) -> int:
        """A run whose training ended (final weights written): the epochs its recorded config
        names (a resumed run removes its earlier final weights, so they are that config's);
        else the newest checkpoint's."""
        if os.path.isfile(self.final_weights):
            old = flat_saved_config(saved if saved is not None else self.saved_config() or "")
            return int(old.get("SOLVER.MAX_EPOCHS", 0) or 0)
        newest = self.checkpoints()[-1:]
        return int(Checkpointer.PATTERN.search(newest[0]).group(1)) if newest else 0

    def judge(self, cfg=None) -> Comparison:
        """This folder's run against ``cfg`` (default: the run's; :func:`compare_run`); a folder
        without a recorded config holds nothing to compare: CONTINUE (a resume then checks its
        checkpoint)."""
        cfg = cfg if cfg is not None else self.cfg
        saved = self.saved_config()
        if saved is None:
            return Comparison(max_epochs=int(cfg.SOLVER.MAX_EPOCHS))
        return compare_run(saved, cfg, self.epochs_done(saved), self.finished())

    # -- a training run's life in the folder
    def open(self, start: StartMode) -> None:
        """Rank 0 creates, locks and judges the folder for a run starting ``start`` (NEW refuses
        an earlier run's results, OVERWRITE a ``MODEL.WEIGHTS`` file it would delete); under DDP
        the other ranks stop with a refusal (rank 0's one line says why)."""
        refused: Optional[UserError] = None
        if du.is_main_process():
            try:
                self.prepare()
                if start is StartMode.NEW:
                    check_fresh_folder(self.path)
                elif start is StartMode.OVERWRITE:
                    check_overwrite(self.path, self.cfg.MODEL.WEIGHTS)
            except UserError as e:
                refused = e
        if du.get_world_size() > 1:
            if du.broadcast_object(refused is not None) and not du.is_main_process():
                raise StoppedWithRankZero(f"rank 0 refused OUTPUT_DIR {self.path}")
        if refused is not None:
            raise refused

    def prepare(self) -> None:
        """Create and lock the folder; remove temp files that killed writers left there."""
        make_folder(self.path)
        if not os.access(self.path, os.W_OK):
            raise RunFolderError(
                f"OUTPUT_DIR {self.path} is not writable; choose a writable folder"
            )
        acquire_lock(self.path)
        remove_stale_temps(self.path)

    def start(
        self,
        checkpointer: Checkpointer,
        start: StartMode,
        loaded: Optional[Dict[str, Any]] = None,
    ) -> None:
        """The run is valid and starts (rank 0): a new run deletes what an earlier run left
        (OVERWRITE: everything it wrote, else the leftovers of one that died before its first
        checkpoint); a resumed run's earlier results go (it is unfinished until it writes them
        again). Then ``config.yaml`` and ``run.json`` are written, the log opened and the
        checkpointer given this run's id."""
        if start is StartMode.RESUME:
            self._unfinish()
        else:
            patterns = RUN_PATTERNS if start is StartMode.OVERWRITE else DEAD_RUN_PATTERNS
            clear_run_files(self.path, patterns)
        record = start_run_record(self.path, start is StartMode.RESUME, loaded)
        checkpointer.bind(record)
        others = [
            os.path.basename(p)
            for p in checkpointer.list()
            if os.path.basename(p) not in record["checkpoints"]
        ]
        if others:
            logger.warning(
                "%s holds %d checkpoint(s) this run did not write (%s): they are neither "
                "loaded nor pruned; a same-numbered one is replaced",
                self.path,
                len(others),
                ", ".join(others[:5]),
            )
        save_config(self.cfg, self.path)
        attach_log_file(self.path)
        logger.info("run %s (%s), %s written", record["run_id"], RUN_RECORD, CONFIG_FILE)

    def _unfinish(self) -> None:
        """A resumed run is unfinished until it writes its results again: results of its
        earlier end must not pass for those of the config it now continues with."""
        gone = [n for n in (METRICS_FILE, FINAL_WEIGHTS) if os.path.isfile(self.file(n))]
        for name in gone:
            os.remove(self.file(name))
        if gone:
            logger.info("the run continues: %s of its earlier end removed", ", ".join(gone))

    # -- resume
    def load_resume(self, force: bool = False) -> Optional[Dict[str, Any]]:
        """The newest readable checkpoint of this folder's run, checked against ``cfg``
        (:meth:`check_resume`), or None. Called before the run writes anything, so a refused
        resume leaves the folder as it was."""
        record = read_run_record(self.path)
        checkpointer = Checkpointer(self.path, run_id=(record or {}).get("run_id"))
        state = checkpointer.load_latest()
        if state is None and os.path.isfile(self.final_weights):
            # Resuming would train from random weights and remove this run's results when it
            # starts: refuse, and leave them as they are.
            unreadable = [os.path.basename(p) for p in checkpointer.list()]
            raise RunFolderError(
                f"OUTPUT_DIR {self.path} holds a finished run ({FINAL_WEIGHTS}) but no readable "
                f"checkpoint of it to resume from"
                + (f" ({', '.join(unreadable[-3:])} unreadable)" if unreadable else "")
                + f"; its results stay as they are: test it with MODEL.WEIGHTS "
                f"{self.final_weights}, train it again with --overwrite, or choose another "
                "OUTPUT_DIR"
            )
        if state is not None:
            state["_schedule_changes"] = self.check_resume(state, force)
        return state

    def check_resume(self, state: Dict[str, Any], force: bool = False) -> List[str]:
        """Refuse (``ConfigError``, one line) a checkpoint of another run (the one rule, with
        the checkpoint's recorded config and epochs) or one that records no config; ``force``
        continues anyway. Returns the schedule changes."""
        path = state.get("_path", "the checkpoint")
        if not isinstance(state.get("config"), str):
            if force:
                logger.warning("%s records no config; resuming it anyway (--resume-force)", path)
                return []
            raise ConfigError(
                f"{path} records no config, so it cannot be matched to this run; "
                f"{RESUME_FORCE_HINT}"
            )
        done = int(state.get("epoch", 0))
        c = compare_run(state["config"], self.cfg, done, self.finished())
        why = c.reason()
        if c.done > c.max_epochs:  # not even forced: the weights would be recorded as fewer
            raise ConfigError(f"{path} {why}, or train into another OUTPUT_DIR")
        if why and not force:
            raise ConfigError(f"{path} {why}; {RESUME_FORCE_HINT}")
        if why:
            logger.warning("resuming %s although it %s (--resume-force)", path, why)
        if c["evaluation"]:
            logger.info("evaluation settings changed: %s", "; ".join(c["evaluation"]))
        return c["schedule"]

    def save_last_good(self, trainer, checkpointer: Checkpointer, rank: int = 0) -> str:
        """On a non-finite loss: save the newest state known finite to ``last_good.pth``
        (``last_good_rank<r>.pth`` on other ranks); returns a line saying what and where."""
        path = self.file(LAST_GOOD.format("" if rank == 0 else f"_rank{rank}"))
        saved = save_last_good(self.cfg, trainer, checkpointer, path)
        if saved:
            return f"last finite state ({saved}) saved to {path}"
        return "no finite state to save (none kept)"


# ------------------------------------------------------------------- resume into a trainer
def resume_trainer(trainer, state: Dict[str, Any], checkpointer: Checkpointer) -> None:
    """Load a checkpoint ``state`` (from :meth:`RunFolder.load_resume`) into ``trainer``: the
    model (a file that does not fit is one line, from the :class:`LoadReport`), optimizer and
    epoch; the *current* config's optimizer settings and LR schedule continue from the saved
    global step; this rank's RNG streams."""
    checkpointer.run_id = state.get("run_id") or checkpointer.run_id
    schedule = state.pop("_schedule_changes", [])
    report, _ = match_state(
        trainer.unwrapped_model, state["model"], state["_path"], skip_classifier=False
    )
    if not report.fits:
        raise CheckpointError(
            f"--resume: {state['_path']} does not fit this model ({report.examples(1)}); it was "
            "written for another architecture or number of identities: resume with "
            "the config it was trained with, or start a new OUTPUT_DIR"
        )
    opt = trainer.optimizer
    settings = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    recompute = isinstance(trainer.scheduler, torch.optim.lr_scheduler.LambdaLR)
    if recompute:
        state = {k: v for k, v in state.items() if k != "scheduler"}
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as e:  # the optimizer's groups, a missing entry
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"--resume: {state['_path']} does not fit this run ({why}); resume with the config "
            "it was trained with, or start a new OUTPUT_DIR"
        ) from None
    for group, fresh in zip(opt.param_groups, settings):
        group.update(fresh)  # momentum, weight decay, ... of the current config
    if recompute:
        resume_schedule(trainer.scheduler, trainer.global_step)
    rank, world = du.get_rank(), du.get_world_size()
    per_rank = state.get("rng_per_rank") or [state["rng"]]
    set_rng_states(per_rank[rank] if len(per_rank) == world else state["rng"])
    logger.info(
        "resumed from %s (epoch %d done, global step %d, lr %.3e)",
        state["_path"],
        trainer.start_epoch,
        trainer.global_step,
        opt.param_groups[0]["lr"],
    )
    if schedule:
        logger.info(
            "schedule changed since the checkpoint: %s; the remaining epochs follow the new "
            "schedule",
            "; ".join(schedule),
        )


def save_last_good(cfg, trainer, checkpointer: Checkpointer, path: str) -> str:
    """Save the newest state known finite to ``path``: the trainer's copy from its last clean
    loss read (the loop checks losses in bulk every ``LOG_PERIOD`` steps; its ``global_step``
    says which) when every tensor is finite, else the newest finite checkpoint of this run.
    Returns a description of what was saved ("" if nothing)."""
    state = dict(trainer.last_finite_state())
    state.update(rng=rng_states(), config=cfg.dump(), run_id=checkpointer.run_id)
    bad = nonfinite_tensors(state)
    if not bad:
        atomic_save(state, path)
        return f"global step {state['global_step']}"
    logger.warning(
        "current state holds non-finite tensors (%s); looking for the newest finite checkpoint",
        ", ".join(bad[:5]),
    )
    for ck in reversed(checkpointer.list()):
        try:
            old = load_file(ck)
        except CheckpointError:
            continue
        if old.get("run_id") not in (None, checkpointer.run_id) or nonfinite_tensors(old):
            continue
        atomic_save(old, path)
        return f"{os.path.basename(ck)}, global step {old.get('global_step', '?')}"
    return ""


# ------------------------------------------------------------------------- folders and logs
def make_folder(folder: str, what: str = "OUTPUT_DIR ") -> None:
    """``os.makedirs`` with one clear line (the path, the reason, the fix) on failure."""
    if not str(folder).strip():
        name = what.strip() or "the output folder"
        raise RunFolderError(
            f"{name} is empty ('{folder}'): set the folder the results go to, e.g. "
            f"{what.strip() or 'OUTPUT_DIR'} output/my_run"
        )
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise RunFolderError(
            f"cannot create {what}{folder}: {e.strerror}"
            f"{f' ({e.filename})' if e.filename else ''}; choose a writable "
            "folder (OUTPUT_DIR)"
        ) from None


def buffer_log() -> None:
    """Keep the ``reidbox`` log's lines in memory until the run's folder takes them
    (:func:`attach_log_file`): nothing is written before a run has been validated."""
    logger.addHandler(logging.handlers.MemoryHandler(1_000_000, logging.CRITICAL + 1))


def attach_log_file(folder: str) -> None:
    """Send the ``reidbox`` log to ``folder/log.txt`` from now on, with the lines kept so far."""
    mem = [h for h in logger.handlers if isinstance(h, logging.handlers.MemoryHandler)]
    if not mem:
        return
    fh = logging.FileHandler(os.path.join(folder, LOG_FILE), encoding="utf-8")
    fh.setFormatter(logging.Formatter("[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S"))
    for h in mem:
        h.setTarget(fh)
        h.flush()
        logger.removeHandler(h)
        h.close()
    logger.addHandler(fh)


def detach_log_file() -> None:
    """The run is over: its ``log.txt`` takes no more lines (what a script logs before the next
    run, such as a comparison preparing the next seed, went into the finished run's log)."""
    for h in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        logger.removeHandler(h)
        h.close()


# ------------------------------------------------------------------------------ evaluations
def eval_settings(cfg, weights: Optional[str]) -> Dict[str, Any]:
    """What an evaluation's numbers depend on besides the data: weights, test sets, input
    size, architecture and the evaluation settings (:class:`~reidbox.evaluation.EvalSettings`)."""
    from ..evaluation import EvalSettings

    e = EvalSettings.from_config(cfg)
    return dict(
        weights=os.path.abspath(weights) if weights else None,
        test_sets=list(cfg.DATASETS.TEST),
        size=list(cfg.INPUT.SIZE_TEST),
        **e.describe(),
        max_rank=e.max_rank,
        seed=e.seed,
        arch=[cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME],
    )


def eval_dir(cfg, weights: Optional[str]) -> str:
    """``OUTPUT_DIR/eval/<weights>_<test sets>[_flip][_rerank][_<metric>]_<hash>``: where a test
    of ``weights`` with these settings writes, so it never overwrites a training run's
    ``metrics.json`` nor an evaluation with other settings."""
    t = cfg.TEST
    stem = os.path.splitext(os.path.basename(weights))[0] if weights else "untrained"
    parts = [stem, "+".join(cfg.DATASETS.TEST)]
    parts += ["flip"] if t.FLIP_AUG else []
    parts += ["rerank"] if t.RERANK.ENABLED else []
    parts += [t.METRIC] if t.METRIC != "euclidean" else []
    digest = hashlib.sha1(json.dumps(eval_settings(cfg, weights), sort_keys=True).encode())
    name = re.sub(r"[^\w.+-]", "-", "_".join(parts))[:80] + "_" + digest.hexdigest()[:6]
    return os.path.join(cfg.OUTPUT_DIR, EVAL_DIR, name)


def prepare_eval_dir(out: str) -> None:
    """Create an evaluation's folder and send the log there (``log.txt``)."""
    make_folder(out, what="")
    remove_stale_temps(out)
    attach_log_file(out)
