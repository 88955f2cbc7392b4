"""Paired comparisons: N seeds of two or more variants, like for like.

A variant is a config with overrides (``MODEL.PTL.ENABLED True``, another head, another file).
For each seed every variant trains in ``<output>/<variant>/seed<s>/`` with ``SEED`` s, and
starts from the same weights: the seed's initial state of the variant's *plain twin* (the model
with ``MODEL.PTL.ENABLED False``), built once under that seed (from the variant's
``MODEL.WEIGHTS`` without their classifier, if any) and written to ``<output>/init/``. A PTL
variant loads it as its plain twin's file: every shared tensor equal, the side network fresh
(the same for every PTL variant of that seed), joining with weight zero. The data order is the
seed's in every variant (the sampler is seeded by ``SEED`` and epoch, and the runner reseeds the
random stream after building the model, so augmentations do not depend on the model's size).

The result: per-seed metrics, mean ± sample std of each variant, and for each pair (A, B) the
paired differences A - B per seed with their mean, sample std, 95% t-interval and win count.
Finished runs of the same config are reused, unfinished ones (and ones whose schedule grew)
resumed, a run of another config refused in one line (:func:`finished_run`, the run folder's
one rule that ``train_net --resume`` and chains follow too), as the demos do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shlex
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..config import ConfigError, get_cfg_defaults, load_config
from ..utils.checkpoint import atomic_save
from ..utils.misc import seed_all, write_json
from ..utils.tables import markdown_table
from . import runner
from .run_folder import METRICS_FILE, PATH_KEYS, RUNTIME_KEYS, RunFolder, StartMode, Verdict

logger = logging.getLogger("reidbox")

#: What a comparison without named variants measures: the cells on top of the same model.
DEFAULT_VARIANTS = ("plain: MODEL.PTL.ENABLED False", "+PTL: MODEL.PTL.ENABLED True")

#: Keys that may differ from a finished run's and still reuse it: the run folder's one rule
#: (:mod:`reidbox.engine.run_folder`), kept under this name for the demos.
REUSE_IGNORED = RUNTIME_KEYS + PATH_KEYS


def read_metrics(run_dir: str) -> Dict[str, Any]:
    """A run's ``metrics.json`` (:meth:`RunFolder.metrics`, the one reader)."""
    return RunFolder(run_dir).metrics()


def finished_run(run_dir: str, cfg, resume_schedule: bool = True) -> bool:
    """True when ``run_dir`` holds a finished run of ``cfg`` (reuse it); False when it holds
    none, an unfinished one, or this config's run with epochs or an evaluation left (a grown
    ``SOLVER.MAX_EPOCHS``): train, resuming, as ``train_net --resume`` does. A run of another
    config is refused (``ConfigError``): its numbers would be mixed into a table of this
    config. The decision is the run folder's one rule (:meth:`RunFolder.judge`);
    ``resume_schedule`` is accepted for older callers and changes nothing."""
    folder = RunFolder(run_dir)
    if not os.path.isfile(folder.config_file):
        return False
    c = folder.judge(cfg)
    if c.verdict is Verdict.OTHER:
        raise ConfigError(
            f"{run_dir} holds a {'finished' if c.finished else 'unfinished'} run of another "
            f"config: {c.what()}; delete that folder or pass another --output-dir"
        )
    if c.verdict is Verdict.CONTINUE and c.finished:
        changed = c["schedule"] + c["evaluation"]
        logger.info(
            "%s: a finished run of this config with %s: resuming it",
            run_dir,
            "; ".join(changed[:4]) if changed else f"{c.left} epoch(s) left",
        )
    return c.verdict is Verdict.SAME


# ------------------------------------------------------------------------------- statistics
@dataclass
class Paired:
    """Paired differences ``a - b`` over seeds and what they say."""

    diffs: List[float]
    mean: float
    std: float  # sample standard deviation (n - 1); nan for one seed
    ci95: Optional[Tuple[float, float]]  # Student-t interval of the mean; None for one seed
    wins: int  # seeds where a > b
    ties: int

    @property
    def n(self) -> int:
        return len(self.diffs)


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1; nan for a single value, where
    :func:`statistics.stdev` would raise)."""
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return statistics.fmean(values), std


def paired(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Paired:
    """Paired statistics of ``a[i] - b[i]`` (same seed = same weights and data order)."""
    from scipy import stats

    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need equal, non-zero lengths; got {len(a)} and {len(b)}")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    mean, std = mean_std(diffs)
    ci: Optional[Tuple[float, float]] = None
    if len(diffs) > 1:
        half = stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * std / math.sqrt(len(diffs))
        ci = (mean - half, mean + half)
    return Paired(diffs, mean, std, ci, sum(d > 0 for d in diffs), sum(d == 0 for d in diffs))


# ---------------------------------------------------------------------------------- variants
@dataclass
class Variant:
    """``NAME: [CONFIG.yml] [KEY VALUE ...]``; without a file the comparison's base config."""

    name: str
    config: str = ""
    opts: List[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, sep, rest = text.partition(":")
        name = name.strip()
        if not sep or not name or "/" in name or name.startswith("."):
            raise ConfigError(
                f"variant {text!r}: write it as 'NAME: [CONFIG.yml] [KEY VALUE ...]', e.g. "
                "'+PTL: MODEL.PTL.ENABLED True' (NAME names its folder: no '/')"
            )
        tokens = shlex.split(rest)
        config = tokens.pop(0) if tokens and tokens[0].endswith((".yml", ".yaml")) else ""
        if len(tokens) % 2:
            raise ConfigError(f"variant {name!r}: overrides must be KEY VALUE pairs, got {tokens}")
        return cls(name, config, tokens)

    @property
    def folder(self) -> str:
        return self.name.replace("+", "_").replace(" ", "_").lower().strip("_") or "variant"


@dataclass
class Run:
    variant: Variant
    seed: int
    cfg: Any
    run_dir: str
    finished: bool = False


def plain_twin_config(cfg):
    """``cfg`` with the side network off and its options at their defaults: every variant that
    differs only by the side network has the same plain twin (and so the same starting point)."""
    twin = cfg.clone()
    twin.defrost()
    twin.MODEL.PTL = get_cfg_defaults().MODEL.PTL
    twin.MODEL.PTL.ENABLED = False
    return twin


def _init_key(twin, seed: int) -> str:
    weights = twin.MODEL.WEIGHTS
    stamp = ""
    if weights and os.path.isfile(weights):
        st = os.stat(weights)
        stamp = f"{os.path.abspath(weights)}:{st.st_size}:{st.st_mtime_ns}"
    text = twin.MODEL.dump() + repr((seed, list(twin.DATASETS.TRAIN), stamp))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def write_init(cfg, seed: int, folder: str) -> str:
    """The seed's starting weights of ``cfg``'s plain twin, written once into ``folder``."""
    from ..modeling import build_model
    from ..modeling.transfer import transfer_weights
    from ..utils.checkpoint import load_model_weights
    from .tasks import build_task

    twin = plain_twin_config(cfg)
    path = os.path.join(folder, f"init_{_init_key(twin, seed)}_seed{seed}.pth")
    if os.path.isfile(path):
        return path
    os.makedirs(folder, exist_ok=True)
    task = build_task(twin)
    task.load_train()
    n = task.num_classes
    seed_all(seed)
    model = build_model(twin, num_classes=n)
    if twin.MODEL.WEIGHTS:  # pre-trained weights without their classifier (new identities)
        tmp = path + ".from_weights"
        transfer_weights(twin, twin.MODEL.WEIGHTS, n, tmp)
        load_model_weights(model, tmp)
        os.remove(tmp)
    atomic_save({"model": model.state_dict(), "num_classes": n, "seed": seed}, path)
    logger.info("compare: seed %d starts every variant from %s", seed, path)
    return path


def plan(
    variants: Sequence[Variant],
    seeds: Sequence[int],
    output_dir: str,
    base_config: str = "",
    opts: Sequence[str] = (),
) -> List[Run]:
    """Every run's config, and whether it finished earlier, judged before anything trains."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or len({v.folder for v in variants}) != len(variants):
        raise ConfigError(f"variant names must differ (also as folders): {names}")
    if len(variants) < 2:
        raise ConfigError("a comparison needs at least two variants (--variant, twice or more)")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must name distinct seeds, got {list(seeds)}")
    runs = []
    for seed in seeds:
        for v in variants:
            config = v.config or base_config
            if not config:
                raise ConfigError(f"variant {v.name!r} names no config and --config-file is empty")
            run_dir = os.path.join(output_dir, v.folder, f"seed{seed}")
            try:
                cfg = load_config(config, list(opts) + v.opts + ["SEED", str(seed)])
            except ConfigError as e:  # name the variant whose overrides are wrong
                raise ConfigError(f"variant {v.name!r}: {e}") from None
            runs.append(Run(v, seed, cfg, run_dir))
    for run in runs:  # MODEL.WEIGHTS (the starting file) does not make another run
        run.finished = finished_run(run.run_dir, _with_init(run.cfg, run.run_dir, ""))
    return runs


def _with_init(cfg, run_dir: str, init: str):
    out = cfg.clone()
    out.defrost()
    out.OUTPUT_DIR = run_dir
    out.MODEL.WEIGHTS = init
    out.freeze()
    return out


def _check_metrics(metrics: Sequence[str], runs: Sequence[Run]) -> None:
    """Refuse a metric the runs' task does not record, before anything trains."""
    from .tasks import TASKS

    for task in sorted({r.cfg.TASK for r in runs}):
        known = getattr(TASKS.get(task), "metrics", ())
        unknown = [m for m in metrics if known and m not in known]
        if unknown:
            raise ConfigError(
                f"--metrics {unknown[0]}: a {task} run records {', '.join(known)}; "
                "pass --metrics with those names"
            )


def run_compare(
    variants: Sequence[Variant],
    seeds: Sequence[int],
    output_dir: str,
    base_config: str = "",
    opts: Sequence[str] = (),
    pairs: Optional[Sequence[Tuple[str, str]]] = None,
    metrics: Sequence[str] = ("mAP", "rank1"),
    progress: bool = True,
) -> Dict[str, Any]:
    """Train (or reuse) every variant for every seed; write ``results.json``, ``results.md``
    and ``compare.png`` into ``output_dir``; return the result."""
    runs = plan(variants, seeds, output_dir, base_config, opts)
    _check_metrics(metrics, runs)
    names = [v.name for v in variants]
    pairs = list(pairs or [(n, names[0]) for n in names[1:]])
    for a, b in pairs:
        if a not in names or b not in names or a == b:
            raise ConfigError(f"pair {a} - {b}: name two different variants of {names}")
    per_seed: Dict[str, Dict[int, Dict[str, float]]] = {n: {} for n in names}
    test_set = None
    for run in runs:
        if run.finished:
            logger.info("compare: %s seed %d finished earlier, reused", run.variant.name, run.seed)
        else:
            init = write_init(run.cfg, run.seed, os.path.join(output_dir, "init"))
            run_cfg = _with_init(run.cfg, run.run_dir, init)
            runner.train(run_cfg, StartMode.RESUME, progress=progress)
        record = read_metrics(run.run_dir)["per_dataset"]
        test_set = test_set or next(iter(record))
        missing = [m for m in metrics if m not in record[test_set]]
        if missing:
            raise ConfigError(
                f"metric {missing[0]!r} is not in {run.run_dir}/{METRICS_FILE} (has "
                f"{', '.join(sorted(record[test_set]))}); pass --metrics with those names"
            )
        per_seed[run.variant.name][run.seed] = {m: float(record[test_set][m]) for m in metrics}
    result = summarize(per_seed, list(seeds), pairs, list(metrics))
    result["test_set"] = test_set
    result["variants"] = {
        v.name: {"config": v.config or base_config, "opts": list(opts) + v.opts} for v in variants
    }
    write_json(result, os.path.join(output_dir, "results.json"))
    table = format_compare(result)
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(f"# Paired comparison on {test_set}\n\n{table}\n")
    result["plot"] = plot_compare(result, os.path.join(output_dir, "compare.png"))
    print("\n" + table + "\n")
    return result


def summarize(
    per_seed: Dict[str, Dict[int, Dict[str, float]]],
    seeds: List[int],
    pairs: Sequence[Tuple[str, str]],
    metrics: List[str],
) -> Dict[str, Any]:
    """Means, sample stds and the paired statistics of every pair and metric."""
    summary = {
        name: {m: dict(zip(("mean", "std"), mean_std([r[s][m] for s in seeds]))) for m in metrics}
        for name, r in per_seed.items()
    }
    paired_rows = []
    for a, b in pairs:
        for m in metrics:
            p = paired([per_seed[a][s][m] for s in seeds], [per_seed[b][s][m] for s in seeds])
            paired_rows.append(
                dict(
                    a=a,
                    b=b,
                    metric=m,
                    diffs=p.diffs,
                    mean=p.mean,
                    std=p.std,
                    ci95=list(p.ci95) if p.ci95 else None,
                    wins=p.wins,
                    ties=p.ties,
                    n=p.n,
                )
            )
    return {
        "seeds": seeds,
        "metrics": metrics,
        "order": list(per_seed),  # the variants in run order: JSON writers sort the dicts below
        "per_seed": {n: {str(s): r[s] for s in seeds} for n, r in per_seed.items()},
        "summary": summary,
        "pairs": paired_rows,
    }


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}"


def format_compare(result: Dict[str, Any]) -> str:
    """Markdown: one row per variant (per-seed values, mean ± std), then one per pair and metric
    (per-seed differences, mean ± std, 95% t-interval, wins); values in percent."""
    seeds, metrics = result["seeds"], result["metrics"]
    rows = []
    for name in result.get("order") or list(result["per_seed"]):
        by_seed = result["per_seed"][name]
        cells = [" / ".join(_pct(by_seed[str(s)][m]) for m in metrics) for s in seeds]
        summary = result["summary"][name]
        means = [f"{_pct(summary[m]['mean'])} ± {_pct(summary[m]['std'])}" for m in metrics]
        rows.append([name, *cells, *means])
    what = " / ".join(metrics)
    head = ["variant", *[f"seed {s} {what}" for s in seeds], *[f"{m} mean ± std" for m in metrics]]
    out = [markdown_table(head, rows)]
    prow = []
    for p in result["pairs"]:
        ci = p["ci95"]
        prow.append(
            [
                f"{p['a']} - {p['b']}",
                p["metric"],
                " ".join(f"{100 * d:+.1f}" for d in p["diffs"]),
                f"{100 * p['mean']:+.1f} ± {_pct(p['std'])}",
                f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "n/a (one seed)",
                f"{p['wins']}/{p['n']}",
            ]
        )
    head = ["paired difference", "metric", "per seed", "mean ± std", "95% t-interval", "wins"]
    out.append(markdown_table(head, prow))
    return "\n\n".join(out)


def plot_compare(result: Dict[str, Any], path: str) -> str:
    """One panel per metric: each seed's values across the variants (a line per seed), and the
    mean of every paired difference with its 95% t-interval beside it."""
    from ..visualization.plots import plot_paired

    return plot_paired(result, path)
