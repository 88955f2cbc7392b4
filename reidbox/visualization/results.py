"""One markdown table from many runs' ``metrics.json`` (tools/collect_results.py)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Sequence

import yaml

COLUMNS = ["run", "model", "datasets", "PTL state", "mAP", "CMC-1", "CMC-5", "CMC-10", "mINP",
           "params (m)"]


def find_metrics(paths: Sequence[str]) -> List[str]:
    """Every ``metrics.json`` under ``paths`` (files or folders), sorted."""
    found = []
    for p in paths:
        if os.path.isfile(p):
            found.append(p)
        elif os.path.isdir(p):
            for root, _, files in os.walk(p):
                if "metrics.json" in files:
                    found.append(os.path.join(root, "metrics.json"))
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return sorted(set(found))


def _model_name(cfg: Dict[str, Any], metrics: Dict[str, Any]) -> str:
    m = cfg.get("MODEL", {})
    arch, backbone = m.get("META_ARCHITECTURE", "?"), m.get("BACKBONE", {}).get("NAME", "?")
    name = {"baseline": backbone, "ptl": f"{backbone}+PTL", "mgn": "MGN",
            "mgn_ptl": "MGN+PTL", "std": f"{backbone}+STD"}.get(arch, f"{arch}/{backbone}")
    std = metrics.get("std")
    if std:
        name += f" (lambda {std.get('lambda')})"
    return name


def collect_results(paths: Sequence[str]) -> List[Dict[str, Any]]:
    """One row per run and test set: model, train (a chain: its steps) -> test dataset, PTL
    state, metrics (fractions; :func:`format_results` prints percent)."""
    rows = []
    for path in find_metrics(paths):
        folder = os.path.dirname(path)
        try:
            with open(path, encoding="utf-8") as f:
                metrics = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e}); re-run the evaluation that "
                             "wrote it, or leave that folder out") from None
        if not isinstance(metrics, dict) or not any(
                k in metrics for k in ("mAP", "per_dataset", "top1_error")):
            raise ValueError(f"{path} has no results (none of mAP, per_dataset, top1_error): "
                             "not a reidbox metrics.json; leave that folder out")
        cfg: Dict[str, Any] = {}
        cfg_path = os.path.join(folder, "config.yaml")
        if os.path.isfile(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                cfg = yaml.safe_load(f) or {}
        train = metrics.get("train_datasets") or cfg.get("DATASETS", {}).get("TRAIN") or []
        chain = cfg.get("CHAIN", {}).get("STEPS") or []
        trained = " > ".join(chain) if chain else "+".join(train) or "?"  # a chain's path
        ptl = metrics.get("ptl") or {}
        state = (f"{ptl.get('cell', '')} {ptl.get('mode', ptl.get('state_mode', ''))}".strip()
                 if ptl else "-")
        per = metrics.get("per_dataset") or {"?": metrics}
        for test, m in per.items():
            rows.append({
                "run": os.path.relpath(folder), "model": _model_name(cfg, metrics),
                "datasets": f"{trained} -> {test}", "PTL state": state,
                "mAP": m.get("mAP"), "CMC-1": m.get("rank1"), "CMC-5": m.get("rank5"),
                "CMC-10": m.get("rank10"), "mINP": m.get("mINP"),
                "params (m)": metrics.get("parameters_m"),
            })
    return rows


def format_results(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown table; metrics in percent with 2 decimals, parameters in millions."""
    def cell(k: str, v: Any) -> str:
        if v is None:
            return "-"
        if k in ("mAP", "CMC-1", "CMC-5", "CMC-10", "mINP"):
            return f"{100 * float(v):.2f}"
        if k == "params (m)":
            return f"{float(v):.2f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" if i < 4 else "---:" for i in range(len(COLUMNS))) + "|"]
    lines += ["| " + " | ".join(cell(k, r.get(k)) for k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"
