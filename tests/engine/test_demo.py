"""The demos (``make demo``, ``make demo-transfer``): their tables are the paired comparison's
own; reruns reuse a finished run of the same config, not retrained or replaced; one whose
schedule grew is resumed; a finished run of another config is refused before anything trains.
The library (``reidbox/engine``) names no config of the repository: the demos choose theirs."""

import ast
import glob
import json
import os
import re

import pytest

from reidbox.commands import demo
from reidbox.config import ConfigError
from reidbox.engine import compare, runner
from reidbox.utils import run_folder
from reidbox.utils.misc import write_json
from tests.conftest import TINY_RUN

SMALL_SYNTHETIC = [
    "DATASETS.SYNTHETIC.NUM_TRAIN_IDS",
    "6",
    "DATASETS.SYNTHETIC.NUM_TEST_IDS",
    "4",
    "DATASETS.SYNTHETIC.NUM_CAMERAS",
    "2",
    "DATASETS.SYNTHETIC.IMAGE_SIZE",
    "[32, 16]",
]
VARIANTS = ["resnet18: MODEL.PTL.ENABLED False", "resnet18+PTL: MODEL.PTL.ENABLED True"]


def _release(out):
    for v in ("resnet18", "resnet18_ptl"):
        run_folder.release_lock(os.path.join(out, v, "seed0"))


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
def test_demo_rerun_reuses_and_a_changed_config_is_refused_first(tmp_path, monkeypatch):
    out = str(tmp_path / "demo")
    opts = TINY_RUN + SMALL_SYNTHETIC + ["DATASETS.ROOT", str(tmp_path / "data")]
    first = demo.run_demo(out, [0], opts, progress=False, variants=VARIANTS)
    _release(out)
    assert [p["a"] + " - " + p["b"] for p in first["pairs"]][:1] == ["resnet18+PTL - resnet18"]
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["model"] == "resnet18+PTL"  # the main model's first seed
    final = os.path.join(out, "resnet18", "seed0", "model_final.pth")
    stamp = os.stat(final).st_mtime_ns
    real_train = runner.train

    def no_training(*a, **k):
        raise AssertionError("a finished run of the same config was trained again")

    monkeypatch.setattr(runner, "train", no_training)
    again = demo.run_demo(out, [0], opts, progress=False, variants=VARIANTS)
    assert again["per_seed"] == first["per_seed"] and os.stat(final).st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="finished run of another config.*SOLVER.WEIGHT_DECAY"):
        demo.run_demo(
            out, [0], opts + ["SOLVER.WEIGHT_DECAY", "0.001"], progress=False, variants=VARIANTS
        )
    # more epochs: the finished runs are continued from their checkpoints, as --resume does
    monkeypatch.setattr(runner, "train", real_train)
    demo.run_demo(out, [0], opts + ["SOLVER.MAX_EPOCHS", "3"], progress=False, variants=VARIANTS)
    _release(out)
    assert os.path.isfile(os.path.join(out, "resnet18", "seed0", "checkpoint_0003.pth"))
    assert os.stat(final).st_mtime_ns != stamp


def test_the_engine_names_no_repository_config():
    """A config path in the library would tie it to a clone's layout; the demos (the commands
    floor) name shipped configs, which load_config finds in a clone and in a wheel. Prose that
    mentions configs/ (an error's hint, a docstring) is fine; a literal that is a path is not."""
    engine = os.path.dirname(compare.__file__)
    found = []
    for path in sorted(glob.glob(os.path.join(engine, "*.py"))):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            value = getattr(node, "value", None)
            if isinstance(node, ast.Constant) and isinstance(value, str):
                if re.fullmatch(r"(\./)?configs(/\S*)?", value):
                    found.append(f"{os.path.basename(path)}:{node.lineno} {value!r}")
    assert not found, f"config paths in reidbox/engine: {found}"


def _instant_runs(monkeypatch):
    """Training and testing as stand-ins that write a finished run at once, its metrics a
    function of the variant and seed: the demos' own work (what they run, what they write)
    without the minutes of training."""

    def metrics(cfg):
        score = 0.4 + 0.1 * cfg.MODEL.PTL.ENABLED + 0.05 * (cfg.MODEL.HEADS.NAME == "paper")
        score += 0.013 * cfg.SEED
        return {"per_dataset": {cfg.DATASETS.TEST[0]: {"mAP": score, "rank1": score + 0.2}}}

    def train(cfg, resume=False, progress=True):
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        write_json(metrics(cfg), os.path.join(cfg.OUTPUT_DIR, "metrics.json"))
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
        open(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), "wb").close()

    monkeypatch.setattr(runner, "train", train)
    monkeypatch.setattr(runner, "test", lambda cfg, weights, progress=True: metrics(cfg))
    monkeypatch.setattr(compare, "write_init", lambda cfg, seed, folder: "")


def _saved(out):
    with open(os.path.join(out, "results.json")) as f:
        result = json.load(f)
    with open(os.path.join(out, "results.md"), encoding="utf-8") as f:
        return result, f.read()


def test_the_demo_table_is_the_comparisons_own(tmp_path, monkeypatch):
    _instant_runs(monkeypatch)
    out = str(tmp_path / "demo")
    demo.run_demo(out, [0, 1], progress=False)
    result, text = _saved(out)
    assert text == f"# Paired comparison on synthetic\n\n{compare.format_compare(result)}\n"
    assert [(p["a"], p["b"]) for p in result["pairs"][::2]] == demo.DEMO_PAIRS
    assert result["variants"]["resnet18"]["config"] == "configs/demo/baseline.yml"
    with open(os.path.join(out, "metrics.json")) as f:
        main = json.load(f)  # the main model's first seed
    assert main["model"] == "resnet18+PTL"
    assert main["per_dataset"]["synthetic"]["mAP"] == result["per_seed"]["resnet18+PTL"]["0"]["mAP"]


def test_the_transfer_demo_table_is_the_comparisons_own(tmp_path, monkeypatch):
    _instant_runs(monkeypatch)
    out = str(tmp_path / "transfer")
    demo.run_transfer_demo(out, [0, 1], progress=False)
    result, text = _saved(out)
    assert text.startswith("# reidbox transfer demo: synthetic_a -> synthetic_b\n\n")
    assert "domain: synthetic_a 40.0 / 60.0); not fine-tuned, on synthetic_b: 40.0 / 60.0" in text
    assert f"(percent).\n\n{compare.format_compare(result)}\n\nWall time " in text
    assert result["source"] == ["synthetic_a"] and result["target"] == "synthetic_b"


def test_a_comparison_redrawn_from_its_json_keeps_the_run_order(tmp_path, monkeypatch):
    """results.json is written with sorted keys: '+PTL' sorts before 'plain'. The table redrawn
    from the file lists the variants in the order they ran, as results.md does."""
    _instant_runs(monkeypatch)
    out = str(tmp_path / "cmp")
    variants = [compare.Variant.parse(v) for v in compare.DEFAULT_VARIANTS]  # plain, +PTL
    compare.run_compare(variants, [0, 1], out, base_config=demo.DEMO_CONFIG, progress=False)
    result, text = _saved(out)
    assert list(result["per_seed"]) == ["+PTL", "plain"]  # as the JSON writer sorted them
    assert result["order"] == ["plain", "+PTL"]
    assert text.endswith(f"{compare.format_compare(result)}\n")
    assert text.index("| plain ") < text.index("| +PTL ")


def test_a_misspelled_metric_is_refused_before_anything_trains(tmp_path, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("trained before the metric names were checked")

    monkeypatch.setattr(runner, "train", no_training)
    variants = [compare.Variant.parse(v) for v in compare.DEFAULT_VARIANTS]
    with pytest.raises(ConfigError, match=r"--metrics mAp: a reid run records mAP, rank1"):
        compare.run_compare(
            variants, [0], str(tmp_path), base_config=demo.DEMO_CONFIG, metrics=["mAp"]
        )


def test_a_wrong_key_in_a_variant_names_the_variant(tmp_path):
    variants = [compare.Variant.parse(v) for v in ("a: MODEL.PTL.ENABLD True", "b: SEED 1")]
    with pytest.raises(ConfigError, match=r"^variant 'a': .*MODEL\.PTL\.ENABLD"):
        compare.run_compare(variants, [0], str(tmp_path), base_config=demo.DEMO_CONFIG)
