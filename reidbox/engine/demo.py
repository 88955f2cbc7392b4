"""The demo: train a PTL model and its plain twin on ``synthetic``, report both beside untrained.

Each model trains in ``<output>/<name>/``; the main model's numbers are copied to
``<output>/metrics.json`` and the table to ``<output>/results.md``.
"""

from __future__ import annotations

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


def run_demo(output_dir: str = "output/demo", runs: Sequence[Tuple[str, str]] = DEMO_RUNS,
             opts: Optional[Sequence[str]] = None, progress: bool = True) -> Dict[str, Dict]:
    """Train every run, test an untrained twin of each, write and return the results table."""
    rows: Dict[str, Dict] = {}
    records: Dict[str, Dict] = {}
    for name, config in runs:
        slug = name.replace("+", "_").lower()
        run_dir = os.path.join(output_dir, slug)
        cfg = load_config(config, list(opts or []) + ["OUTPUT_DIR", run_dir])
        untrained_cfg = load_config(config, list(opts or []) + ["OUTPUT_DIR",
                                                                 run_dir + "_untrained"])
        rows[f"{name} (untrained)"] = runner.test(untrained_cfg, weights=None, progress=progress)
        t0 = time.perf_counter()
        records[name] = runner.train(cfg, progress=progress)
        records[name]["train_seconds"] = time.perf_counter() - t0
        rows[name] = records[name]
    main_name = runs[0][0]
    main = dict(records[main_name], model=main_name)
    write_json(main, os.path.join(output_dir, "metrics.json"))
    shutil.copy(os.path.join(output_dir, main_name.replace("+", "_").lower(), "config.yaml"),
                os.path.join(output_dir, "config.yaml"))
    table = format_table(rows)
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("# reidbox demo on the synthetic dataset\n\n" + table + "\n")
    print("\n" + table + "\n")
    for name, rec in records.items():
        print(f"{name}: trained in {rec['train_seconds']:.0f}s")
    print(f"main model ({main_name}) metrics: {os.path.join(output_dir, 'metrics.json')}")
    return rows
