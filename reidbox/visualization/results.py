"""One markdown table from many runs' ``metrics.json`` (tools/collect_results.py)."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from ..utils.misc import atomic_write, write_text
from ..utils.run_folder import CONFIG_FILE, FINAL_WEIGHTS, METRICS_FILE, read_metrics
from ..utils.tables import markdown_table
from ..errors import InputError, MissingInputError

COLUMNS = [
    "run",
    "model",
    "datasets",
    "PTL state",
    "evaluation",
    "mAP",
    "CMC-1",
    "CMC-5",
    "CMC-10",
    "mINP",
    "params (m)",
    "epochs",
    "date",
]
# Classification runs (TASK: classification, CIFAR) report errors, not retrieval metrics.
CLS_COLUMNS = [
    "run",
    "model",
    "datasets",
    "PTL state",
    "evaluation",
    "top-1 err",
    "top-5 err",
    "params (m)",
    "epochs",
    "date",
]
_PERCENT = ("mAP", "CMC-1", "CMC-5", "CMC-10", "mINP", "top-1 err", "top-5 err")


def describe_evaluation(
    ev: Optional[Dict[str, Any]], protocol: Optional[str] = None, short: bool = False
) -> str:
    """The settings behind retrieval numbers: protocol, distance, flip, re-ranking.

    ``ev`` is ``metrics.json``'s ``evaluation`` record (None for runs written before it
    existed: only the protocol is known). ``short`` is the compact form for table cells.
    """
    if not ev:
        if not protocol:
            return "not recorded"
        return protocol if short else f"protocol {protocol} (other settings not recorded)"
    rr = ev.get("rerank")
    rerank = (
        f"re-ranked (k1 {rr['k1']}, k2 {rr['k2']}, lambda {rr['lambda_value']})"
        if rr
        else "not re-ranked"
    )
    flip = "flip-averaged" if ev.get("flip") else "no flip"
    parts = [
        f"protocol {ev.get('protocol', protocol)}",
        f"{ev.get('metric')} distance",
        flip,
        rerank,
    ]
    if short:
        parts = [
            str(ev.get("protocol", protocol)),
            str(ev.get("metric")),
            flip,
            "re-ranked" if rr else "no re-rank",
        ]
        return ", ".join(parts)
    if ev.get("ap_mode"):
        parts.append(f"AP {ev['ap_mode']}")
    parts.append("L2-normalised features" if ev.get("normalize", True) else "raw features")
    return ", ".join(parts)


def find_metrics(paths: Sequence[str]) -> List[str]:
    """Every ``metrics.json`` under ``paths`` (files or folders), sorted."""
    found = []
    for p in paths:
        if os.path.isfile(p):
            found.append(p)
        elif os.path.isdir(p):
            for root, _, files in os.walk(p):
                if METRICS_FILE in files:
                    found.append(os.path.join(root, METRICS_FILE))
        else:
            raise MissingInputError(f"no such file or folder: {p}")
    return sorted(set(found))


def _model_name(cfg: Dict[str, Any], metrics: Dict[str, Any]) -> str:
    """The meta-architecture's declared display name with the run's backbone."""
    from ..modeling import model_display_name

    m = cfg.get("MODEL", {})
    name = model_display_name(
        m.get("META_ARCHITECTURE", "?"),
        m.get("BACKBONE", {}).get("NAME", "?"),
        ptl=bool(m.get("PTL", {}).get("ENABLED", False)),
        head=m.get("HEADS", {}).get("NAME", "embedding"),
    )
    std = metrics.get("std")
    if std:
        name += f" (lambda {std.get('lambda')})"
    return name


def _same_result(metrics: Dict[str, Any]) -> str:
    """What makes two ``metrics.json`` the same result (a copy, such as the demo's top-level
    one, repeats it)."""
    keys = ("per_dataset", "parameters_m", "epochs", "train_datasets", "date", "weights")
    return json.dumps({k: metrics.get(k) for k in keys}, sort_keys=True, default=str)


def _test_data(m: Dict[str, Any]) -> Optional[str]:
    """Which test data a row was measured on: the fingerprint reidbox records, or for older
    results the query / gallery counts."""
    if m.get("test_data"):
        return str(m["test_data"])[:6] + (
            f" ({m['num_query']}q/{m['num_gallery']}g)" if "num_query" in m else ""
        )
    if "num_query" in m:
        return f"{m['num_query']}q/{m.get('num_gallery', '?')}g"
    return None


def _epochs(metrics: Dict[str, Any], folder: str, evaluated: bool) -> Optional[int]:
    """Training epochs of the weights: the run's own record, or for an evaluation under
    ``RUN/eval/`` the training run's ``metrics.json``."""
    if metrics.get("epochs") is not None:
        return metrics["epochs"]
    if evaluated:
        run = os.path.join(os.path.dirname(os.path.dirname(folder)), METRICS_FILE)
        if os.path.isfile(run):
            try:
                return read_metrics(run).get("epochs")
            except (ValueError, AttributeError):
                return None
    return None


def collect_results(paths: Sequence[str]) -> List[Dict[str, Any]]:
    """One row per run and test set: model, train (a chain: its steps) -> test dataset, PTL
    state, metrics (fractions; :func:`format_results` prints percent), parameters, epochs,
    date, and ``test data`` (which images the numbers were measured on). A ``metrics.json``
    that repeats another one (the demo's top-level copy) gives no second row."""
    rows: List[Dict[str, Any]] = []
    seen: Dict[str, str] = {}
    # a run folder's own record first, so a copy elsewhere is the one left out
    has_weights = lambda p: os.path.isfile(os.path.join(os.path.dirname(p), FINAL_WEIGHTS))  # noqa: E731
    for path in sorted(find_metrics(paths), key=lambda p: (not has_weights(p), p)):
        metrics = read_metrics(path)
        if not isinstance(metrics, dict) or not any(
            k in metrics for k in ("mAP", "per_dataset", "top1_error")
        ):
            raise InputError(
                f"{path} has no results (none of mAP, per_dataset, top1_error): "
                "not a reidbox metrics.json; leave that folder out"
            )
        key = _same_result(metrics)
        if key in seen:
            logging.getLogger("reidbox").info("%s repeats %s: one row", path, seen[key])
            continue
        seen[key] = path
        rows += _result_rows(path, metrics)
    return rows


def _run_config(folder: str) -> Tuple[Dict[str, Any], bool]:
    """(the config that says what was trained, whether the folder is an evaluation with no
    training run above it)."""
    cfg_path = os.path.join(folder, CONFIG_FILE)
    evaluated_only = os.path.basename(os.path.dirname(folder)) == "eval"
    if evaluated_only:
        # a test_net result (OUTPUT_DIR/eval/<settings>/): the training run's config is two
        # up; the evaluation's own config.yaml names the model where no run trained
        run_cfg = os.path.join(os.path.dirname(os.path.dirname(folder)), CONFIG_FILE)
        cfg_path = run_cfg if os.path.isfile(run_cfg) else cfg_path
        evaluated_only = cfg_path != run_cfg
    if not os.path.isfile(cfg_path):
        return {}, evaluated_only
    with open(cfg_path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}, evaluated_only


def _trained_on(cfg: Dict[str, Any], metrics: Dict[str, Any], evaluated_only: bool) -> str:
    """What the weights were trained on: a chain's path, the training sets, or "untrained"."""
    # an evaluation's config says what was tested, not what the weights were trained on
    known = {} if evaluated_only else cfg.get("DATASETS", {})
    train = metrics.get("train_datasets") or known.get("TRAIN") or []
    chain = cfg.get("CHAIN", {}).get("STEPS") or []
    trained = " > ".join(chain) if chain else "+".join(train) or "?"
    if "weights" in metrics and not metrics["weights"] and not metrics.get("train_datasets"):
        trained = "untrained"  # test_net without weights: the model as built
    return trained


def _result_rows(path: str, metrics: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The rows of one ``metrics.json``: one per test set."""
    folder = os.path.dirname(path)
    cfg, evaluated_only = _run_config(folder)
    trained = _trained_on(cfg, metrics, evaluated_only)
    ptl = metrics.get("ptl") or {}
    state = f"{ptl.get('cell', '')} {ptl.get('mode', ptl.get('state_mode', ''))}".strip()
    in_eval = os.path.basename(os.path.dirname(folder)) == "eval"
    date = metrics.get("date") or time.strftime("%Y-%m-%d", time.gmtime(os.path.getmtime(path)))
    common = {
        "run": os.path.relpath(folder),
        "model": _model_name(cfg, metrics),
        "PTL state": state if ptl else "-",
        "params (m)": metrics.get("parameters_m"),
        "epochs": _epochs(metrics, folder, in_eval),
        "date": str(date)[:10],
    }
    rows = []
    for test, m in (metrics.get("per_dataset") or {"?": metrics}).items():
        datasets = f"{trained} -> {test}"
        if metrics.get("task") == "classification" or "top1_error" in m:
            rows.append(dict(common, task="classification", datasets=datasets,
                             evaluation=f"top-k error on {m.get('num_images', '?')} images",
                             **{"top-1 err": m.get("top1_error"),
                                "top-5 err": m.get("top5_error")}))  # fmt: skip
            continue
        evaluation = describe_evaluation(
            metrics.get("evaluation"), m.get("protocol") or metrics.get("protocol"), short=True
        )
        scores = {"mAP": m.get("mAP"), "CMC-1": m.get("rank1"), "CMC-5": m.get("rank5"),
                  "CMC-10": m.get("rank10"), "mINP": m.get("mINP")}  # fmt: skip
        rows.append(dict(common, task="reid", datasets=datasets, test=test,
                         test_data=_test_data(m), cmc=m.get("cmc"), evaluation=evaluation,
                         **scores))  # fmt: skip
    return rows


def _table(rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(k: str, v: Any) -> str:
        if v is None:
            return "-"
        if k in _PERCENT:
            return f"{100 * float(v):.2f}"
        if k == "params (m)":
            return f"{float(v):.2f}"
        return str(v)

    return (
        markdown_table(
            columns,
            [[cell(k, r.get(k)) for k in columns] for r in rows],
            right=[c in _PERCENT or c == "params (m)" for c in columns],
        )
        + "\n"
    )


def mixed_test_sets(rows: Sequence[Dict[str, Any]]) -> Dict[str, List[str]]:
    """Test-set name -> the different test data its rows were measured on, for every name
    measured on more than one (e.g. ``synthetic`` generated at two sizes)."""
    seen: Dict[str, List[str]] = {}
    for r in rows:
        if r.get("test") is not None and r.get("test_data") is not None:
            seen.setdefault(r["test"], [])
            if r["test_data"] not in seen[r["test"]]:
                seen[r["test"]].append(r["test_data"])
    return {name: data for name, data in seen.items() if len(data) > 1}


def format_results(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown: one table of retrieval runs (metrics in percent, 2 decimals) and, when there
    are any, one of classification runs (top-1 / top-5 error in percent). A test set measured
    on different data in different rows gets a ``test data`` column and a note: its numbers
    compare only between rows of the same test data."""
    reid = [r for r in rows if r.get("task", "reid") == "reid"]
    cls = [r for r in rows if r.get("task") == "classification"]
    parts = []
    mixed = mixed_test_sets(reid)
    if reid or not cls:
        columns = list(COLUMNS)
        if mixed:
            columns.insert(columns.index("datasets") + 1, "test data")
            reid = [dict(r, **{"test data": r.get("test_data") or "?"}) for r in reid]
        parts.append(_table(reid, columns))
        for name, data in mixed.items():
            parts.append(
                f"\nnote: {name} was measured on {len(data)} different test sets "
                f"({'; '.join(data)}): compare only rows with the same test data\n"
            )
    if cls:
        parts.append(("\n" if reid else "") + _table(cls, CLS_COLUMNS))
    return "".join(parts)


def plot_results_cmc(rows: Sequence[Dict[str, Any]], output_dir: str) -> List[str]:
    """Every run's CMC curve on one figure per test set, ``<output_dir>/cmc_<test>.png`` (a
    test set measured on different data: one figure per data, ``cmc_<test>_<data>.png``), each
    curve labelled with its model and run folder and the settings in the title's second line
    when all curves share them. Rows without a recorded CMC are left out."""
    from .plots import plot_cmc_curves, safe_name

    mixed = mixed_test_sets(rows)
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in rows:
        if r.get("task", "reid") == "reid" and r.get("cmc"):
            data = (r.get("test_data") or "?") if r["test"] in mixed else ""
            groups.setdefault((r["test"], data), []).append(r)
    paths = []
    for (test, data), members in groups.items():
        curves = {f"{r['model']} ({r['run']})": r["cmc"] for r in members}
        settings = {r["evaluation"] for r in members}
        name = f"cmc_{safe_name(test)}" + (f"_{safe_name(data.split()[0])}" if data else "")
        paths.append(
            plot_cmc_curves(
                curves,
                os.path.join(output_dir, name + ".png"),
                title=f"CMC on {test}" + (f" (test data {data})" if data else ""),
                subtitle=settings.pop() if len(settings) == 1 else "settings differ: see the table",
            )
        )
    return paths


def step_row(index: int, label: str, train: str, m: Dict[str, Any]) -> Dict[str, Any]:
    """One transfer-chain summary row from a finished step's ``metrics.json`` record ``m``
    (numbers in percent): step ``index`` (1-based), its ``label`` as written, its training set."""
    row: Dict[str, Any] = {"step": index, "name": label, "train": train}
    std = m.get("std") or {}
    row["std_lambda"] = std.get("lambda", "")
    for ts, r in m.get("per_dataset", {}).items():
        row[f"{ts} mAP"] = round(100 * r["mAP"], 2)
        row[f"{ts} rank-1"] = round(100 * r["rank1"], 2)
    return row


def write_chain_summary(chain_dir: str, rows: List[Dict[str, Any]]) -> List[str]:
    """A transfer chain's ``summary.csv`` / ``summary.md`` / ``chain_map.png`` (rows: one per
    step, :func:`step_row`); returns the test-set names."""
    tests: List[str] = []
    for r in rows:
        for k in r:
            if k.endswith(" mAP") and k[:-4] not in tests:
                tests.append(k[:-4])
    cols = ["step", "name", "train", "std_lambda"] + [
        f"{t} {m}" for t in tests for m in ("mAP", "rank-1")
    ]

    def write_csv(f) -> None:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})

    atomic_write(os.path.join(chain_dir, "summary.csv"), write_csv)
    table = markdown_table(
        cols,
        [[r.get(c, "") for c in cols] for r in rows],
        right=[c == "step" or c.endswith(("mAP", "rank-1")) for c in cols],
    )
    write_text(
        "Transfer chain: " + " -> ".join(str(r["name"]) for r in rows) + "\n\n"
        "mAP and rank-1 in percent; empty where a step did not evaluate that test set."
        "\n\n" + table + "\n",
        os.path.join(chain_dir, "summary.md"),
    )
    try:
        from .plots import plot_chain

        plot_chain(rows, tests, os.path.join(chain_dir, "chain_map.png"))
    except ImportError as e:  # matplotlib missing: the tables are what matters
        logging.getLogger("reidbox").warning("no chain plot: %s", e)
    return tests
