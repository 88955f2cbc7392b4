#!/usr/bin/env python
"""Every backbone of the zoo, plain (the BNNeck baseline) and its +PTL twin (the same model with
``MODEL.PTL.ENABLED``): parameters and the
CPU time of one training step (forward, losses, backward, SGD step), the fastest of --steps
(on a shared machine the minimum is the least disturbed measurement, as timeit reports).

    python benchmarks/backbone_zoo.py                        # batch 8 at 256x128, 3 steps
    python benchmarks/backbone_zoo.py --size 64 32 --steps 1 --only osnet_x0_25

Prints a markdown table (docs/model_zoo.md quotes one, with the machine it ran on). CIFAR
backbones run at 32x32. No ImageNet file is read: the weights do not change the time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _model(name: str, ptl: bool, classes: int):
    import torch

    from reidbox.config import load_config
    from reidbox.modeling import build_model
    from reidbox.modeling.zoo import default_last_stride

    # the plain model and its exact twin: the same BNNeck baseline, the side network switched on
    opts = ["MODEL.PTL.ENABLED", str(ptl), "MODEL.BACKBONE.NAME", name]
    opts += ["MODEL.BACKBONE.LAST_STRIDE", str(default_last_stride(name))]
    torch.manual_seed(0)
    model = build_model(load_config(None, opts), num_classes=classes).train()
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def step_times(name: str, size, batch: int, steps: int, classes: int):
    """{arch: (parameters in millions, fastest step in seconds)} for plain and +PTL, their
    steps interleaved so that both see the same background load."""
    import torch

    models = {arch: _model(name, arch == "ptl", classes) for arch in ("baseline", "ptl")}
    images = torch.randn(batch, 3, *size)
    targets = torch.arange(batch) % max(batch // 4, 1)
    times = {arch: [] for arch in models}
    for i in range(steps + 1):  # the first step warms up (allocations, one-off setup)
        for arch, (model, opt) in models.items():
            t = time.perf_counter()
            loss = sum(model.compute_losses(model(images), targets).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times[arch].append(time.perf_counter() - t)
    return {
        arch: (sum(p.numel() for p in m.parameters()) / 1e6, min(times[arch]))
        for arch, (m, _) in models.items()
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[256, 128])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--classes", type=int, default=751, help="identities (Market-1501: 751)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--only", nargs="*", default=None, help="these backbones only")
    args = p.parse_args(argv)
    import torch

    from reidbox.modeling.zoo import backbone_names

    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.only or backbone_names()
    print(f"batch {args.batch}, {args.classes} identities, {torch.get_num_threads()} threads\n")
    print("| backbone | params plain | step plain (s) | params +PTL | step +PTL (s) |")
    print("|---|---|---|---|---|")
    for name in names:
        size = (32, 32) if name.endswith("_cifar") else tuple(args.size)
        cells = []
        for params, t in step_times(name, size, args.batch, args.steps, args.classes).values():
            cells += [f"{params:.2f}m", f"{t:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
