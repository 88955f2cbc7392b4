#!/usr/bin/env python
"""The full training loop's images/s beside the bare model step's, for every paper model pair.

    python benchmarks/train_loop.py --tiny                 # CPU smoke sizes (a minute or two)
    python benchmarks/train_loop.py                        # GPU: batch 64, paper input sizes
    python benchmarks/train_loop.py --amp --channels-last --workers 12 --pairs resnet50

For ResNet-50, DenseNet-161 and MGN, each plain and +PTL, one child process per model measures

* **bare step**: forward, losses, backward and optimizer step on one fixed batch already on the
  device, no data loading and no host reads (the model's ceiling);
* **loop**: :class:`reidbox.engine.Trainer` with the real ``train_net`` pieces (P x K loader
  decoding and augmenting JPEGs of the embedded synthetic set, latent-state reset, log lines,
  TensorBoard, loss reads every ``SOLVER.LOG_PERIOD``), timed over steps after a warm-up;

at the same batch, device, precision, memory format, optimizer and compile mode. Also the share
of loop time spent waiting for data and peak memory (CUDA: max allocated per phase; CPU: the
child's peak RSS). ``--data`` adds the loader alone: decode + augment images/s per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# name -> (plain opts, PTL opts, input size, tiny input size)
TRIPLET = ["MODEL.LOSSES.NAMES", "['cross_entropy', 'triplet']"]
PAIRS = {
    "resnet50": (
        ["MODEL.BACKBONE.NAME", "resnet50"],
        ["MODEL.BACKBONE.NAME", "resnet50", "MODEL.PTL.ENABLED", "True"],
        (256, 128),
        (64, 32),
    ),
    "densenet161": (
        ["MODEL.BACKBONE.NAME", "densenet161"],
        ["MODEL.BACKBONE.NAME", "densenet161", "MODEL.PTL.ENABLED", "True"],
        (256, 128),
        (64, 32),
    ),
    "mgn": (
        ["MODEL.BACKBONE.NAME", "resnet50", "MODEL.META_ARCHITECTURE", "mgn", *TRIPLET],
        [
            "MODEL.BACKBONE.NAME",
            "resnet50",
            "MODEL.META_ARCHITECTURE",
            "mgn",
            "MODEL.PTL.ENABLED",
            "True",
            *TRIPLET,
        ],
        (384, 128),
        (96, 32),
    ),
}


def _opts(args, model_opts, size):
    return [
        *model_opts,
        "MODEL.BACKBONE.PRETRAINED",
        "False",
        "DEVICE",
        args.device,
        "DATASETS.TRAIN",
        "['synthetic']",
        "DATASETS.TEST",
        "['synthetic']",
        "DATASETS.ROOT",
        args.data_root,
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
        str(args.ids),
        "DATASETS.SYNTHETIC.NUM_TEST_IDS",
        "4",
        "INPUT.SIZE_TRAIN",
        str(list(size)),
        "INPUT.SIZE_TEST",
        str(list(size)),
        "SOLVER.IMS_PER_BATCH",
        str(args.batch),
        "DATALOADER.NUM_INSTANCES",
        "4",
        "DATALOADER.NUM_WORKERS",
        str(args.workers),
        "SOLVER.AMP",
        str(args.amp),
        "MODEL.CHANNELS_LAST",
        str(args.channels_last),
        "MODEL.COMPILE",
        args.compile,
        "SOLVER.LOG_PERIOD",
        str(args.log_period),
        "SOLVER.MAX_EPOCHS",
        "1000",
        "SOLVER.WARMUP_EPOCHS",
        "0.0",
    ]


class _Done(Exception):
    pass


class _Device:
    """Synchronise and read peak memory on the measured device (CUDA or this process)."""

    def __init__(self, device):
        import torch

        self.torch, self.device, self.cuda = torch, device, device.type == "cuda"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def peak_mb(self):
        if self.cuda:
            return self.torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def reset_peak(self):
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats(self.device)


def _trainer(cfg, built, loader, dev, hooks=(), log_period=None):
    from reidbox.engine.trainer import Trainer

    model, optimizer, scheduler = built
    return Trainer(
        model,
        optimizer,
        scheduler,
        loader,
        cfg.SOLVER.MAX_EPOCHS if hooks else 1,
        dev.device,
        list(hooks),
        amp=cfg.SOLVER.AMP,
        channels_last=cfg.MODEL.CHANNELS_LAST,
        log_period=log_period or cfg.SOLVER.LOG_PERIOD,
        compile=cfg.MODEL.COMPILE,
    )


def _bare_step(args, cfg, loader, build, dev):
    """The Trainer's own step on one batch already on the device: the model's ceiling."""
    bare = _trainer(cfg, build(), [], dev, log_period=10**9)
    batch = next(iter(loader))
    batch = {k: v.to(dev.device) for k, v in batch.items() if dev.torch.is_tensor(v)}
    bare.model.train()
    for _ in range(args.warmup):
        bare.run_step(batch)
    bare._pending.clear()
    dev.sync()
    dev.reset_peak()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        bare.run_step(batch)
        bare._pending.clear()  # no loss reads
        bare._pending_meta.clear()
    dev.sync()
    images = batch["images"].shape[0]
    return {"bare_ips": args.steps * images / (time.perf_counter() - t0),
            "bare_peak_mb": dev.peak_mb(), "batch": images}  # fmt: skip


def _timing_hook(args, dev):
    from reidbox.engine.trainer import HookBase

    class Timing(HookBase):
        def __init__(self):
            self.images, self.data, self.t0, self.t1 = 0, 0.0, 0.0, 0.0

        def before_step(self):
            if self.trainer.global_step == args.warmup:
                dev.sync()
                self.t0 = time.perf_counter()

        def after_step(self):
            t = self.trainer
            if t.global_step > args.warmup:
                self.images += t.last_batch_size
                self.data += t.data_time
            if t.global_step == args.warmup + args.steps:
                dev.sync()
                self.t1 = time.perf_counter()
                raise _Done

    return Timing()


def _loop(args, cfg, loader, build, dev):
    """The real loader and the train_net hooks around the same step."""
    from reidbox.engine.hooks import LatentStateResetHook, ProgressHook, TensorBoardHook

    dev.reset_peak()
    timing = _timing_hook(args, dev)
    with tempfile.TemporaryDirectory() as tb_dir:
        tb = TensorBoardHook(tb_dir, cfg.SOLVER.LOG_PERIOD)
        hooks = [LatentStateResetHook(), ProgressHook(cfg.SOLVER.LOG_PERIOD, enabled=False), tb]
        trainer = _trainer(cfg, build(), loader, dev, hooks + [timing])
        try:
            trainer.train()
        except _Done:
            pass
        tb.close()
    loop_s = timing.t1 - timing.t0
    return {"loop_ips": timing.images / loop_s, "data_share": timing.data / loop_s,
            "loop_peak_mb": dev.peak_mb()}  # fmt: skip


def measure(args, opts):
    """One model in this process: bare-step and loop images/s, data-wait share, peak memory."""
    import torch

    from reidbox.config import load_config
    from reidbox.data import build_train_loader, build_train_set
    from reidbox.engine.solver import build_solver
    from reidbox.modeling import build_model

    cfg = load_config(None, opts)
    dev = _Device(torch.device(cfg.DEVICE))
    train_set = build_train_set(cfg)
    loader = build_train_loader(cfg, train_set.train)

    def build(seed=0):
        torch.manual_seed(seed)
        model = build_model(cfg, num_classes=train_set.num_train_pids).to(dev.device)
        if cfg.MODEL.CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)
        optimizer, scheduler = build_solver(cfg, model, len(loader))
        return model, optimizer, scheduler

    bare = _bare_step(args, cfg, loader, build, dev)
    return {**bare, **_loop(args, cfg, loader, build, dev)}


def data_rate(args, opts, workers, seconds):
    """Images/s of the training loader alone (JPEG decode + train transforms)."""
    from reidbox.config import load_config
    from reidbox.data import build_train_loader, build_train_set

    cfg = load_config(None, opts + ["DATALOADER.NUM_WORKERS", str(workers)])
    loader = build_train_loader(cfg, build_train_set(cfg).train)
    n, t, first = 0, 0.0, True
    while True:
        for batch in loader:
            if first:  # worker start-up is not throughput
                first, t = False, time.perf_counter()
                continue
            n += batch["images"].shape[0]
            if time.perf_counter() - t >= seconds:
                return n / (time.perf_counter() - t)


def _parse_args():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    p.add_argument(
        "--tiny",
        action="store_true",
        help="CPU smoke sizes: small inputs, batch 8, few steps, 16 identities",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=0, help="default 64 (--tiny: 8)")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default 30; --tiny 4)")
    p.add_argument("--warmup", type=int, default=0, help="untimed steps (default 5; --tiny 2)")
    p.add_argument("--workers", type=int, default=-1, help="loader workers (default 8; tiny 1)")
    p.add_argument("--ids", type=int, default=0, help="synthetic train identities")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", default="", help="MODEL.COMPILE mode ('' = eager)")
    p.add_argument("--log-period", type=int, default=20)
    p.add_argument("--data", action="store_true", help="also the loader alone, per worker")
    p.add_argument("--data-root", default="", help="where the synthetic set is generated")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.batch = args.batch or (8 if args.tiny else 64)
    args.steps = args.steps or (4 if args.tiny else 30)
    args.warmup = args.warmup or (2 if args.tiny else 5)
    args.workers = args.workers if args.workers >= 0 else (1 if args.tiny else 8)
    # Enough identities for warm-up + timed steps inside one epoch (P = batch / 4 per step).
    need = (args.warmup + args.steps + 1) * args.batch // 4
    args.ids = args.ids or (16 if args.tiny else max(150, need))
    return args


def _run_child(args, name, variant):
    """One model measured in a fresh process (peak memory and compile caches are its own)."""
    child_args = [a for a in sys.argv[1:] if a != "--data"]
    cmd = [sys.executable, os.path.abspath(__file__), *child_args, "--child",
           f"{name}:{variant}", "--data-root", args.data_root, "--device", args.device]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(f"{name}:{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pair_rows(name, size, res):
    rows = []
    for variant, label in (("plain", name), ("ptl", f"{name}+PTL")):
        r = res[variant]
        ratio = res["plain"]["bare_ips"] / r["bare_ips"]
        rows.append(
            f"| {label} | {size[0]}x{size[1]} | {r['bare_ips']:.1f} | "
            f"{r['loop_ips']:.1f} | {r['loop_ips'] / r['bare_ips']:.0%} | "
            f"{r['data_share']:.0%} | {r['bare_peak_mb']:.0f} / "
            f"{r['loop_peak_mb']:.0f} | {ratio:.2f}x |"
        )
    return rows


def _data_table(args):
    plain, _, size, tiny = PAIRS[args.pairs[0]]
    size = tiny if args.tiny else size
    opts = _opts(args, plain, size)
    print(
        f"\n| loader alone ({size[0]}x{size[1]}, decode + train transforms) | images/s | "
        "per worker |\n|---|---:|---:|"
    )
    for w in sorted({0, 1, args.workers}):
        rate = data_rate(args, opts, w, 3.0 if args.tiny else 20.0)
        print(f"| {w} workers | {rate:.0f} | {rate / max(w, 1):.0f} |", flush=True)


def main() -> None:
    args = _parse_args()
    import torch

    if args.child:
        name, variant = args.child.split(":")
        plain, ptl, size, tiny = PAIRS[name]
        opts = _opts(args, plain if variant == "plain" else ptl, tiny if args.tiny else size)
        print(json.dumps(measure(args, opts)))
        return
    tmp = None
    if not args.data_root:
        tmp = tempfile.TemporaryDirectory()
        args.data_root = tmp.name
    print(
        f"device {args.device}, batch {args.batch}, amp {args.amp}, channels_last "
        f"{args.channels_last}, compile {args.compile or 'off'}, {args.workers} workers, "
        f"{args.steps} timed steps after {args.warmup}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n",
        flush=True,
    )
    rows = [
        "| model | input | bare step img/s | loop img/s | loop / bare | waiting for data | "
        "peak mem bare / loop (MB) | PTL / plain (bare step time) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in args.pairs:
        size = PAIRS[name][3 if args.tiny else 2]
        res = {variant: _run_child(args, name, variant) for variant in ("plain", "ptl")}
        rows += _pair_rows(name, size, res)
        print("\n".join(rows[-2:]), flush=True)
    print("\n" + "\n".join(rows))
    if args.data:
        _data_table(args)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
