"""What the tools run: ``train(cfg)`` and ``test(cfg, weights)``, as plain functions."""

from __future__ import annotations

import hashlib
import json
import logging
import logging.handlers
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..config import save_config
from ..config.loader import flat_config, flat_saved_config, imported_plugins
from ..data import build_test_loader
from ..errors import InputError, StoppedWithRankZero, UserError
from ..modeling import build_model
from ..modeling.summary import format_summary, model_summary
from ..modeling.sync_bn import convert_sync_batchnorm
from ..utils.checkpoint import (
    Checkpointer,
    CheckpointError,
    NonFiniteStateError,
    atomic_save,
    load_file,
    load_model_weights,
    nonfinite_tensors,
    rng_states,
    set_rng_states,
)
from ..utils import distributed as du
from ..utils.logger import command_line, setup_logger
from ..utils.misc import resolve_device, seed_all
from ..utils.run_folder import (
    RunFolderError,
    acquire_lock,
    DEAD_RUN_PATTERNS,
    RUN_PATTERNS,
    check_fresh_folder,
    check_overwrite,
    clear_run_files,
    die_with_parent,
    read_run_record,
    remove_stale_temps,
    start_run_record,
)
from .hooks import (
    CheckpointHook,
    EvalHook,
    FreezeBackboneHook,
    LatentStateResetHook,
    ProgressHook,
    TensorBoardHook,
)
from .solver import build_solver, resume_schedule
from .tasks import Outputs, build_task
from .trainer import HookBase, NonFiniteLossError, Trainer

logger = logging.getLogger("reidbox")


def setup_run(cfg, progress: bool = True, role: str = "train", start: str = "new") -> torch.device:
    """Process group (under torchrun), output folder, console log, seeds; nothing written yet.

    ``role="train"`` locks ``OUTPUT_DIR`` (``run.lock``; a second run there stops with one line)
    and removes temp files of killed writers; ``start`` "new" (neither ``--resume`` nor
    ``--overwrite``) refuses a folder holding an earlier run's results, "overwrite" a
    ``MODEL.WEIGHTS`` that overwriting would delete, "resume" checks nothing more. ``config.yaml``,
    ``run.json`` and ``log.txt`` are written only once the run has been validated and starts
    (:func:`start_run_files`). Log lines until then are kept in memory. ``role="test"``
    writes only into its own ``eval/<settings>/`` folder (:func:`eval_dir`). Only rank 0
    writes files and logs at INFO; each rank seeds ``SEED + rank`` so ranks draw different
    augmentations. Returns this process's device.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        die_with_parent()  # a worker whose torchrun agent is killed must not go on writing
        device = du.init_distributed(cfg.DEVICE)
    else:
        device = resolve_device(cfg.DEVICE)
    main = du.is_main_process()
    refused: Optional[UserError] = None
    if main and role == "train":
        try:
            prepare_output_dir(cfg.OUTPUT_DIR)
            if start == "new":
                check_fresh_folder(cfg.OUTPUT_DIR)
            elif start == "overwrite":
                check_overwrite(cfg.OUTPUT_DIR, cfg.MODEL.WEIGHTS)
        except UserError as e:
            refused = e
    if du.get_world_size() > 1 and role == "train":
        # rank 0 alone judges the folder; the others stop with it (quietly: rank 0's one line
        # says why) instead of running on into DDP and dying there with a gloo/NCCL traceback
        if du.broadcast_object(refused is not None) and not main:
            raise StoppedWithRankZero(f"rank 0 refused OUTPUT_DIR {cfg.OUTPUT_DIR}")
    if refused is not None:
        raise refused
    setup_logger(None, level=logging.INFO if main else logging.WARNING)
    if main:
        logger.addHandler(logging.handlers.MemoryHandler(1_000_000, logging.CRITICAL + 1))
        logger.info("command: %s", command_line())  # the first line of log.txt
    seed_all(cfg.SEED + du.get_rank())
    logger.info(
        "output: %s, device: %s, world size %d, torch %s",
        cfg.OUTPUT_DIR,
        device,
        du.get_world_size(),
        torch.__version__,
    )
    for name, where in imported_plugins().items():  # the code this run imported, in log.txt
        logger.info("plugin %s imported from %s", name, where)
    return device


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


def prepare_output_dir(folder: str) -> None:
    """Create and lock ``folder``; remove temp files that killed writers left there."""
    make_folder(folder)
    if not os.access(folder, os.W_OK):
        raise RunFolderError(f"OUTPUT_DIR {folder} is not writable; choose a writable folder")
    acquire_lock(folder)
    remove_stale_temps(folder)


def attach_log_file(folder: str) -> None:
    """Send the ``reidbox`` log to ``folder/log.txt`` from now on, with the lines kept so far."""
    mem = [h for h in logger.handlers if isinstance(h, logging.handlers.MemoryHandler)]
    if not mem:
        return
    fh = logging.FileHandler(os.path.join(folder, "log.txt"), encoding="utf-8")
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


def start_run_files(
    cfg,
    checkpointer: Checkpointer,
    resume: bool,
    loaded: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
) -> None:
    """The run is valid and starts (rank 0): a new run deletes what an earlier run left (with
    ``overwrite`` everything it wrote, else the leftovers of one that died before its first
    checkpoint: :func:`~reidbox.utils.run_folder.clear_run_files`), then ``config.yaml`` and
    ``run.json`` are written, ``log.txt`` opened, and the checkpointer gets this run's id."""
    if not resume:
        clear_run_files(cfg.OUTPUT_DIR, RUN_PATTERNS if overwrite else DEAD_RUN_PATTERNS)
    record = start_run_record(cfg.OUTPUT_DIR, resume, loaded)
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
            cfg.OUTPUT_DIR,
            len(others),
            ", ".join(others[:5]),
        )
    save_config(cfg, cfg.OUTPUT_DIR)
    attach_log_file(cfg.OUTPUT_DIR)
    logger.info("run %s (run.json), config.yaml written", record["run_id"])


def warn_inert_settings(cfg) -> None:
    """Settings that are valid but make training do nothing, said before it starts."""
    if cfg.SOLVER.BASE_LR == 0:
        logger.warning(
            "SOLVER.BASE_LR is 0: the weights will not change during training (set a "
            "learning rate, e.g. SOLVER.BASE_LR 0.01, unless that is what you want)"
        )


def use_channels_last(cfg, device: torch.device) -> bool:
    """``MODEL.CHANNELS_LAST``, except bf16 autocast on the CPU: there torch 2.15's
    channels_last convolutions intermittently return NaN for finite inputs (3 of 4 fresh
    ResNet-18s at the first step in our measurement), so that pair trains contiguous."""
    if cfg.MODEL.CHANNELS_LAST and cfg.SOLVER.AMP and device.type == "cpu":
        logger.warning(
            "MODEL.CHANNELS_LAST ignored: bf16 autocast on the CPU gives NaN with "
            "channels_last convolutions in this torch; training contiguous"
        )
        return False
    return bool(cfg.MODEL.CHANNELS_LAST)


class _RNGSafeEval:
    """Evaluation must not change the training RNG streams (resume equals uninterrupted)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self):
        state = rng_states()
        try:
            return self.fn()
        finally:
            set_rng_states(state)


def build_hooks(
    cfg,
    checkpointer: Checkpointer,
    periodic_eval: Callable[[], Dict[str, float]],
    tb: Optional[TensorBoardHook],
    progress: bool,
    extra_hooks: Sequence[HookBase] = (),
) -> List[HookBase]:
    """The hooks every training run uses (every task), then ``extra_hooks``."""
    s = cfg.SOLVER
    return [
        LatentStateResetHook(),
        *([FreezeBackboneHook(s.FREEZE_BACKBONE_EPOCHS)] if s.FREEZE_BACKBONE_EPOCHS else []),
        ProgressHook(s.LOG_PERIOD, enabled=progress),
        *([tb] if tb else []),
        CheckpointHook(checkpointer, s.CHECKPOINT_PERIOD, {"config": cfg.dump()}),
        EvalHook(cfg.TEST.EVAL_PERIOD, _RNGSafeEval(periodic_eval), tb.log_metrics if tb else None),
        *extra_hooks,
    ]


# Keys that never change what training computes from a checkpoint on: where things are, how
# fast, how often to log/save, how to evaluate, and start weights (the checkpoint replaces them).
RESUME_IGNORED = (
    "OUTPUT_DIR",
    "DEVICE",
    "DATASETS.ROOT",
    "DATALOADER.NUM_WORKERS",
    "MODEL.WEIGHTS",
    "MODEL.BACKBONE.PRETRAINED",
    "MODEL.BACKBONE.WEIGHTS",
    "MODEL.CHANNELS_LAST",
    "SOLVER.LOG_PERIOD",
    "SOLVER.CHECKPOINT_PERIOD",
    "SOLVER.KEEP_CHECKPOINTS",
    "TEST.",
    "CHAIN.",
)
# The LR schedule: a function of the global step, recomputed from the new config on resume, so
# changing these continues the run with the new schedule from the saved step.
RESUME_SCHEDULE = (
    "SOLVER.MAX_EPOCHS",
    "SOLVER.SCHEDULER",
    "SOLVER.STEPS",
    "SOLVER.GAMMA",
    "SOLVER.WARMUP_EPOCHS",
    "SOLVER.WARMUP_FACTOR",
    "SOLVER.BASE_LR",
)
RESUME_FORCE_HINT = (
    "use the config it was trained with, another OUTPUT_DIR, or --resume-force "
    "(train(..., force_resume=True)) to continue it with the new config"
)


def resume_config_changes(saved: Optional[str], cfg) -> Dict[str, List[str]]:
    """Keys whose value differs between a checkpoint's recorded config (yaml text) and ``cfg``:
    ``{"schedule": [...], "run": [...]}`` as ``KEY (old -> new)`` strings; ignored keys left out.
    """
    old, new = flat_saved_config(saved or ""), flat_config(cfg.dump())
    out: Dict[str, List[str]] = {"schedule": [], "run": []}
    for k in sorted(set(old) | set(new)):
        if (
            old.get(k) == new.get(k)
            or k in RESUME_IGNORED
            or k.startswith(tuple(p for p in RESUME_IGNORED if p.endswith(".")))
        ):
            continue
        kind = "schedule" if k in RESUME_SCHEDULE else "run"
        out[kind].append(f"{k} ({old.get(k, 'absent')} -> {new.get(k, 'absent')})")
    return out


def check_resume(state: Dict[str, Any], cfg, force: bool = False) -> List[str]:
    """Refuse (``ConfigError``, one line) a checkpoint of another run: no recorded config, or a
    config that differs in a key that changes the run, or more epochs done than
    ``SOLVER.MAX_EPOCHS``; ``force`` continues anyway. Returns the schedule changes."""
    from ..config import ConfigError

    path = state.get("_path", "the checkpoint")
    if not isinstance(state.get("config"), str):
        if force:
            logger.warning("%s records no config; resuming it anyway (--resume-force)", path)
            return []
        raise ConfigError(
            f"{path} records no config, so it cannot be matched to this run; {RESUME_FORCE_HINT}"
        )
    changes = resume_config_changes(state["config"], cfg)
    done = int(state.get("epoch", 0))
    if done > cfg.SOLVER.MAX_EPOCHS and not force:
        raise ConfigError(
            f"{path} has {done} epochs done but SOLVER.MAX_EPOCHS is "
            f"{cfg.SOLVER.MAX_EPOCHS}; raise it to at least {done}, or "
            f"{RESUME_FORCE_HINT}"
        )
    if changes["run"]:
        if not force:
            raise ConfigError(
                f"{path} was trained with another config: "
                f"{'; '.join(changes['run'])}; {RESUME_FORCE_HINT}"
            )
        logger.warning(
            "resuming %s with a changed config (--resume-force): %s",
            path,
            "; ".join(changes["run"]),
        )
    return changes["schedule"]


def load_resume_state(cfg, force: bool = False) -> Optional[Dict[str, Any]]:
    """The newest readable checkpoint of ``OUTPUT_DIR``, checked against ``cfg``
    (:func:`check_resume`), or None. Called before the run writes anything, so a refused
    resume leaves the folder as it was."""
    record = read_run_record(cfg.OUTPUT_DIR)
    state = Checkpointer(cfg.OUTPUT_DIR, run_id=(record or {}).get("run_id")).load_latest()
    if state is not None:
        state["_schedule_changes"] = check_resume(state, cfg, force)
    return state


def run_trainer(
    cfg,
    trainer: Trainer,
    checkpointer: Checkpointer,
    resume: bool,
    force_resume: bool = False,
    state: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
) -> None:
    """Resume from the newest checkpoint of this folder's run if asked (``state``: already
    loaded by :func:`load_resume_state`), write the run's files, train; under DDP every rank
    then takes rank 0's weights and buffers, so what is evaluated is what was saved. A
    non-finite loss saves the last finite state to ``last_good.pth`` and re-raises.

    Resume checks the checkpoint's recorded config (:func:`check_resume`) and continues the
    *current* config's LR schedule and optimizer settings from the saved global step.
    """
    rank, world, main = du.get_rank(), du.get_world_size(), du.is_main_process()
    if resume:
        if state is None:
            state = load_resume_state(cfg, force_resume)
        if state is None:
            start = cfg.MODEL.WEIGHTS or (
                "ImageNet weights" if cfg.MODEL.BACKBONE.PRETRAINED else "random weights"
            )
            logger.info(
                "no checkpoint in %s yet: training starts at epoch 1 from %s", cfg.OUTPUT_DIR, start
            )
        else:
            checkpointer.run_id = state.get("run_id") or checkpointer.run_id
            schedule = state.pop("_schedule_changes", [])
            opt = trainer.optimizer
            settings = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
            recompute = isinstance(trainer.scheduler, torch.optim.lr_scheduler.LambdaLR)
            if recompute:
                state = {k: v for k, v in state.items() if k != "scheduler"}
            try:
                trainer.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError) as e:
                text = str(e)
                found = [
                    (re.search(p, text), what)
                    for p, what in (
                        (r"size mismatch for ([\w.]+)", "differs in shape"),
                        (r'Missing key\(s\) in state_dict: "([^"]+)"', "is not in the file"),
                        (r'Unexpected key\(s\) in state_dict: "([^"]+)"', "is not in the model"),
                    )
                ]
                why = next(
                    (f"{m.group(1)} {what}" for m, what in found if m),
                    (text.strip().splitlines() or [type(e).__name__])[0],
                )
                raise CheckpointError(
                    f"--resume: {state['_path']} does not fit this model ({why}); it was "
                    "written for another architecture or number of identities: resume with "
                    "the config it was trained with, or start a new OUTPUT_DIR"
                ) from None
            for group, fresh in zip(opt.param_groups, settings):
                group.update(fresh)  # momentum, weight decay, ... of the current config
            if recompute:
                resume_schedule(trainer.scheduler, trainer.global_step)
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
                    "schedule changed since the checkpoint: %s; the remaining epochs "
                    "follow the new schedule",
                    "; ".join(schedule),
                )
    if main:
        start_run_files(cfg, checkpointer, resume, state, overwrite)
    try:
        trainer.train()
    except KeyboardInterrupt:
        newest = checkpointer.list()[-1:] if main else []
        logger.warning(
            "interrupted (Ctrl-C) in epoch %d, global step %d; %s",
            trainer.epoch + 1,
            trainer.global_step,
            f"--resume continues from {newest[0]}" if newest else "no checkpoint written yet",
        )
        raise
    except (NonFiniteLossError, NonFiniteStateError) as e:
        path = os.path.join(cfg.OUTPUT_DIR, f"last_good{'' if main else f'_rank{rank}'}.pth")
        saved = save_last_good(cfg, trainer, checkpointer, path)
        raise NonFiniteLossError(
            f"{e}; stopped, "
            + (
                f"last finite state ({saved}) saved to {path}"
                if saved
                else "no finite state to save (none kept)"
            )
        ) from None
    broadcast_module_state(trainer.unwrapped_model)


def save_last_good(cfg, trainer: Trainer, checkpointer: Checkpointer, path: str) -> str:
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


def broadcast_module_state(model: nn.Module) -> None:
    """Under DDP, copy rank 0's parameters and buffers (BN statistics) to every rank in place."""
    if du.get_world_size() <= 1:
        return
    import torch.distributed as dist

    for t in model.state_dict().values():
        dist.broadcast(t, src=0)


def train(
    cfg,
    resume: bool = False,
    extra_hooks: Sequence[HookBase] = (),
    progress: bool = True,
    force_resume: bool = False,
    overwrite: bool = False,
) -> Dict[str, Any]:
    """Train on ``DATASETS.TRAIN``, evaluate on ``DATASETS.TEST``; returns the metrics record.

    Writes ``config.yaml``, ``checkpoint_*.pth``, ``model_final.pth`` and ``metrics.json``
    into ``OUTPUT_DIR``. ``resume`` continues from the newest readable checkpoint there; a
    checkpoint written with another config is refused unless ``force_resume``
    (:func:`check_resume`; schedule keys such as ``SOLVER.MAX_EPOCHS`` may change freely).
    Without ``resume``, a folder holding an earlier run's results is refused before anything
    is written, unless ``overwrite``: then that run's files are deleted when training starts.
    What differs between ``TASK`` kinds (data, evaluation, results) is the task's
    (:mod:`reidbox.engine.tasks`); one process or many under torchrun, alike.
    """
    state = load_resume_state(cfg, force_resume) if resume else None
    device = setup_run(
        cfg, progress, start="resume" if resume else "overwrite" if overwrite else "new"
    )
    rank, world, main = du.get_rank(), du.get_world_size(), du.is_main_process()
    progress = progress and main  # a bar on a terminal, timed log lines elsewhere
    warn_inert_settings(cfg)
    task = build_task(cfg)
    task.load_train()  # data read and checked once, before anything trains
    loader = task.train_loader(rank, world)
    model = build_model(cfg, num_classes=task.num_classes)
    if cfg.MODEL.WEIGHTS:
        # a starting point: a plain twin's file starts the PTL twin (side network fresh)
        load_model_weights(model, cfg.MODEL.WEIGHTS, partial=cfg.MODEL.WEIGHTS_PARTIAL, twin=True)
    # The data stream (augmentations, loader workers' seeds) must not depend on how many random
    # numbers the model's initialisation drew: twins that differ by a side network see the same
    # batches (reidbox.engine.compare).
    seed_all(cfg.SEED + rank)
    if cfg.MODEL.SYNC_BN and world > 1:
        model = convert_sync_batchnorm(model, device)
    model = model.to(device)
    channels_last = use_channels_last(cfg, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if world > 1:
        # PTL latent state lives on the wrapper as plain tensors (not buffers), so DDP neither
        # broadcasts nor averages it: each rank carries the state of its own batches.
        train_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # a frozen backbone (SOLVER.FREEZE_BACKBONE_EPOCHS) takes no gradient
            find_unused_parameters=cfg.SOLVER.FREEZE_BACKBONE_EPOCHS > 0,
        )
    if main:
        summary = model_summary(model, task.input_size)
        logger.info(
            "%s/%s\n%s",
            cfg.MODEL.META_ARCHITECTURE,
            cfg.MODEL.BACKBONE.NAME,
            format_summary(summary),
        )
    s = cfg.SOLVER
    optimizer, scheduler = build_solver(cfg, model, len(loader))
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, keep=s.KEEP_CHECKPOINTS)
    tb = TensorBoardHook(os.path.join(cfg.OUTPUT_DIR, "tb"), s.LOG_PERIOD) if main else None

    def periodic_eval() -> Dict[str, Dict[str, float]]:
        results = task.evaluate(model, device, progress)
        logger.info("evaluation:\n%s", task.format(results))
        return {n: r.headline() for n, r in results.items()}

    hooks = build_hooks(cfg, checkpointer, periodic_eval, tb, progress, extra_hooks)
    trainer = Trainer(
        train_model,
        optimizer,
        scheduler,
        loader,
        s.MAX_EPOCHS,
        device,
        hooks,
        amp=s.AMP,
        channels_last=channels_last,
        log_period=s.LOG_PERIOD,
        compile=cfg.MODEL.COMPILE,
        clip_grad_norm=s.CLIP_GRAD_NORM,
    )
    run_trainer(cfg, trainer, checkpointer, resume, force_resume, state, overwrite)
    if main:
        atomic_save(
            {"model": model.state_dict(), "num_classes": task.num_classes},
            os.path.join(cfg.OUTPUT_DIR, "model_final.pth"),
        )
    results = task.evaluate(model, device, progress)
    if tb is not None:
        tb.log_metrics({n: r.headline() for n, r in results.items()}, trainer.global_step)
        tb.close()
    extra = dict(
        epochs=s.MAX_EPOCHS,
        train_datasets=list(cfg.DATASETS.TRAIN),
        num_classes=task.num_classes,
        world_size=world,
        **task.train_record(),
    )
    if not main:
        du.barrier()
        return task.record(results, model, **extra)
    record = task.write(results, model, cfg.OUTPUT_DIR, **extra)
    logger.info(
        "done: weights %s, results %s",
        os.path.join(cfg.OUTPUT_DIR, "model_final.pth"),
        os.path.join(cfg.OUTPUT_DIR, "metrics.json"),
    )
    detach_log_file()
    du.barrier()
    return record


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
    return os.path.join(cfg.OUTPUT_DIR, "eval", name)


def test(
    cfg,
    weights: Optional[str] = None,
    progress: bool = True,
    vis_ranks: int = 0,
    vis_queries: int = 10,
    vis_order: str = "random",
) -> Dict[str, Any]:
    """Evaluate ``weights`` (default ``MODEL.WEIGHTS``) on ``DATASETS.TEST``; ``vis_ranks`` > 0
    also draws rank-list images of that many top matches. Results go to :func:`eval_dir`
    (``OUTPUT_DIR/eval/<settings>/``: ``metrics.json``, ``config.yaml``, ``log.txt``, rank
    lists, CMC plots)."""
    device = setup_run(cfg, progress, role="test")
    main = du.is_main_process()
    progress = progress and main  # a bar on a terminal, timed log lines elsewhere
    weights = weights or cfg.MODEL.WEIGHTS or None
    task = build_task(cfg)
    task.load_test()
    model = task.test_model(weights, device)
    out = eval_dir(cfg, weights)
    if main:
        prepare_eval_dir(out)
        save_config(cfg, out)  # what was evaluated, also where no training run's config is
    results = task.evaluate(
        model,
        device,
        progress,
        Outputs(
            out,
            rank_lists=True,
            vis_ranks=vis_ranks,
            vis_queries=vis_queries,
            vis_order=vis_order,
        ),
    )
    extra = dict(weights=weights, settings=eval_settings(cfg, weights))
    if not main:
        return task.record(results, model, **extra)
    record = task.write(results, model, out, **extra)
    logger.info("results written to %s", os.path.join(out, "metrics.json"))
    detach_log_file()
    return record


def rank_images(
    cfg,
    weights: Optional[str],
    out_dir: Optional[str] = None,
    topk: int = 10,
    num_queries: int = 10,
    query_indices: Optional[Sequence[int]] = None,
    progress: bool = True,
    order: str = "random",
) -> List[str]:
    """Rank-list images of ``weights`` (default ``MODEL.WEIGHTS``) on every ``DATASETS.TEST``
    set, into ``out_dir/<testset>/`` (default ``<eval_dir>/ranks``, where ``test_net --vis-ranks``
    draws for the same settings); no metrics computed."""
    from ..evaluation.evaluator import extract_query_gallery
    from ..evaluation.features import FeatureModel

    for name, flag, value in (
        ("topk", "--topk", topk),
        ("num_queries", "--num-queries", num_queries),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} ({flag}) is {value!r}; it must be a whole number >= 1")
    if cfg.TASK != "reid":
        from ..config import ConfigError

        raise ConfigError(f"rank lists need TASK reid (query and gallery); TASK is {cfg.TASK!r}")
    device = resolve_device(cfg.DEVICE)
    task = build_task(cfg)
    task.load_test()
    weights = weights or cfg.MODEL.WEIGHTS or None
    model = task.test_model(weights, device)
    out_dir = out_dir or os.path.join(eval_dir(cfg, weights), "ranks")
    paths: List[str] = []
    for ts in task.test_sets:
        feats = extract_query_gallery(
            FeatureModel.from_settings(model, task.settings),
            ts.query,
            ts.gallery,
            lambda items: build_test_loader(cfg, items),
            device,
            progress,
            ts.name,
        )
        paths += task.draw(
            ts,
            feats,
            os.path.join(out_dir, ts.name),
            topk,
            num_queries,
            list(query_indices) if query_indices is not None else None,
            order=order,
        )
    return paths


def prepare_eval_dir(out: str) -> None:
    """Create an evaluation's folder and send the log there (``log.txt``)."""
    make_folder(out, what="")
    remove_stale_temps(out)
    attach_log_file(out)
