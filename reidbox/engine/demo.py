"""The demo: train a PTL model and its plain twin on ``synthetic``, report both beside untrained.

``run_transfer_demo`` is the paper's setting in miniature: pre-train on one synthetic domain,
fine-tune on another with and without PTL, several seeds (``make demo-transfer``).

Each model trains in ``<output>/<name>/``; the main model's numbers are copied to
``<output>/metrics.json`` and the table to ``<output>/results.md``.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ..config import load_config
from ..evaluation.evaluator import format_table
from ..utils.misc import write_json
from . import runner

logger = logging.getLogger("reidbox")

# (row name, config file); the first entry is the main model.
DEMO_RUNS: List[Tuple[str, str]] = [
    ("resnet18+PTL", "configs/demo/ptl.yml"),
    ("resnet18", "configs/demo/baseline.yml"),
]


def run_demo(
    output_dir: str = "output/demo",
    runs: Sequence[Tuple[str, str]] = DEMO_RUNS,
    opts: Optional[Sequence[str]] = None,
    progress: bool = True,
) -> Dict[str, Dict]:
    """Train every run, test an untrained twin of each, write and return the results table.

    A rerun reuses a finished run of the same config and resumes an unfinished one, or one whose
    schedule grew (more epochs); a finished run of another config is refused in one line
    (:func:`_finished`)."""
    rows: Dict[str, Dict] = {}
    records: Dict[str, Dict] = {}
    plan = []  # every config read and every earlier run judged before anything runs
    for name, config in runs:
        run_dir = os.path.join(output_dir, name.replace("+", "_").lower())
        cfg = load_config(config, list(opts or []) + ["OUTPUT_DIR", run_dir])
        untrained_cfg = load_config(
            config, list(opts or []) + ["OUTPUT_DIR", run_dir + "_untrained"]
        )
        finished = _finished(run_dir, cfg, resume_schedule=True)
        plan.append((name, run_dir, cfg, untrained_cfg, finished))
    for name, run_dir, cfg, untrained_cfg, finished in plan:
        rows[f"{name} (untrained)"] = runner.test(untrained_cfg, weights=None, progress=progress)
        if finished:
            logger.info("%s: finished earlier in %s, reused (delete it to retrain)", name, run_dir)
            records[name] = dict(_read_metrics(run_dir), train_seconds=None)
        else:
            t0 = time.perf_counter()
            records[name] = runner.train(cfg, resume=True, progress=progress)
            records[name]["train_seconds"] = time.perf_counter() - t0
        rows[name] = records[name]
    main_name = runs[0][0]
    main = dict(records[main_name], model=main_name)
    write_json(main, os.path.join(output_dir, "metrics.json"))
    shutil.copy(
        os.path.join(output_dir, main_name.replace("+", "_").lower(), "config.yaml"),
        os.path.join(output_dir, "config.yaml"),
    )
    table = format_table(rows)
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("# reidbox demo on the synthetic dataset\n\n" + table + "\n")
    print("\n" + table + "\n")
    for name, rec in records.items():
        took = rec["train_seconds"]
        print(f"{name}: " + (f"trained in {took:.0f}s" if took is not None else "reused"))
    print(f"main model ({main_name}) metrics: {os.path.join(output_dir, 'metrics.json')}")
    return rows


# The transfer demo: pre-train once, then fine-tune plain and PTL twins from it, several seeds.
TRANSFER_PRETRAIN = "configs/demo/transfer_pretrain.yml"
TRANSFER_FINETUNE = "configs/demo/transfer.yml"
TRANSFER_RUNS: List[Tuple[str, str]] = [("resnet18", "baseline"), ("resnet18+PTL", "ptl")]


# Keys that do not change a finished run's numbers: where it lives, how it was loaded, logged.
_REUSE_IGNORED = (
    "OUTPUT_DIR",
    "DATASETS.ROOT",
    "DEVICE",
    "DATALOADER.NUM_WORKERS",
    "MODEL.WEIGHTS",
    "SOLVER.LOG_PERIOD",
    "SOLVER.CHECKPOINT_PERIOD",
    "SOLVER.KEEP_CHECKPOINTS",
)


def _finished(run_dir: str, cfg, resume_schedule: bool = False) -> bool:
    """True when ``run_dir`` holds a finished run of ``cfg`` (reuse it); False when it holds
    none or an unfinished one (train, resuming), or, with ``resume_schedule``, a finished one
    whose config differs only in its schedule with at least as many epochs (``train_net
    --resume`` continues such a run the same way). A finished run that differs otherwise is
    refused (``ConfigError``): its numbers would be mixed into this table."""
    from ..config import ConfigError
    from ..config.loader import flat_config

    if not all(
        os.path.isfile(os.path.join(run_dir, n))
        for n in ("model_final.pth", "metrics.json", "config.yaml")
    ):
        return False
    with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
        saved = f.read()
    old, new = flat_config(saved), flat_config(cfg.dump())
    changed = [
        f"{k} ({old.get(k, 'absent')} -> {new.get(k, 'absent')})"
        for k in sorted(set(old) | set(new))
        if k not in _REUSE_IGNORED and old.get(k) != new.get(k)
    ]
    if not changed:
        return True
    run_changes = runner.resume_config_changes(saved, cfg)["run"] if resume_schedule else []
    done = int(old.get("SOLVER.MAX_EPOCHS", 0) or 0)
    if resume_schedule and not run_changes and cfg.SOLVER.MAX_EPOCHS >= done:
        logger.info(
            "%s: a finished run whose schedule changed (%s): resuming it",
            run_dir,
            "; ".join(changed[:4]),
        )
        return False
    raise ConfigError(
        f"{run_dir} holds a finished run of another config: "
        f"{'; '.join((run_changes or changed)[:4])}; delete that folder or pass another "
        "--output-dir"
    )


def _read_metrics(run_dir: str) -> Dict:
    import json

    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var**0.5


def transfer_table(per_seed: Dict[str, List[Dict]], direct: Dict, seeds: Sequence[int]) -> str:
    """Markdown: per-seed mAP / rank-1 (percent) of each fine-tuned model, mean ± sample std,
    the paired PTL - plain difference per seed (same seed = same starting weights and data
    order) and in how many seeds PTL scored higher. ``direct``: the pre-trained model on the
    target set, one model and no seed."""
    names = list(per_seed)
    lines = [
        "| model | "
        + " | ".join(f"seed {s} mAP / R1" for s in seeds)
        + " | mAP mean ± std | R1 mean ± std |",
        "|---|" + "---:|" * (len(seeds) + 2),
    ]
    lines.append(
        "| pre-trained, not fine-tuned | "
        + " | ".join("" for _ in seeds)
        + f" | {100 * direct['mAP']:.1f} (one model) | "
        f"{100 * direct['rank1']:.1f} (one model) |"
    )
    for name in names:
        recs = per_seed[name]
        m = [100 * r["mAP"] for r in recs]
        r1 = [100 * r["rank1"] for r in recs]
        cells = [f"{a:.1f} / {b:.1f}" for a, b in zip(m, r1)]
        (mm, ms), (rm, rs) = _mean_std(m), _mean_std(r1)
        lines.append(
            f"| {name}, fine-tuned | "
            + " | ".join(cells)
            + f" | {mm:.1f} ± {ms:.1f} | {rm:.1f} ± {rs:.1f} |"
        )
    if len(names) == 2:
        a, b = names
        dm = [100 * (x["mAP"] - y["mAP"]) for x, y in zip(per_seed[b], per_seed[a])]
        dr = [100 * (x["rank1"] - y["rank1"]) for x, y in zip(per_seed[b], per_seed[a])]
        (mm, ms), (rm, rs) = _mean_std(dm), _mean_std(dr)
        lines.append(
            f"| {b} - {a}, paired | "
            + " | ".join(f"{x:+.1f} / {y:+.1f}" for x, y in zip(dm, dr))
            + f" | {mm:+.1f} ± {ms:.1f} | {rm:+.1f} ± {rs:.1f} |"
        )
        lines.append(
            f"\n{b} scored higher than {a} in {sum(x > 0 for x in dm)} of {len(dm)} "
            f"seeds by mAP, {sum(x > 0 for x in dr)} of {len(dr)} by rank-1. "
            "± is the sample standard deviation over seeds (n - 1)."
        )
    return "\n".join(lines)


def run_transfer_demo(
    output_dir: str = "output/demo/transfer",
    seeds: Sequence[int] = (0, 1, 2),
    opts: Optional[Sequence[str]] = None,
    progress: bool = True,
    pretrain_config: str = TRANSFER_PRETRAIN,
    finetune_config: str = TRANSFER_FINETUNE,
) -> Dict[str, object]:
    """Pre-train a plain model on one domain (once), test it on the target domain, then
    fine-tune it there as a plain network and with PTL (fresh side network), once per seed;
    write ``results.md`` / ``results.json``.

    The pre-trained model is shared by every seed: the seeds measure the spread of fine-tuning
    from one given pre-trained model (the paper's question), and plain and PTL twins of a seed
    start from identical backbone weights. Finished runs of the same config are reused and
    unfinished ones resumed, so a rerun only trains what is missing; a finished run of another
    config (or fine-tuned from an earlier pre-training) is refused in one line. ``opts`` apply
    to every run (pre-training included).
    """
    from ..config import ConfigError
    from .chain import prepare_weights  # the chain's weight transfer: classifier replaced

    opts = list(opts or [])
    t_start, c_start = time.perf_counter(), time.process_time()
    timings: Dict[str, float] = {}
    pre_dir = os.path.join(output_dir, "pretrain")
    pre_cfg = load_config(pretrain_config, opts + ["OUTPUT_DIR", pre_dir])
    t0 = time.perf_counter()
    pretrained_now = not _finished(pre_dir, pre_cfg)
    if pretrained_now:
        runner.train(pre_cfg, resume=True, progress=progress)
    timings["pretrain"] = time.perf_counter() - t0
    source = os.path.join(pre_dir, "model_final.pth")
    on_source = _read_metrics(pre_dir)["per_dataset"]
    # The pre-trained model on the target domain, built and tested as the plain fine-tuning
    # runs are (same data options, same test settings), before any fine-tuning.
    direct_cfg = load_config(
        finetune_config, opts + ["MODEL.META_ARCHITECTURE", "baseline", "OUTPUT_DIR", pre_dir]
    )
    target = direct_cfg.DATASETS.TEST[0]
    t0 = time.perf_counter()
    direct = runner.test(direct_cfg, weights=source, progress=progress)["per_dataset"][target]
    timings["pretrained on target"] = time.perf_counter() - t0
    per_seed: Dict[str, List[Dict]] = {name: [] for name, _ in TRANSFER_RUNS}
    for seed in seeds:
        for name, arch in TRANSFER_RUNS:
            run_dir = os.path.join(output_dir, f"{name.replace('+', '_').lower()}_seed{seed}")
            cfg = load_config(
                finetune_config,
                opts
                + [
                    "MODEL.META_ARCHITECTURE",
                    arch,
                    "SEED",
                    str(seed),
                    "OUTPUT_DIR",
                    run_dir,
                    "MODEL.WEIGHTS",
                    os.path.join(run_dir, "init_weights.pth"),
                ],
            )
            t0 = time.perf_counter()
            trained = [
                f
                for f in glob.glob(os.path.join(run_dir, "*.pth"))
                if os.path.basename(f) != "init_weights.pth"
            ]  # checkpoints, final
            if pretrained_now and trained:
                raise ConfigError(
                    f"{run_dir} was fine-tuned from an earlier pre-training than "
                    f"the one just made in {pre_dir}; delete it or pass another "
                    "--output-dir"
                )
            if not _finished(run_dir, cfg):
                os.makedirs(run_dir, exist_ok=True)
                report = prepare_weights(cfg, source)
                logger.info(
                    "transfer demo %s seed %d: from %s, fresh: %d tensors",
                    name,
                    seed,
                    source,
                    len(report["new"]),
                )
                runner.train(cfg, resume=True, progress=progress)
            timings[f"{name} seed {seed}"] = time.perf_counter() - t0
            per_seed[name].append(_read_metrics(run_dir)["per_dataset"][target])
    table = transfer_table(per_seed, direct, list(seeds))
    total, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    keep = ("mAP", "rank1")
    result = {
        "source": list(pre_cfg.DATASETS.TRAIN),
        "target": target,
        "seeds": list(seeds),
        "pretrained_on_source": {k: {m: v[m] for m in keep} for k, v in on_source.items()},
        "pretrained_on_target": {m: direct[m] for m in keep},
        "per_seed": {k: [{m: r[m] for m in keep} for r in v] for k, v in per_seed.items()},
        "seconds": timings,
        "total_seconds": total,
        "cpu_seconds": cpu,
    }
    write_json(result, os.path.join(output_dir, "results.json"))
    src = ", ".join(
        f"{k} {100 * v['mAP']:.1f} / {100 * v['rank1']:.1f}" for k, v in on_source.items()
    )
    text = (
        f"# reidbox transfer demo: {' + '.join(pre_cfg.DATASETS.TRAIN)} -> {target}\n\n"
        f"Pre-trained once on {', '.join(pre_cfg.DATASETS.TRAIN)} (mAP / rank-1 on its own "
        f"domain: {src}), fine-tuned on {target} per seed, tested on {target} "
        f"(percent).\n\n" + table + "\n\n"
        f"Wall time {total:.0f} s, CPU time of this process {cpu:.0f} s (runs reused from "
        "an earlier invocation count as 0).\n"
    )
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print("\n" + table + "\n")
    print(
        f"total {total:.0f}s wall, {cpu:.0f}s CPU ("
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
        + ")"
    )
    return result
