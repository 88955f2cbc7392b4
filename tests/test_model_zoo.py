"""docs/model_zoo.md's table of every row of Tables I-VII is true of the configs it names.

Each row names a config, and (as ``KEY=value``, directly or through ``R:recipe``) every setting
the paper states and every unstated choice. The test parses both tables and checks, per row:
the config exists and merges, every listed value is what the config sets (a chain: its last
step's config), and its model builds (ImageNet weights off) and runs on a tiny input.
"""

import os
import re

import pytest
import torch
import yaml

from reidbox.config import load_config, save_config
from reidbox.engine.chain import parse_steps, step_config
from reidbox.modeling import build_model

REPO = os.path.join(os.path.dirname(__file__), "..")
DOC = os.path.join(REPO, "docs", "model_zoo.md")
NO_WEIGHTS = ["MODEL.BACKBONE.PRETRAINED", "False"]
TOKEN = re.compile(r"`([A-Z][A-Z0-9_.]*)=([^`]*)`|`R:([a-z0-9_]+)`")
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII"]


def _table(text: str, heading: str):
    """Rows (lists of cells) of the first markdown table after ``heading``."""
    body = text[text.index(heading) :]
    rows, started = [], False
    for line in body.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= set("-: "):
                rows.append(cells)
        elif started:
            break
    return rows[1:]  # without the header


def _doc():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    recipes = {}
    for cells in _table(text, "### Recipes"):
        name = re.fullmatch(r"`R:([a-z0-9_]+)`", cells[0]).group(1)
        recipes[name] = (cells[2], cells[3])
    rows = _table(text, "## Every row of Tables I-VII")
    return rows, recipes


ROWS, RECIPES = _doc()


def _settings(cell: str, half: int, seen=()):
    """{KEY: value} of a cell, recipes expanded in place (``half`` 0: stated, 1: unstated)."""
    out = {}
    for key, value, recipe in TOKEN.findall(cell):
        if recipe:
            assert recipe in RECIPES, f"unknown recipe R:{recipe}"
            assert recipe not in seen, f"recursive recipe R:{recipe}"
            out.update(_settings(RECIPES[recipe][half], half, (*seen, recipe)))
        else:
            out[key] = yaml.safe_load(value) if value else ""
    return out


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        assert part in node, f"{key} is not a config key"
        node = node[part]
    return node


def _config_path(cell: str) -> str:
    m = re.fullmatch(r"`(configs/[^`]+\.yml)`", cell)
    assert m, f"config cell {cell!r} must be one `configs/...yml` path"
    return os.path.join(REPO, m.group(1))


def _effective(path: str, opts, tmp_path):
    """The config a row's numbers come from: the file itself, or a chain's last step."""
    cfg = load_config(path, opts)
    if not cfg.CHAIN.STEPS:
        return cfg
    steps = parse_steps(list(cfg.CHAIN.STEPS))
    prev, earlier = None, []
    for step in steps:
        step_cfg, _ = step_config(
            path, opts, step, str(tmp_path / "chain"), list(cfg.CHAIN.STEPS), prev, earlier
        )
        prev = step_cfg.OUTPUT_DIR
        earlier += [t for t in step.dataset.tests if t not in earlier]
    return step_cfg


def test_the_table_has_every_row_of_the_papers_tables():
    per_table = {t: [r for r in ROWS if r[0] == t] for t in ROMAN}
    # rows in the paper (Table V: each "+PTL+STD" row in both readings; variants in brackets)
    assert {t: len(rs) for t, rs in per_table.items()} == {
        "I": 5,
        "II": 7,
        "III": 6,
        "IV": 3,
        "V": 15,
        "VI": 6,
        "VII": 9,
    }
    assert set(r[0] for r in ROWS) == set(ROMAN)
    assert all(re.search(r"\d", r[3]) for r in ROWS), "every row quotes the paper's number"
    paths = [r[2] for r in ROWS]
    assert len(set(paths)) == len(paths), "one config per row"
    assert sum("PTL+STD" in r[1] for r in per_table["I"] + per_table["II"]) == 2


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A small trained-run folder standing in for the STD teachers the configs name."""
    out = tmp_path_factory.mktemp("teacher")
    cfg = load_config(os.path.join(REPO, "configs", "demo", "ptl.yml"), ["OUTPUT_DIR", str(out)])
    save_config(cfg, str(out))
    torch.save({"model": build_model(cfg, num_classes=5).state_dict()}, out / "model_final.pth")
    return [
        "MODEL.STD.TEACHER_CONFIG",
        str(out / "config.yaml"),
        "MODEL.STD.TEACHER_WEIGHTS",
        str(out / "model_final.pth"),
    ]


_BUILT = {}  # one build per distinct MODEL section (what build_model reads)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}:{r[2].strip('`')}" for r in ROWS])
def test_row_config_sets_what_the_table_says_and_builds(row, teacher, tmp_path):
    path = _config_path(row[2])
    assert os.path.isfile(path), f"{row[2]} does not exist"
    cfg = _effective(path, [], tmp_path)
    for half, cell in ((0, row[4]), (1, row[5])):
        expected = _settings(cell, half)
        assert half == 1 or expected, f"row {row[1]!r} lists no stated setting"
        for key, value in expected.items():
            actual = _get(cfg, key)
            actual = list(actual) if isinstance(actual, (list, tuple)) else actual
            assert actual == value, f"{row[2]}: {key} is {actual!r}, the table says {value!r}"
    # builds and runs with ImageNet weights off (a stand-in teacher for STD), tiny input; on
    # the meta device (shapes only: every module is constructed and the forward traced, no
    # memory, no arithmetic); tests/modeling/test_configs.py trains each architecture a step
    build = load_config(
        path, NO_WEIGHTS + (teacher if cfg.MODEL.META_ARCHITECTURE == "std" else [])
    )
    key = _architecture_key(build)
    if key not in _BUILT:
        h, w = build.INPUT.SIZE_TEST
        size = (h, w) if build.TASK == "classification" else (h // 4, w // 4)
        with torch.device("meta"):
            model = build_model(build, num_classes=4).eval()
            out = model(torch.empty(2, 3, *size))
        _BUILT[key] = tuple(out.shape)
    assert _BUILT[key][0] == 2 and len(_BUILT[key]) == 2


def _architecture_key(cfg) -> str:
    """What build_model's module structure depends on (not weights files, init or state)."""
    model = cfg.MODEL.clone()
    model.defrost()
    model.WEIGHTS = ""
    model.STD.LAMBDA = 0.0
    model.STD.TEACHER_WEIGHTS = ""
    for k in ("STATE_MODE", "STATE_SHAPE", "STATE_INIT", "CELL_INIT"):
        model.PTL[k] = ""
    model.BACKBONE.DROP_RATE = 0.0
    return model.dump() + str(cfg.INPUT.SIZE_TEST) + cfg.TASK


def test_every_paper_config_names_its_evaluation_code(tmp_path):
    """Tables I-VI: the protocol and AP convention of the code that produced the table; a
    chain's steps each get their own dataset's (the merged dataset fragment)."""
    expected = {
        "msmt17": ("msmt17_official", "trapezoid"),
        "market1501": ("openreid_market1501", "sklearn"),
        "dukemtmcreid": ("openreid_market1501", "sklearn"),
        "cuhk03": ("openreid_market1501", "sklearn"),
    }
    checked = 0
    for row in ROWS:
        if row[0] == "VII":
            assert load_config(_config_path(row[2])).TASK == "classification"
            continue
        path = _config_path(row[2])
        cfg = load_config(path)
        configs = [cfg]
        if cfg.CHAIN.STEPS:
            labels, configs, prev, earlier = list(cfg.CHAIN.STEPS), [], None, []
            for step in parse_steps(labels):
                c, _ = step_config(path, [], step, str(tmp_path / "c"), labels, prev, earlier)
                configs.append(c)
                prev = c.OUTPUT_DIR
        for c in configs:
            (train,) = c.DATASETS.TRAIN
            if train == "market_duke":  # a training-only step (the paper never tests on it)
                continue
            assert (c.TEST.PROTOCOL, c.TEST.AP_MODE) == expected[train], (row[2], train)
            checked += 1
    assert checked >= 45
