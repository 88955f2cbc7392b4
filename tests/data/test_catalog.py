"""Datasets declare their own facts; ``reidbox.data.catalog`` looks them up by name.

No table of dataset names outside the dataset's own file: the builders' options, the model
summary's identity counts and the chain's step names all come from the registered classes.
"""

import pytest

from reidbox.config import load_config
from reidbox.data import (
    build_train_set,
    dataset_aliases,
    dataset_kwargs,
    dataset_task,
    num_train_identities,
)
from reidbox.registry import DATASETS

from .fixtures import make_market, make_msmt17


def _cfg(*opts):
    return load_config(None, list(opts))


@pytest.mark.parametrize(
    "train,count",
    [
        ("['msmt17']", 1041),
        ("['market1501', 'dukemtmcreid']", 751 + 702),
        ("['market_duke']", 1453),
        ("['market1501+msmt17']", 751 + 1041),
        ("['cuhk03']", 767),
        ("['cuhk03_market']", 767),
        ("['cifar10']", 10),
        ("['cifar100_synthetic']", 100),
    ],
)
def test_num_train_identities_from_published_counts(train, count):
    assert num_train_identities(_cfg("DATASETS.TRAIN", train)) == count


def test_identity_counts_follow_the_options():
    # generated sets have what the config asks for; the classic CUHK03 split trains on 1,367
    cfg = _cfg(
        "DATASETS.TRAIN",
        "['synthetic_b', 'cuhk03']",
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
        "40",
        "DATASETS.CUHK03.PROTOCOL",
        "classic",
    )
    assert num_train_identities(cfg) == 40 + 1367


def test_unknown_count_names_the_way_out():
    with pytest.raises(KeyError, match="--num-classes .*market1501"):
        num_train_identities(_cfg("DATASETS.TRAIN", "['mystery']"))


def test_every_registered_dataset_declares_a_task():
    tasks = {n: dataset_task(n) for n in DATASETS}
    assert set(tasks.values()) == {"reid", "classification"}
    assert {n for n, t in tasks.items() if t == "classification"} == {
        "cifar10",
        "cifar100",
        "cifar10_synthetic",
        "cifar100_synthetic",
    }


def test_options_come_from_the_datasets_own_node():
    cfg = _cfg("DATASETS.MSMT17.INCLUDE_VAL", "False", "DATASETS.CUHK03.SPLIT", "3")
    assert dataset_kwargs(cfg, "msmt17") == {"version": "auto", "include_val": False}
    assert dataset_kwargs(cfg, "cuhk03")["split"] == 3
    assert "split" not in dataset_kwargs(cfg, "cuhk03_market")
    syn = cfg.DATASETS.SYNTHETIC
    assert dataset_kwargs(cfg, "synthetic_a")["num_train_ids"] == syn.NUM_TRAIN_IDS
    assert dataset_kwargs(cfg, "market1501") == {} == dataset_kwargs(cfg, "cifar10")
    assert dataset_kwargs(cfg, "msmt17+market1501") == {
        "msmt17": {"version": "auto", "include_val": False},
        "market1501": {},
    }


def test_a_plus_b_training_set_passes_each_part_its_options(tmp_path):
    # "a+b" used to build its parts with no options at all (MSMT17.INCLUDE_VAL ignored)
    make_market(str(tmp_path))
    exp = make_msmt17(str(tmp_path))
    counts = {}
    for include_val in ("True", "False"):
        cfg = _cfg(
            "DATASETS.ROOT",
            str(tmp_path),
            "DATASETS.TRAIN",
            "['msmt17+market1501']",
            "DATASETS.MSMT17.INCLUDE_VAL",
            include_val,
        )
        ds = build_train_set(cfg)
        counts[include_val] = sum(1 for s in ds.train if "msmt17" in s.path)
    assert counts == {"True": exp["train"]["images"], "False": exp["train_only"]["images"]}


def test_chain_step_names_are_what_the_datasets_declare():
    # the table engine/chain.py used to spell out, now assembled from the dataset classes
    want = {
        "market": ("market1501", ["market1501"], "market1501.yml"),
        "market1501": ("market1501", ["market1501"], "market1501.yml"),
        "duke": ("dukemtmcreid", ["dukemtmcreid"], "dukemtmcreid.yml"),
        "dukemtmcreid": ("dukemtmcreid", ["dukemtmcreid"], "dukemtmcreid.yml"),
        "msmt17": ("msmt17", ["msmt17"], "msmt17.yml"),
        "cuhk03": ("cuhk03", ["cuhk03"], "cuhk03_labeled.yml"),
        "cuhk03-detected": ("cuhk03", ["cuhk03"], "cuhk03_detected.yml"),
        "market-duke": ("market_duke", ["market1501", "dukemtmcreid"], None),
        "market_duke": ("market_duke", ["market1501", "dukemtmcreid"], None),
    }
    got = {k: (a.train, a.tests, a.fragment) for k, a in dataset_aliases().items()}
    assert got == want


def test_the_documented_class_form_declares_what_it_says(monkeypatch):
    import os
    import re

    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "custom_dataset.md")
    with open(doc, encoding="utf-8") as f:
        block = next(
            b for b in re.findall(r"```python\n(.*?)```", f.read(), re.S) if "class MyCamsV2" in b
        )
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._items))  # registered for this test
    exec(compile(block, "docs/custom_dataset.md", "exec"), {})
    cfg = _cfg("DATASETS.TRAIN", "['my_cams_v2']")
    assert num_train_identities(cfg) == 8 and dataset_task("my_cams_v2") == "reid"
    assert dataset_aliases()["cams"].train == "my_cams_v2"
    assert dataset_kwargs(cfg, "my_cams_v2") == {}
