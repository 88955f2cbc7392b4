#!/usr/bin/env python
"""Training-step time and peak memory of PTL models beside their plain backbones, side by side.

    python benchmarks/train_step.py                 # CPU: batch 8, paper input sizes
    python benchmarks/train_step.py --batch 32      # GPU: the paper's batch
    python benchmarks/train_step.py --pairs resnet50 --steps 5

Each model runs in its own child process so peak memory (GPU: max allocated; CPU: peak RSS of
the child) is its own. Also measures feature-extraction images/s (eval forward) and, with
``--data``, data-loading images/s on the synthetic dataset. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# name -> (plain config opts, PTL config opts, input size)
PAIRS = {
    "resnet50": (
        ["MODEL.BACKBONE.NAME", "resnet50"],
        ["MODEL.BACKBONE.NAME", "resnet50", "MODEL.PTL.ENABLED", "True"],
        (256, 128),
    ),
    "densenet161": (
        ["MODEL.BACKBONE.NAME", "densenet161"],
        ["MODEL.BACKBONE.NAME", "densenet161", "MODEL.PTL.ENABLED", "True"],
        (256, 128),
    ),
    "mgn": (
        [
            "MODEL.BACKBONE.NAME",
            "resnet50",
            "MODEL.META_ARCHITECTURE",
            "mgn",
            "MODEL.LOSSES.NAMES",
            "['cross_entropy', 'triplet']",
        ],
        [
            "MODEL.BACKBONE.NAME",
            "resnet50",
            "MODEL.META_ARCHITECTURE",
            "mgn",
            "MODEL.PTL.ENABLED",
            "True",
            "MODEL.LOSSES.NAMES",
            "['cross_entropy', 'triplet']",
        ],
        (384, 128),
    ),
}


def measure(opts, size, batch, steps, device_name):
    """One model in this process: median step time, eval images/s, peak memory (MB)."""
    import torch

    from reidbox.config import load_config
    from reidbox.modeling import build_model
    from reidbox.utils.misc import count_parameters

    device = torch.device(device_name)
    cfg = load_config(None, opts)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=751).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, *size, device=device)
    y = torch.arange(batch, device=device) // 4  # P x K with K = 4

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    for i in range(steps + 2):  # two warm-up steps
        sync()
        t = time.perf_counter()
        out = model(x)
        loss = sum(model.compute_losses(out, y).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= 2:
            times.append(time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        model(x)
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
        eval_ips = steps * batch / (time.perf_counter() - t)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "step_s": statistics.median(times),
        "eval_ips": eval_ips,
        "peak_mb": peak,
        "params_m": count_parameters(model) / 1e6,
    }


def data_loading(num_workers, seconds=20.0):
    """Images/s of the synthetic training loader (JPEG decode + train transforms)."""
    from reidbox.config import load_config
    from reidbox.data import build_train_loader, build_train_set

    cfg = load_config(
        "configs/demo/baseline.yml",
        ["DATALOADER.NUM_WORKERS", str(num_workers), "INPUT.SIZE_TRAIN", "[256, 128]"],
    )
    items = build_train_set(cfg).train
    loader = build_train_loader(cfg, items)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        for batch in loader:
            n += batch["images"].shape[0]
            if time.perf_counter() - t >= seconds:
                break
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    p.add_argument("--batch", type=int, default=0, help="default: 32 on GPU, 8 on CPU")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--data", action="store_true", help="also time data loading")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = args.batch or (32 if device.startswith("cuda") else 8)
    if args.child:
        name, variant = args.child.split(":")
        plain, ptl, size = PAIRS[name]
        print(
            json.dumps(
                measure(plain if variant == "plain" else ptl, size, batch, args.steps, device)
            )
        )
        return
    threads = torch.get_num_threads()
    print(
        f"device {device}, batch {batch}, {args.steps} timed steps (median), "
        f"torch {torch.__version__}, {threads} threads\n"
    )
    rows = [
        "| model | input | params (m) | step (s) | PTL/plain step | peak mem (MB) | eval img/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in args.pairs:
        res = {}
        for variant in ("plain", "ptl"):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                f"{name}:{variant}",
                "--batch",
                str(batch),
                "--steps",
                str(args.steps),
                "--device",
                device,
            ]
            out = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                check=True,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            res[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        size = PAIRS[name][2]
        for variant, label in (("plain", name), ("ptl", f"{name}+PTL")):
            r = res[variant]
            ratio = r["step_s"] / res["plain"]["step_s"]
            rows.append(
                f"| {label} | {size[0]}x{size[1]} | {r['params_m']:.2f} | "
                f"{r['step_s']:.3f} | {ratio:.2f}x | {r['peak_mb']:.0f} | "
                f"{r['eval_ips']:.1f} |"
            )
        print("\n".join(rows[-2:]), flush=True)
    print("\n" + "\n".join(rows))
    if args.data:
        print("\n| data loading (synthetic, 256x128 train transforms) | images/s |\n|---|---:|")
        for w in (0, 2):
            print(f"| {w} workers | {data_loading(w):.0f} |")


if __name__ == "__main__":
    main()
