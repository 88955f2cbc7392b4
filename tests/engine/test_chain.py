"""Transfer chains: steps, summary, skipped-classifier report, interruption and resume."""

import csv
import json
import os
import shutil

import pytest
import torch

from reidbox.config import ConfigError
from reidbox.data import DatasetError
from reidbox.cli import split_leading
from reidbox.engine.chain import INIT, parse_steps, resolve_dataset, run_chain
from reidbox.engine.trainer import HookBase
from tests.conftest import TINY_RUN, write_market_tree

CHAIN = ["synthetic_a", "Market"]  # 8 then 6 training identities


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return write_market_tree(str(tmp_path_factory.mktemp("synth")))


def chain_opts(root, out):
    synthetic = [
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
        "8",
        "DATASETS.SYNTHETIC.NUM_TEST_IDS",
        "5",
        "DATASETS.SYNTHETIC.NUM_CAMERAS",
        "2",
        "DATASETS.SYNTHETIC.IMAGE_SIZE",
        "[32, 16]",
    ]
    return (
        TINY_RUN
        + synthetic
        + ["SOLVER.CHECKPOINT_PERIOD", "1", "DATASETS.ROOT", root, "OUTPUT_DIR", str(out)]
    )


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class StopAtEpoch(HookBase):
    """Interrupt the chain after the ``n``-th epoch counted over all steps."""

    def __init__(self, n):
        self.n, self.seen = n, 0

    def after_epoch(self):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt


class CountEpochs(HookBase):
    def __init__(self):
        self.epochs = []

    def before_epoch(self):
        self.epochs.append(
            (self.trainer.unwrapped_model.head.classifier.out_features, self.trainer.epoch)
        )


@pytest.fixture(scope="module")
def full_chain(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "chain"
    rows = run_chain(None, CHAIN, chain_opts(synth_root, out), progress=False)
    return out, rows


def test_chain_summary_manifest_and_skipped_classifier(full_chain):
    out, rows = full_chain
    table = read_csv(out / "summary.csv")
    assert [r["name"] for r in table] == CHAIN and len(rows) == 2
    assert table[0]["market1501 mAP"] == ""  # step 1 never saw Market
    assert float(table[1]["synthetic_a mAP"]) >= 0  # step 2 also tested on step 1's set
    for name in ("summary.md", "chain_map.png", "manifest.json", "chain_log.txt"):
        assert (out / name).is_file(), name
    assert (out / "02_market1501" / "cmc_synthetic_a.png").is_file()
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    s1, s2 = manifest["steps"]
    assert s1["weights_in"] is None and s1["load"]["start"] == "scratch"
    assert s2["weights_in"] == os.path.join(str(out), "01_synthetic_a", "model_final.pth")
    assert s2["load"]["skipped"] == ["head.classifier.weight"]
    assert s2["load"]["num_classes"] == 6 and s2["tests"] == ["market1501", "synthetic_a"]
    with open(out / "chain_log.txt") as f:
        log = f.read()
    assert "classifier replaced (8 -> 6 identities" in log
    assert "skipped weights: head.classifier.weight" in log
    # no config file: the log says which recipe every step uses
    assert "no --config-file: every step uses reidbox's bare defaults (baseline/resnet18" in log
    # "training" before, "trained" after; never "trained" before the step ran
    lines = log.splitlines()
    at = {
        t: next(i for i, ln in enumerate(lines) if ln.endswith(t))
        for t in (
            "checked all 2 steps: configs, datasets and models are readable",
            "step 1 synthetic_a: training (synthetic_a -> tests synthetic_a)",
            "step 1 synthetic_a: trained",
            "step 2 Market: training (market1501 -> tests market1501, synthetic_a)",
            "step 2 Market: trained",
        )
    }
    assert list(at.values()) == sorted(at.values()), at
    # a fine-tuned step's log names the weights it starts from, not "from scratch"
    step2 = (out / "02_market1501" / "log.txt").read_text()
    assert "scratch" not in step2
    assert "training starts at epoch 1 from " + str(out / "02_market1501" / INIT) in step2
    assert "from random weights" in (out / "01_synthetic_a" / "log.txt").read_text()
    # step 2 started from step 1's weights, classifier removed
    w1 = torch.load(out / "01_synthetic_a" / "model_final.pth", weights_only=True)["model"]
    init = torch.load(out / "02_market1501" / "init_weights.pth", weights_only=True)
    assert init["source"] == s2["weights_in"] and set(w1) - set(init["model"]) == {
        "head.classifier.weight"
    }
    assert all(torch.equal(w1[k], init["model"][k]) for k in init["model"])


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
def test_interrupted_chain_resumes_to_the_same_summary(full_chain, synth_root, tmp_path):
    out = tmp_path / "chain"
    opts = chain_opts(synth_root, out)
    with pytest.raises(KeyboardInterrupt):  # stop after step 2's first epoch
        run_chain(None, CHAIN, opts, progress=False, extra_hooks=[StopAtEpoch(3)])
    assert (out / "01_synthetic_a" / "metrics.json").is_file()
    assert not (out / "02_market1501" / "model_final.pth").exists()
    final1 = (out / "01_synthetic_a" / "model_final.pth").stat().st_mtime_ns
    counter = CountEpochs()
    run_chain(None, CHAIN, opts, progress=False, extra_hooks=[counter])
    assert counter.epochs == [(6, 1)]  # only step 2's second epoch ran
    assert (out / "01_synthetic_a" / "model_final.pth").stat().st_mtime_ns == final1
    assert read_csv(out / "summary.csv") == read_csv(full_chain[0] / "summary.csv")
    with open(out / "manifest.json") as f:
        steps = json.load(f)["steps"]
    assert [h["action"] for h in steps[0]["history"]] == ["trained", "reused"]
    assert [h["action"] for h in steps[1]["history"]] == [
        "training, stopped (KeyboardInterrupt)",
        "resumed after epoch 1",
    ]
    # a rerun of a finished chain trains nothing; a lost metrics.json is re-evaluated only
    os.remove(out / "02_market1501" / "metrics.json")
    for ck in (out / "02_market1501").glob("checkpoint_*.pth"):
        os.remove(ck)
    counter = CountEpochs()
    run_chain(None, CHAIN, opts, progress=False, extra_hooks=[counter])
    assert counter.epochs == []
    assert read_csv(out / "summary.csv") == read_csv(full_chain[0] / "summary.csv")


def _copy_chain(src, out):
    shutil.copytree(src, out)
    # the copied folders record the original paths: point them at this copy
    for cfg in out.glob("*/config.yaml"):
        cfg.write_text(cfg.read_text().replace(str(src), str(out)))


def test_changed_config_is_refused(full_chain, synth_root, tmp_path):
    out = tmp_path / "chain"
    _copy_chain(full_chain[0], out)
    opts = chain_opts(synth_root, out)
    with pytest.raises(ConfigError, match="SOLVER.BASE_LR"):
        run_chain(None, CHAIN, opts + ["SOLVER.BASE_LR", "0.01"], progress=False)


@pytest.mark.slow
def test_chain_can_be_extended_without_retraining(full_chain, synth_root, tmp_path):
    out = tmp_path / "chain"
    _copy_chain(full_chain[0], out)
    opts = chain_opts(synth_root, out)
    counter = CountEpochs()
    run_chain(None, CHAIN + ["synthetic_b"], opts, progress=False, extra_hooks=[counter])
    assert counter.epochs == [(8, 0), (8, 1)]  # only the new third step trained
    assert len(read_csv(out / "summary.csv")) == 3


def test_step_parsing_and_aliases():
    steps, opts = split_leading(
        ["Duke", "Market", "MSMT17+STD", "SOLVER.MAX_EPOCHS", "5", "OUTPUT_DIR", "x"]
    )
    assert steps == ["Duke", "Market", "MSMT17+STD"]
    assert opts == ["SOLVER.MAX_EPOCHS", "5", "OUTPUT_DIR", "x"]
    parsed = parse_steps(steps)
    assert [s.dataset.train for s in parsed] == ["dukemtmcreid", "market1501", "msmt17"]
    assert [s.std for s in parsed] == [False, False, True]
    assert parsed[2].folder == "03_msmt17_std"
    md = resolve_dataset("Market-Duke")
    assert md.train == "market_duke" and md.tests == ["market1501", "dukemtmcreid"]
    assert resolve_dataset("synthetic_c").tests == ["synthetic_c"]
    with pytest.raises(ConfigError, match="unknown chain step dataset 'Marquet'"):
        parse_steps(["Marquet"])
    with pytest.raises(ConfigError, match="empty chain"):
        parse_steps([])


def test_classifier_is_replaced_even_when_identity_counts_match(full_chain, synth_root, tmp_path):
    from reidbox.config import load_config
    from reidbox.engine.chain import prepare_weights

    src = str(full_chain[0] / "01_synthetic_a" / "model_final.pth")  # 8 identities
    cfg = load_config(
        None,
        chain_opts(synth_root, tmp_path)
        + ["DATASETS.TRAIN", "['synthetic_a']", "MODEL.WEIGHTS", str(tmp_path / "init.pth")],
    )
    report = prepare_weights(cfg, src)
    assert report["num_classes"] == report["previous_num_classes"] == 8
    assert report["skipped"] == ["head.classifier.weight"] and report["unused"] == []
    init = torch.load(tmp_path / "init.pth", weights_only=True)["model"]
    full = torch.load(src, weights_only=True)["model"]
    assert set(full) - set(init) == {"head.classifier.weight"}
    assert all(torch.equal(init[k], full[k]) for k in init)


def test_missing_dataset_of_a_later_step_fails_before_step_one_trains(synth_root, tmp_path):
    """``transfer_chain.py synthetic_a Market`` without Market: no step trains (issue 14.5)."""
    out = tmp_path / "chain"
    opts = chain_opts(str(tmp_path / "only_synthetic"), out)
    counter = CountEpochs()
    with pytest.raises(DatasetError, match="market1501"):
        run_chain(None, CHAIN, opts, progress=False, extra_hooks=[counter])
    assert counter.epochs == []
    assert not list(out.glob("01_*/checkpoint_*.pth")) and not list(out.glob("*/model_*.pth"))


# A later +STD step's student that cannot be built: found by the pre-check, before step 1 trains.
BROKEN_STUDENTS = {
    # a student config without the loss STD needs
    "no std loss": (
        "MODEL:\n  META_ARCHITECTURE: std\n  LOSSES:\n    NAMES: ['cross_entropy']\n",
        "chain step 2 .*needs the 'std' loss",
    ),
    # a student built from ImageNet weights whose file is missing (TORCH_HOME is empty)
    "no ImageNet file": (
        "MODEL:\n  META_ARCHITECTURE: std\n  BACKBONE:\n    PRETRAINED: True\n"
        "  LOSSES:\n    NAMES: ['cross_entropy', 'std']\n",
        "chain step 2 .*ImageNet weights not found.*resnet18",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_STUDENTS))
def test_broken_later_step_fails_before_step_one_trains(case, synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    text, match = BROKEN_STUDENTS[case]
    std = tmp_path / "student.yml"
    std.write_text(text)
    counter = CountEpochs()
    with pytest.raises(ConfigError, match=match):
        run_chain(
            None,
            ["synthetic_a", "synthetic_a+STD"],
            chain_opts(synth_root, tmp_path / "c") + ["CHAIN.STD_CONFIG", str(std)],
            progress=False,
            extra_hooks=[counter],
        )
    assert counter.epochs == []


def test_ptl_classifier_hidden_layers_are_replaced_too(synth_root, tmp_path):
    """PTL's classifier is three FC layers (with BN): between chain steps all of it is fresh,
    not only the identity-sized last layer; every test-time tensor is carried over."""
    from reidbox.config import load_config
    from reidbox.engine.chain import prepare_weights
    from reidbox.modeling import build_model

    opts = chain_opts(synth_root, tmp_path) + [
        "MODEL.META_ARCHITECTURE",
        "ptl",
        "MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN",
        "[32, 16]",
        "MODEL.HEADS.PAPER.FEAT_DIM",
        "24",
        "DATASETS.TRAIN",
        "['synthetic_a']",
        "MODEL.WEIGHTS",
        str(tmp_path / "init.pth"),
    ]
    cfg = load_config(None, opts)
    previous = build_model(cfg, num_classes=8)  # same identity count as synthetic_a
    src = tmp_path / "prev.pth"
    torch.save({"model": previous.state_dict(), "num_classes": 8}, src)
    report = prepare_weights(cfg, str(src))
    classifier = {k for k in previous.state_dict() if k.startswith("head.classifier.")}
    assert {k for k in classifier if k.startswith("head.classifier.0.")}  # a hidden layer exists
    assert set(report["skipped"]) == classifier and report["unused"] == []
    init = torch.load(tmp_path / "init.pth", weights_only=True)["model"]
    assert set(init) == set(previous.state_dict()) - classifier
    assert any(k.startswith("ptl.") for k in init)
    assert any(k.startswith("head.reduction.") for k in init)


def test_finished_steps_compare_without_the_chain_composition_keys(tmp_path):
    # adding a +STD step sets CHAIN.STD_CONFIG for the whole chain: the finished plain steps
    # (whose configs it does not change) must be reused, not refused
    from reidbox.config import load_config
    from reidbox.engine.run_folder import RunFolder, Verdict

    old = load_config(None, ["CHAIN.STEPS", "['synthetic_a']"])
    (tmp_path / "config.yaml").write_text(old.dump())
    new = load_config(
        None,
        [
            "CHAIN.STEPS",
            "['synthetic_a']",
            "CHAIN.STD_CONFIG",
            "configs/std/d161_student.yml",
            "CHAIN.TEST_EARLIER",
            "False",
        ],
    )
    judged = RunFolder(str(tmp_path)).judge(new)
    assert judged["run"] == [] and judged.verdict is not Verdict.OTHER
    moved = load_config(None, ["CHAIN.STEPS", "['synthetic_b']"])  # weights from elsewhere
    judged = RunFolder(str(tmp_path)).judge(moved)
    assert [k.split()[0] for k in judged["run"]] == ["CHAIN.STEPS"]
    assert judged.verdict is Verdict.OTHER


# ------------------------------------------------------------------ reruns follow the one rule
def test_finished_chain_rerun_after_the_datasets_folder_moved_reuses_every_step(
    full_chain, synth_root, tmp_path
):
    """A moved datasets folder (DATASETS.ROOT) and a changed runtime key are the same run, as
    for ``train_net --resume`` and ``make demo``: nothing is trained again."""
    out = tmp_path / "chain"
    _copy_chain(full_chain[0], out)
    moved = tmp_path / "moved_datasets"
    shutil.copytree(synth_root, moved)
    opts = chain_opts(str(moved), out) + ["SOLVER.CHECKPOINT_PERIOD", "2"]
    counter = CountEpochs()
    rows = run_chain(None, CHAIN, opts, progress=False, extra_hooks=[counter])
    assert counter.epochs == [] and len(rows) == 2
    with open(out / "manifest.json") as f:
        steps = json.load(f)["steps"]
    assert [s["history"][-1]["action"] for s in steps] == ["reused", "reused"]
    assert read_csv(out / "summary.csv") == read_csv(full_chain[0] / "summary.csv")


def test_chain_rerun_with_more_epochs_continues_step_one_and_trains_step_two_again(
    full_chain, synth_root, tmp_path, capsys
):
    from reidbox.commands import transfer_chain

    out = tmp_path / "chain"
    _copy_chain(full_chain[0], out)
    opts = chain_opts(synth_root, out) + ["SOLVER.MAX_EPOCHS", "3"]
    code = transfer_chain.main([*CHAIN, *opts, "--no-progress"])
    assert code == 0
    with open(out / "manifest.json") as f:
        steps = json.load(f)["steps"]
    assert steps[0]["history"][-1]["action"] == "continued (SOLVER.MAX_EPOCHS (2 -> 3))"
    assert steps[1]["history"][-1]["action"] == "trained again (step 1 trains again)"
    log = (out / "chain_log.txt").read_text()
    said = [ln for ln in log.splitlines() if "started from its weights" in ln]
    assert (
        len(said) == 1 and "step 1 synthetic_a continues (SOLVER.MAX_EPOCHS (2 -> 3))" in (said[0])
    )
    assert "step 2 Market" in said[0]
    for folder in ("01_synthetic_a", "02_market1501"):
        assert (out / folder / "checkpoint_0003.pth").is_file(), folder
    # step 2 started from step 1's new weights, and trained all of its epochs anew
    w1 = torch.load(out / "01_synthetic_a" / "model_final.pth", weights_only=True)["model"]
    init = torch.load(out / "02_market1501" / "init_weights.pth", weights_only=True)["model"]
    assert all(torch.equal(w1[k], init[k]) for k in init)
    step2_log = (out / "02_market1501" / "log.txt").read_text()
    assert "training epochs 1..3" in step2_log
    # a second rerun reuses both
    counter = CountEpochs()
    run_chain(None, CHAIN, opts, progress=False, extra_hooks=[counter])
    assert counter.epochs == []


def test_an_unfinished_step_after_one_that_trains_again_starts_over(
    full_chain, synth_root, tmp_path
):
    """Step 2 killed mid-way, then the chain rerun with step 1's schedule grown: step 2's
    checkpoints grew from step 1's old weights, so it is trained again, not resumed."""
    from reidbox.engine.chain import Action, plan_chain

    out = tmp_path / "chain"
    _copy_chain(full_chain[0], out)
    for name in ("model_final.pth", "metrics.json"):  # step 2 as if killed after a checkpoint
        (out / "02_market1501" / name).unlink()
    plans = plan_chain(
        None, CHAIN, chain_opts(synth_root, out) + ["SOLVER.MAX_EPOCHS", "3"], str(out)
    )
    assert [p.action for p in plans] == [Action.CONTINUE, Action.RETRAIN]
    assert plans[1].why == "step 1 trains again"
    # unchanged, the killed step resumes
    plans = plan_chain(None, CHAIN, chain_opts(synth_root, out), str(out))
    assert [p.action for p in plans] == [Action.REUSE, Action.RESUME]


# How a finished run (step 1 of the chain: 2 epochs, a checkpoint per epoch) is judged after a
# change; reuse: nothing to do; continue: resume it (epochs or an evaluation left); refuse.
CHANGES = {
    "nothing": ([], "reuse"),
    "datasets folder moved": (["DATASETS.ROOT", "MOVED"], "reuse"),
    "checkpoint period": (["SOLVER.CHECKPOINT_PERIOD", "2"], "reuse"),
    "log period": (["SOLVER.LOG_PERIOD", "7"], "reuse"),
    "loader workers": (["DATALOADER.NUM_WORKERS", "1"], "reuse"),
    "test batch": (["TEST.IMS_PER_BATCH", "16"], "reuse"),
    "more epochs": (["SOLVER.MAX_EPOCHS", "3"], "continue"),
    "flipped test images": (["TEST.FLIP_AUG", "True"], "continue"),
    "fewer epochs": (["SOLVER.MAX_EPOCHS", "1"], "refuse"),
    "learning rate, no epoch left": (["SOLVER.BASE_LR", "0.01"], "refuse"),
    "weight decay": (["SOLVER.WEIGHT_DECAY", "0.001"], "refuse"),
    "last stride": (["MODEL.BACKBONE.LAST_STRIDE", "2"], "refuse"),
}


def _decision(fn):
    try:
        return fn()
    except ConfigError as e:
        return ("refuse", str(e))


@pytest.mark.parametrize("change", list(CHANGES))
def test_resume_chain_and_compare_agree_on_a_changed_config(
    change, full_chain, synth_root, tmp_path
):
    """``train_net --resume`` (its check before anything is written), a chain rerun and
    ``compare.finished_run`` (the demos) decide alike: they ask the run folder's one rule."""
    from reidbox.engine import compare
    from reidbox.engine.chain import Action, plan_chain
    from reidbox.engine.run_folder import RunFolder

    out = full_chain[0]
    extra, expected = CHANGES[change]
    if "MOVED" in extra:  # the same datasets, in another folder
        shutil.copytree(synth_root, tmp_path / "moved")
        extra = [str(tmp_path / "moved") if v == "MOVED" else v for v in extra]
    opts = chain_opts(synth_root, out) + extra
    # the chain: plan a rerun of its first step (nothing is written)
    plan = _decision(lambda: plan_chain(None, CHAIN[:1], opts, str(out))[0])
    if not isinstance(plan, tuple):
        chain = {Action.REUSE: "reuse", Action.CONTINUE: "continue"}.get(plan.action, "other")
        cfg = plan.cfg
    else:
        chain = plan[0]
        cfg = _step_cfg(opts, out)
    # the comparisons and demos
    reused = _decision(lambda: compare.finished_run(cfg.OUTPUT_DIR, cfg))
    demo = reused[0] if isinstance(reused, tuple) else "reuse" if reused else "continue"
    # train_net --resume: refuses, or continues with the epochs the config adds
    state = _decision(lambda: RunFolder(cfg.OUTPUT_DIR, cfg).load_resume())
    if isinstance(state, tuple):
        resume = state[0]
    else:
        left = cfg.SOLVER.MAX_EPOCHS - int(state["epoch"])
        resume = "continue" if left > 0 else "accept"
    assert chain == demo == expected, (chain, demo, reused, plan)
    if expected == "refuse":
        assert resume == "refuse"
    else:
        assert resume == ("continue" if change == "more epochs" else "accept"), state


def _step_cfg(opts, out):
    from reidbox.engine.chain import parse_steps, step_config

    (step,) = parse_steps(CHAIN[:1])
    return step_config(None, opts, step, str(out), CHAIN[:1], None, [])[0]
