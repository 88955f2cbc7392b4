#!/usr/bin/env python
"""Where PTL's cost comes from: FLOPs per side-network part and operator counts per step.

    python benchmarks/ptl_cost.py                    # MGN vs MGN+PTL and ResNet-50 vs +PTL
    python benchmarks/ptl_cost.py --batch 2 --time   # also CPU step time of each

Device-independent: forward FLOPs per image (torch.utils.flop_counter) of the whole model and
of each PTL part (image cell, fuse layers, trunk cells, one final cell per consumer branch), and
the number of ATen operators one training step (forward, losses, backward) dispatches, the
proxy for kernel launches on a GPU. ``--time`` adds the median CPU step time.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TRIPLET = ["MODEL.LOSSES.NAMES", "['cross_entropy', 'triplet']"]
# plain twin and PTL twin: the same model with MODEL.PTL.ENABLED off and on
PAIRS = {
    "mgn": ("mgn", "mgn+PTL", (384, 128)),
    "resnet50": ("baseline", "baseline+PTL", (256, 128)),
}


def _model(spec):
    import torch

    from reidbox.config import load_config
    from reidbox.modeling import build_model

    cfg = load_config(
        None,
        [
            "MODEL.BACKBONE.NAME",
            "resnet50",
            "MODEL.META_ARCHITECTURE",
            spec.split("+")[0],
            "MODEL.PTL.ENABLED",
            str(spec.endswith("+PTL")),
            "MODEL.BACKBONE.PRETRAINED",
            "False",
            *TRIPLET,
        ],
    )
    torch.manual_seed(0)
    return build_model(cfg, num_classes=751).train()


def analyse(arch, size, batch, timed):
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    model = _model(arch)
    x = torch.randn(batch, 3, *size)
    y = torch.arange(batch) // 4

    def step():
        out = model(x)
        sum(model.compute_losses(out, y).values()).backward()

    step()  # PTL: the second step carries state, as in training
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    per_module = counter.get_flop_counts()
    total = counter.get_total_flops() / batch / 1e9
    parts = {}
    for name, counts in per_module.items():
        if ".ptl." in name and name.count(".") == 2:
            part = name.split(".ptl.")[1]
            parts[part] = sum(counts.values()) / batch / 1e9
        elif ".ptl." in name and name.count(".") == 3 and ("cells" in name or "fuses" in name):
            parts[name.split(".ptl.")[1]] = sum(counts.values()) / batch / 1e9
    with Count() as c:
        step()
    views = sum(
        c.ops[k]
        for k in (
            "detach",
            "slice",
            "split",
            "view",
            "t",
            "expand",
            "unsqueeze",
            "_unsafe_view",
            "transpose",
            "as_strided",
        )
    )
    res = {
        "gflop": total,
        "parts": parts,
        "ops": sum(c.ops.values()),
        "kernels": sum(c.ops.values()) - views,
    }
    if timed:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        res["step_s"] = statistics.median(times)
    return res


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--time", action="store_true", help="also median CPU step time")
    args = p.parse_args()
    rows = [
        "| model | input | fwd GFLOP/img | ATen ops / step (non-view) | CPU step (s) |",
        "|---|---|---:|---:|---:|",
    ]
    breakdown = []
    for name in args.pairs:
        plain, ptl, size = PAIRS[name]
        a, b = (
            analyse(plain, size, args.batch, args.time),
            analyse(ptl, size, args.batch, args.time),
        )
        for label, r in ((name, a), (f"{name}+PTL", b)):
            ratio = f" ({r['gflop'] / a['gflop']:.2f}x)" if r is b else ""
            t = (
                f"{r['step_s']:.2f}" + (f" ({r['step_s'] / a['step_s']:.2f}x)" if r is b else "")
                if args.time
                else "-"
            )
            rows.append(
                f"| {label} | {size[0]}x{size[1]} | {r['gflop']:.2f}{ratio} | "
                f"{r['ops']} ({r['kernels']}) | {t} |"
            )
        ptl_total = sum(
            v
            for k, v in b["parts"].items()
            if k.count(".") == 0
            or k.startswith(("cells.", "out_cells.", "fuses."))
            and k.count(".") == 1
        )
        breakdown.append(
            f"\n{name}+PTL side network, forward GFLOP per image "
            f"(of {b['gflop'] - a['gflop']:.2f} added):"
        )
        breakdown += [
            f"  {k:<14} {v:6.3f}" for k, v in sorted(b["parts"].items()) if k.count(".") <= 1
        ]
        del ptl_total
    print(f"batch {args.batch}\n", flush=True)
    print("\n".join(rows))
    print("\n".join(breakdown))


if __name__ == "__main__":
    main()
