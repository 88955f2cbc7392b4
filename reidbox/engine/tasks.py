"""Tasks: what a kind of job gives the one engine (data, evaluation, results).

The runner (:mod:`reidbox.engine.runner`) wires everything the kinds share: processes and DDP,
the model, solver, trainer, hooks and the final weights; the run folder, resume and results
files belong to :mod:`reidbox.engine.run_folder`.
A :class:`Task` supplies the rest: its datasets and training loader, how a model is built for
testing, how it is evaluated and how results are tabulated and recorded. ``TASK: reid``
(retrieval metrics under a named protocol) and ``TASK: classification`` (top-1 / top-5 error)
are the two registered here; a new kind registers a subclass in :data:`TASKS`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import (
    DatasetError,
    TestSet,
    build_classification_sets,
    build_classification_test_loader,
    build_classification_train_loader,
    build_test_loader,
    build_test_sets,
    build_train_loader,
    build_train_set,
)
from ..evaluation import EvalResult, EvalSettings
from ..evaluation.classification import (
    ClassificationResult,
    evaluate_classifier,
    format_classification,
)
from ..evaluation.evaluator import evaluate_model, format_table, rank_items, save_rank_lists
from ..modeling import build_inference_model
from ..utils.misc import count_parameters, write_json
from .run_folder import METRICS_FILE

logger = logging.getLogger("reidbox")

#: name -> result object with ``headline()`` (a flat dict of numbers), per test set
Results = Dict[str, Any]


@dataclass
class Outputs:
    """What an evaluation saves besides its numbers: into ``folder``, ranked lists
    (``rank_lists``) and rank-list images of the top ``vis_ranks`` (tasks that rank)."""

    folder: str
    rank_lists: bool = False
    vis_ranks: int = 0
    vis_queries: int = 10  # how many queries get an image
    vis_order: str = "random"  # which: random, worst (lowest AP first), best


def model_info(model: nn.Module, input_size: Tuple[int, int] = (64, 32)) -> Dict[str, Any]:
    """What a result should record about the model (parameters, PTL state, STD settings).

    ``parameters_m`` counts the test-time part (what an evaluation of the saved weights
    measures), so a training row and the evaluation rows of the same model agree;
    ``train_parameters_m`` adds the training-only heads (the classifier)."""
    from ..modeling.summary import test_time_parameters

    info: Dict[str, Any] = {
        "parameters_m": count_parameters(test_time_parameters(model, input_size)) / 1e6,
        "train_parameters_m": count_parameters(model) / 1e6,
    }
    for key, attr in (("ptl", "ptl_state_info"), ("std", "std_info")):
        describe = getattr(model, attr, None)
        described = describe() if callable(describe) else None
        if described is not None:  # a plain twin has no cells to describe
            info[key] = described
    return info


class Task:
    """The contract between the engine and one kind of job.

    Lifecycle: :meth:`load_train` (training) or :meth:`load_test` (testing) reads and checks
    the data once, before anything trains or is written; then the engine calls
    :meth:`train_loader`, :meth:`evaluate` (periodically and at the end), :meth:`write`.
    """

    name = ""
    #: The scalar results a run records per test set (``metrics.json``): what a comparison
    #: may name in ``--metrics``.
    metrics: tuple = ()

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.num_classes = 0
        self.train_set: Any = None
        self.test_sets: list = []  # what evaluate walks (set by load_train / load_test)

    # -- data
    def load_train(self) -> None:
        """Read the training set and the test sets; set :attr:`num_classes`."""
        raise NotImplementedError

    def load_test(self) -> None:
        """Read the test sets (and what testing needs besides)."""
        raise NotImplementedError

    def train_loader(self, rank: int, world_size: int) -> DataLoader:
        raise NotImplementedError

    @property
    def input_size(self) -> Tuple[int, int]:
        """(H, W) of a test image: for the model summary."""
        return tuple(self.cfg.INPUT.SIZE_TEST)

    def train_record(self) -> Dict[str, Any]:
        """Facts of the training data for ``metrics.json``."""
        return {}

    # -- models and results
    def test_model(self, weights: Optional[str], device: torch.device) -> nn.Module:
        raise NotImplementedError

    def evaluate(
        self,
        model: nn.Module,
        device: torch.device,
        progress: bool = True,
        out: Optional[Outputs] = None,
    ) -> Results:
        """Every test set (name -> result); ``out``: what to save besides the numbers."""
        out = out or Outputs(self.cfg.OUTPUT_DIR)
        return {
            ts.name: self.evaluate_set(model, ts, device, progress, out) for ts in self.test_sets
        }

    def evaluate_set(
        self, model: nn.Module, ts: Any, device: torch.device, progress: bool, out: Outputs
    ) -> Any:
        """One test set's result (an object with ``headline()``)."""
        raise NotImplementedError

    def format(self, results: Results) -> str:
        raise NotImplementedError

    def record(self, results: Results, model: nn.Module, **extra) -> Dict[str, Any]:
        """``metrics.json``: the first test set's headline at the top level, every set under
        ``per_dataset``, the model's facts, then ``extra``."""
        first = next(iter(results.values()))
        record: Dict[str, Any] = {"task": self.name, **first.headline()}
        record["per_dataset"] = {name: self.per_dataset(r) for name, r in results.items()}
        record.update(model_info(model, self.input_size))
        record["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record.update(extra)
        return record

    def per_dataset(self, result) -> Dict[str, Any]:
        return dict(result.headline())

    def write(self, results: Results, model: nn.Module, out_dir: str, **extra) -> Dict[str, Any]:
        """Write ``<out_dir>/metrics.json``, log the table; returns the record."""
        record = self.record(results, model, **extra)
        write_json(record, os.path.join(out_dir, METRICS_FILE))
        logger.info("results:\n%s", self.format(results))
        return record


class ReIDTask(Task):
    """Retrieval: P x K (or shuffled) identity batches; mAP / CMC / mINP on query vs gallery
    under ``TEST.PROTOCOL``, with rank lists and CMC plots."""

    name = "reid"
    metrics = ("mAP", "rank1", "rank5", "rank10", "mINP")

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.settings = EvalSettings.from_config(cfg)

    def load_train(self) -> None:
        self.train_set = build_train_set(self.cfg)
        self.load_test()  # checked before training; reused by every evaluation
        self.num_classes = self.train_set.num_train_pids
        logger.info(
            "train set %s: %d images, %d identities",
            self.train_set.name,
            len(self.train_set.train),
            self.num_classes,
        )

    def load_test(self) -> None:
        """``DATASETS.TEST`` parsed and checked (ids, files, cross-camera matches, non-empty
        splits), so a bad test set fails before epoch 1."""
        self.test_sets = build_test_sets(self.cfg)
        for ts in self.test_sets:
            for part in ("query", "gallery"):
                if not len(getattr(ts, part)):
                    raise DatasetError(
                        f"test set {ts.name} has an empty {part} under "
                        f"{self.cfg.DATASETS.ROOT}: add {part} images or remove "
                        f"{ts.name} from DATASETS.TEST"
                    )

    def train_loader(self, rank: int, world_size: int) -> DataLoader:
        return build_train_loader(self.cfg, self.train_set.train, rank=rank, world_size=world_size)

    def train_record(self) -> Dict[str, Any]:
        return {"evaluation": self.settings.describe()}

    def test_model(self, weights: Optional[str], device: torch.device) -> nn.Module:
        if not weights:
            logger.warning("no MODEL.WEIGHTS given: testing an untrained model")
        return build_inference_model(self.cfg, weights, device)

    def evaluate_set(
        self, model: nn.Module, ts: TestSet, device: torch.device, progress: bool, out: Outputs
    ) -> EvalResult:
        """``out.rank_lists`` writes ``<out.folder>/ranklist_<set>.csv`` (each query's top
        ``TEST.TOPK_SAVE`` gallery images); ``out.vis_ranks`` > 0 draws top-``vis_ranks``
        rank-list images into ``<out.folder>/ranks/<set>/``, from the same features and
        ranking."""
        cfg = self.cfg
        result, feats = evaluate_model(
            model,
            ts.query,
            ts.gallery,
            lambda items: build_test_loader(cfg, items),
            device,
            self.settings,
            progress,
            ts.name,
        )
        if feats is None:  # a DDP rank other than 0
            return result
        if out.rank_lists and cfg.TEST.TOPK_SAVE > 0:
            idx, dist = rank_items(feats, ts.query, ts.gallery, cfg.TEST.TOPK_SAVE, self.settings)
            path = os.path.join(out.folder, f"ranklist_{ts.name}.csv")
            save_rank_lists(path, ts.query, ts.gallery, idx, dist, result.ap)
            logger.info("top-%d rank lists: %s", cfg.TEST.TOPK_SAVE, path)
        if out.vis_ranks > 0:
            self.draw(
                ts,
                feats,
                os.path.join(out.folder, "ranks", ts.name),
                out.vis_ranks,
                out.vis_queries,
                order=out.vis_order,
                ap=result.ap,
            )
        return result

    def draw(
        self,
        ts: TestSet,
        feats,
        out: str,
        topk: int,
        num_queries: int = 10,
        query_indices: Optional[List[int]] = None,
        order: str = "random",
        ap=None,
    ) -> List[str]:
        """Rank-list images of ``num_queries`` queries chosen by ``order`` (random: seeded;
        worst / best: by AP), or of the given ones; each image's header names the query, its
        AP (``ap``, per query; computed here when not given) and the model and settings."""
        from ..evaluation.evaluator import evaluate_features
        from ..modeling import model_display_name
        from ..visualization import choose_queries, draw_rank_lists
        from ..visualization.results import describe_evaluation

        if ap is None:
            ap = evaluate_features(feats, ts.query, ts.gallery, self.settings).ap
        sel = choose_queries(len(ts.query), num_queries, query_indices, self.cfg.SEED, order, ap)
        idx, dist = rank_items(feats, ts.query, ts.gallery, topk, self.settings, sel)
        cfg = self.cfg
        header = " | ".join(
            [
                model_display_name(cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME),
                describe_evaluation(self.settings.describe(), short=True),
            ]
        )
        paths = draw_rank_lists(
            ts.query,
            ts.gallery,
            sel,
            idx,
            dist,
            out,
            tuple(cfg.INPUT.SIZE_TEST),
            ap=ap,
            header=header,
        )
        how = "given" if query_indices is not None else order
        logger.info(
            "rank-list images: top-%d of %d %s queries of %s (of %d) in %s",
            topk,
            len(sel),
            how,
            ts.name,
            len(ts.query),
            out,
        )
        return paths

    def format(self, results: Results) -> str:
        return format_table({n: r.headline() for n, r in results.items()})

    def record(self, results: Results, model: nn.Module, **extra) -> Dict[str, Any]:
        record = super().record(results, model, **extra)
        record["protocol"] = next(iter(results.values())).protocol
        for ts in self.test_sets:  # which data: tables never mix two test sets silently
            if ts.name in record["per_dataset"]:
                record["per_dataset"][ts.name]["test_data"] = ts.fingerprint()
        return record

    def per_dataset(self, r) -> Dict[str, Any]:
        return dict(
            r.headline(),
            cmc=[float(x) for x in r.cmc[:20]],
            num_query=r.num_queries,
            num_gallery=r.num_gallery,
            num_valid=r.num_valid,
            protocol=r.protocol,
            **r.verification,
        )

    def write(self, results: Results, model: nn.Module, out_dir: str, **extra) -> Dict[str, Any]:
        """``metrics.json`` (with the evaluation settings) and CMC plots beside it."""
        from ..visualization.results import describe_evaluation

        extra["evaluation"] = self.settings.describe()
        record = self.record(results, model, **extra)
        write_json(record, os.path.join(out_dir, METRICS_FILE))
        try:
            from ..visualization import plot_all_cmc

            from ..modeling import model_display_name

            cfg = self.cfg
            plot_all_cmc(  # cmc_<testset>.png beside metrics.json, saying what was measured
                results,
                out_dir,
                model=model_display_name(cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME),
                settings=describe_evaluation(extra["evaluation"], short=True),
            )
        except (ImportError, ValueError, OSError) as e:
            logger.warning("no CMC plot: %s", e)
        logger.info(
            "results (%s):\n%s", describe_evaluation(extra["evaluation"]), self.format(results)
        )
        return record


class ClassificationTask(Task):
    """Image classification (CIFAR): array datasets, shuffled batches, CIFAR transforms, top-1
    / top-5 error on each test set's test split."""

    name = "classification"
    metrics = ("top1_error", "top5_error", "loss")

    def load_train(self) -> None:
        self.load_test()
        t, i = self.train_set, self.cfg.INPUT
        logger.info(
            "train set %s: %d images, %d classes; augmentation: padding %d, flip %.2f",
            t.name,
            len(t.train),
            self.num_classes,
            i.PADDING,
            i.FLIP_PROB,
        )

    def load_test(self) -> None:
        self.train_set, self.test_sets = build_classification_sets(self.cfg)
        self.num_classes = self.train_set.num_classes

    def train_loader(self, rank: int, world_size: int) -> DataLoader:
        return build_classification_train_loader(self.cfg, self.train_set.train, rank, world_size)

    @property
    def input_size(self) -> Tuple[int, int]:
        return tuple(self.train_set.train.images.shape[1:3])

    def train_record(self) -> Dict[str, Any]:
        return {"train_images": len(self.train_set.train)}

    def test_model(self, weights: Optional[str], device: torch.device) -> nn.Module:
        return build_inference_model(
            self.cfg, weights, device, classifier=True, num_classes=self.num_classes
        )

    def evaluate_set(
        self, model: nn.Module, ts: Any, device: torch.device, progress: bool, out: Outputs
    ) -> ClassificationResult:
        loader = build_classification_test_loader(self.cfg, ts.test)
        return evaluate_classifier(model, loader, device, progress, ts.name)

    def format(self, results: Results) -> str:
        return format_classification(results)

    def record(self, results: Results, model: nn.Module, **extra) -> Dict[str, Any]:
        record = super().record(results, model, **extra)
        record["test_loss"] = record.pop("loss")  # top-level names clear of the training loss
        record["num_test_images"] = record.pop("num_images")
        record["augmentation"] = {
            "padding": self.cfg.INPUT.PADDING,
            "flip_prob": self.cfg.INPUT.FLIP_PROB,
        }
        return record


TASKS = {"reid": ReIDTask, "classification": ClassificationTask}


def build_task(cfg) -> Task:
    """The :class:`Task` named by ``cfg.TASK``."""
    if cfg.TASK not in TASKS:
        from ..config import ConfigError

        raise ConfigError(f"unknown TASK {cfg.TASK!r}; available: {', '.join(TASKS)}")
    return TASKS[cfg.TASK](cfg)
