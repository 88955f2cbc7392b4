"""The demo behind ``make demo``: ResNet-18 with and without PTL's side network, under the
BN-neck head and under the paper's head, paired over seeds on the embedded synthetic dataset.

``tools/demo.py --output-dir output/demo [--transfer] [--seeds S ...] [KEY VALUE ...]``

``--transfer`` (``make demo-transfer``): pre-train on synthetic_a, fine-tune the same four
variants on synthetic_b, once per ``--seeds`` value. Both report per-seed values, mean ± std
and the paired differences with their 95% t-intervals (``tools/compare.py`` does it for any
config).
"""

# Both demos are paired comparisons (reidbox.engine.compare) of four variants that change one
# thing at a time; this module only chooses the configs, variants and pairs, and writes what a
# demo adds to the comparison's results (the main model's metrics, the transfer's preamble).
#
# run_demo (make demo): ResNet-18 from scratch on `synthetic`, four variants per seed from the
# same starting weights and data order: the plain model (BN-neck head) and its PTL twin, and
# the paper head without and with the cells. Pairs: each +PTL twin against its plain twin (what
# the cells add), and the paper's own comparison (PTL with its head against the plain BN-neck
# model), which mixes head and cells.
#
# run_transfer_demo (make demo-transfer): the paper's setting in miniature: pre-train the plain
# model once on one synthetic domain, then fine-tune the same four variants from it on another
# domain, several seeds.

from __future__ import annotations

import os
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ..cli import argument_parser, parse_args
from ..config import ConfigError, load_config
from ..engine import runner
from ..engine.run_folder import StartMode
from ..engine.compare import Variant, finished_run, format_compare, read_metrics, run_compare
from ..utils.misc import write_json
from ..utils.run_folder import CONFIG_FILE, FINAL_WEIGHTS, METRICS_FILE

# Names of shipped configs, not paths: load_config finds them from any directory, in a clone
# (configs/) and in an installed wheel (reidbox/configs). results.json records them as written.
DEMO_CONFIG = "configs/demo/baseline.yml"
TRANSFER_PRETRAIN = "configs/demo/transfer_pretrain.yml"
TRANSFER_FINETUNE = "configs/demo/transfer.yml"

# The four variants of both demos: the side network switched off and on, under the BN-neck head
# of the plain model and under the paper's head. Nothing else differs.
DEMO_VARIANTS: List[str] = [
    "resnet18: MODEL.PTL.ENABLED False",
    "resnet18+PTL: MODEL.PTL.ENABLED True",
    "resnet18-paperhead: MODEL.HEADS.NAME paper MODEL.PTL.ENABLED False",
    "resnet18-paperhead+PTL: MODEL.HEADS.NAME paper MODEL.PTL.ENABLED True",
]
DEMO_PAIRS: List[Tuple[str, str]] = [
    ("resnet18+PTL", "resnet18"),  # the cells, BN-neck head
    ("resnet18-paperhead+PTL", "resnet18-paperhead"),  # the cells, paper head
    ("resnet18-paperhead+PTL", "resnet18"),  # the paper's comparison: head and cells at once
]
# make demo's schedule: four variants x two seeds in the CPU time two 9-epoch runs took.
DEMO_OPTS = ["SOLVER.MAX_EPOCHS", "3", "SOLVER.WARMUP_EPOCHS", "0.5"]
MAIN = "resnet18+PTL"


def run_demo(
    output_dir: str = "output/demo",
    seeds: Sequence[int] = (0, 1),
    opts: Optional[Sequence[str]] = None,
    progress: bool = True,
    variants: Sequence[str] = tuple(DEMO_VARIANTS),
    pairs: Sequence[Tuple[str, str]] = tuple(DEMO_PAIRS),
    config: str = DEMO_CONFIG,
) -> Dict[str, object]:
    """Train (or reuse) every variant for every seed; the paired table goes to
    ``results.md`` / ``results.json``, the main model's first seed to ``metrics.json``.

    A rerun reuses a finished run of the same config and resumes an unfinished one, or one whose
    schedule grew (more epochs); a finished run of another config is refused in one line before
    anything trains (:func:`reidbox.engine.compare.finished_run`)."""
    t0, c0 = time.perf_counter(), time.process_time()
    opts = DEMO_OPTS + list(opts or [])
    result = _compare(variants, pairs, seeds, output_dir, config, opts, progress)
    parsed = [Variant.parse(v) for v in variants]
    main = next((v for v in parsed if v.name == MAIN), parsed[0])
    main_dir = os.path.join(output_dir, main.folder, f"seed{seeds[0]}")
    write_json(
        dict(read_metrics(main_dir), model=main.name), os.path.join(output_dir, METRICS_FILE)
    )
    shutil.copy(os.path.join(main_dir, CONFIG_FILE), os.path.join(output_dir, CONFIG_FILE))
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{took:.0f}s wall, {cpu:.0f}s CPU of this process (reused runs count as 0)")
    print(f"main model ({main.name}, seed {seeds[0]}) metrics: {output_dir}/metrics.json")
    return result


def _compare(variants, pairs, seeds, output_dir, config, opts, progress) -> Dict[str, object]:
    """The paired comparison of ``variants`` (their texts) on ``config`` with ``opts``."""
    parsed = [Variant.parse(v) for v in variants]
    return run_compare(parsed, list(seeds), output_dir, base_config=config, opts=opts,
                       pairs=_pairs_of(pairs, parsed), progress=progress)  # fmt: skip


def _pairs_of(pairs: Sequence[Tuple[str, str]], variants: Sequence[Variant]):
    """The demo's pairs whose two sides are among ``variants`` (a demo run with fewer)."""
    names = {v.name for v in variants}
    return [p for p in pairs if {p[0], p[1]} <= names]


def run_transfer_demo(
    output_dir: str = "output/demo/transfer",
    seeds: Sequence[int] = (0, 1, 2),
    opts: Optional[Sequence[str]] = None,
    progress: bool = True,
    pretrain_config: str = TRANSFER_PRETRAIN,
    finetune_config: str = TRANSFER_FINETUNE,
    variants: Sequence[str] = tuple(DEMO_VARIANTS),
    pairs: Sequence[Tuple[str, str]] = tuple(DEMO_PAIRS),
) -> Dict[str, object]:
    """Pre-train a plain model on one domain (once), test it on the target domain, then
    fine-tune every variant from it there, once per seed (:func:`run_compare`: the same
    starting weights, classifier included, and data order for every variant of a seed);
    ``results.md`` / ``results.json``.

    The pre-trained model is shared by every seed: the seeds measure the spread of fine-tuning
    from one given pre-trained model (the paper's question). Finished runs of the same config
    are reused and unfinished ones resumed; a finished run of another config, or fine-tuned
    from an earlier pre-training, is refused in one line. ``opts`` apply to every run
    (pre-training included)."""
    opts = list(opts or [])
    t_start, c_start = time.perf_counter(), time.process_time()
    pre_dir = os.path.join(output_dir, "pretrain")
    pre_cfg = load_config(pretrain_config, opts + ["OUTPUT_DIR", pre_dir])
    source, on_source = _pretrain(pre_cfg, output_dir, variants, progress)
    # The pre-trained model on the target domain, tested as the fine-tuned runs are.
    direct_cfg = load_config(finetune_config, opts + ["OUTPUT_DIR", pre_dir])
    target = direct_cfg.DATASETS.TEST[0]
    direct = runner.test(direct_cfg, weights=source, progress=progress)["per_dataset"][target]
    tune_opts = opts + ["MODEL.WEIGHTS", source]
    result = _compare(variants, pairs, seeds, output_dir, finetune_config, tune_opts, progress)
    total, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    keep = ("mAP", "rank1")
    result.update(
        source=list(pre_cfg.DATASETS.TRAIN),
        target=target,
        pretrained_on_source={k: {m: v[m] for m in keep} for k, v in on_source.items()},
        pretrained_on_target={m: direct[m] for m in keep},
        total_seconds=total,
        cpu_seconds=cpu,
    )
    write_json(result, os.path.join(output_dir, "results.json"))
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(_transfer_text(result))
    print(f"total {total:.0f}s wall, {cpu:.0f}s CPU")
    return result


def _pretrain(pre_cfg, output_dir: str, variants: Sequence[str], progress: bool):
    """Pre-train once (or reuse the finished pre-training); return its weights and its results
    on the source domain. Fine-tuned runs beside a pre-training about to be trained came from
    another one: refused."""
    pre_dir = pre_cfg.OUTPUT_DIR
    pretrained_now = not finished_run(pre_dir, pre_cfg)
    tuned = [os.path.join(output_dir, Variant.parse(v).folder) for v in variants]
    if pretrained_now and any(os.path.isdir(d) for d in tuned):
        raise ConfigError(
            f"{output_dir} holds fine-tuned runs but no finished pre-training of this config "
            f"in {pre_dir}: they came from another one; delete them or pass another --output-dir"
        )
    if pretrained_now:
        runner.train(pre_cfg, StartMode.RESUME, progress=progress)
    return os.path.join(pre_dir, FINAL_WEIGHTS), read_metrics(pre_dir)["per_dataset"]


def _transfer_text(result: Dict[str, object]) -> str:
    """The transfer demo's ``results.md``: the pre-trained model on both domains, then the
    comparison's table (:func:`format_compare`) and the time taken."""
    train, target = result["source"], result["target"]
    src = ", ".join(
        f"{k} {100 * v['mAP']:.1f} / {100 * v['rank1']:.1f}"
        for k, v in result["pretrained_on_source"].items()
    )
    direct = result["pretrained_on_target"]
    return (
        f"# reidbox transfer demo: {' + '.join(train)} -> {target}\n\n"
        f"Pre-trained once on {', '.join(train)} (mAP / rank-1 on its own "
        f"domain: {src}); not fine-tuned, on {target}: {100 * direct['mAP']:.1f} / "
        f"{100 * direct['rank1']:.1f}. Fine-tuned on {target} per seed, tested on {target} "
        f"(percent).\n\n{format_compare(result)}\n\n"
        f"Wall time {result['total_seconds']:.0f} s, CPU time of this process "
        f"{result['cpu_seconds']:.0f} s (runs reused from an earlier invocation count as 0).\n"
    )


def main(argv=None) -> int:
    p = argument_parser(__doc__)
    p.add_argument(
        "--output-dir",
        default=None,
        metavar="DIR",
        help="default output/demo (output/demo/transfer with --transfer)",
    )
    p.add_argument(
        "--transfer",
        action="store_true",
        help="the transfer demo: pre-train, then fine-tune the four variants from it",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="seeds (default 0 1; with --transfer 0 1 2)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("opts", nargs="*", help="config overrides for every run")
    args = parse_args(p, argv)
    if args.transfer:
        run_transfer_demo(
            args.output_dir or "output/demo/transfer",
            seeds=args.seeds or [0, 1, 2],
            opts=args.opts,
            progress=not args.no_progress,
        )
    else:
        run_demo(
            args.output_dir or "output/demo",
            seeds=args.seeds or [0, 1],
            opts=args.opts,
            progress=not args.no_progress,
        )
    return 0
