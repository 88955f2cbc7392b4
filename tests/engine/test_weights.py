"""Every weight file goes through one loader: wrapper prefixes stripped, only the classifier may
be skipped, anything else that does not fit is one line and exit status 2 (unless opted in)."""

import os
import logging
import runpy
import sys

import pytest
import torch
from torchvision import models

from reidbox.config import load_config
from reidbox.engine import runner
from reidbox.modeling import build_model
from reidbox.utils.checkpoint import WeightsMismatchError, load_model_weights, model_state_from

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(script, args, capsys):
    """Run ``tools/<script>`` in this process (as ``__main__``); returns (exit status, stderr)."""
    capsys.readouterr()
    old = sys.argv
    sys.argv = [script, "--no-progress", *args]
    try:
        runpy.run_path(os.path.join(ROOT, "tools", script), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code or 0
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def _one_line_error(result, *needles):
    code, err = result
    assert code == 2, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(market_root, tmp_path_factory):
    """A 2-epoch tiny run: its model_final.pth and its metrics."""
    from tests.conftest import TINY_OPTS

    out = tmp_path_factory.mktemp("trained")
    opts = TINY_OPTS + ["DATASETS.ROOT", market_root, "OUTPUT_DIR", str(out / "run")]
    record = runner.train(load_config(None, opts), progress=False)
    return opts, str(out / "run" / "model_final.pth"), record


def _ddp_file(src, dst, prefix="module."):
    state = model_state_from(torch.load(src, weights_only=True))
    torch.save({"state_dict": {prefix + k: v for k, v in state.items()}}, dst)
    return str(dst)


def test_ddp_prefixed_checkpoint_gives_the_trained_metrics(trained, tmp_path):
    opts, final, record = trained
    ddp = _ddp_file(final, tmp_path / "ddp.pth")
    cfg = load_config(None, opts[:-1] + [str(tmp_path / "t")])
    again = runner.test(cfg, weights=ddp, progress=False)
    assert again["mAP"] == pytest.approx(record["mAP"], abs=1e-6)
    assert again["rank1"] == pytest.approx(record["rank1"], abs=1e-6)
    # nested wrappers (Lightning "model." inside DataParallel "module.") load the same
    nested = _ddp_file(final, tmp_path / "nested.pth", prefix="module.model.")
    model = build_model(cfg, num_classes=6)
    rep = load_model_weights(model, nested)
    assert rep.fits and not rep.classifier and len(rep.loaded) == len(model.state_dict())


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_classifier_skip_is_reported(trained):
    opts, final, _ = trained
    cfg = load_config(None, opts)
    model = build_model(cfg, num_classes=3)  # another dataset's identity count
    log = logging.getLogger("reidbox.utils.checkpoint")
    records, level = _Records(), log.level
    log.addHandler(records)
    log.setLevel(logging.INFO)
    try:
        rep = load_model_weights(model, final)
    finally:
        log.removeHandler(records)
        log.setLevel(level)
    assert rep.classifier == ["head.classifier.weight"]
    assert rep.fits and len(rep.loaded) == len(model.state_dict()) - 1
    line = [m for m in records.messages if final in m]
    assert len(line) == 1
    assert "1 classifier skipped, 0 missing, 0 unexpected, 0 shape mismatch" in line[0]


def test_resnet18_weights_under_resnet50_config_exit_2(trained, tmp_path, capsys):
    opts, final, _ = trained
    opts50 = [o if o != "resnet18" else "resnet50" for o in opts]
    p = _tool("test_net.py", opts50[:-1] + [str(tmp_path / "t"), "MODEL.WEIGHTS", final], capsys)
    _one_line_error(p, final, "does not fit", "shape mismatch", "MODEL.WEIGHTS_PARTIAL")
    assert not os.path.exists(tmp_path / "t" / "metrics.json")
    # the same file into training (fine-tuning start) fails the same way, before any epoch
    p = _tool("train_net.py", opts50[:-1] + [str(tmp_path / "tr"), "MODEL.WEIGHTS", final], capsys)
    _one_line_error(p, final, "MODEL.WEIGHTS_PARTIAL")
    assert not any(f.startswith("checkpoint_") for f in os.listdir(tmp_path / "tr"))


def test_partial_opt_in_loads_what_fits(trained, tmp_path):
    opts, final, _ = trained
    cfg = load_config(None, opts[:-1] + [str(tmp_path / "p"), "MODEL.META_ARCHITECTURE", "ptl"])
    model = build_model(cfg, num_classes=6)
    with pytest.raises(WeightsMismatchError, match="MODEL.WEIGHTS_PARTIAL"):
        load_model_weights(model, final)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep = load_model_weights(model, final, partial=True)
    assert rep.missing and rep.unexpected and not rep.fits
    saved = model_state_from(torch.load(final, weights_only=True))
    after = model.state_dict()
    for k in rep.loaded:
        assert torch.equal(after[k], saved[k])
    for k in rep.missing:
        assert torch.equal(after[k], before[k])
    # the opt-in through the config key, end to end
    rec = runner.test(
        load_config(
            None,
            opts[:-1]
            + [
                str(tmp_path / "pt"),
                "MODEL.META_ARCHITECTURE",
                "ptl",
                "MODEL.WEIGHTS_PARTIAL",
                "True",
            ],
        ),
        weights=final,
        progress=False,
    )
    assert 0.0 <= rec["mAP"] <= 1.0


def test_std_teacher_of_another_architecture_fails_in_one_line(trained, tmp_path, capsys):
    opts, final, _ = trained
    teacher_cfg = tmp_path / "teacher.yml"
    teacher_cfg.write_text("MODEL:\n  META_ARCHITECTURE: ptl\n  BACKBONE:\n    NAME: resnet18\n")
    p = _tool(
        "train_net.py",
        opts[:-1]
        + [
            str(tmp_path / "s"),
            "MODEL.META_ARCHITECTURE",
            "std",
            "MODEL.STD.TEACHER_CONFIG",
            str(teacher_cfg),
            "MODEL.STD.TEACHER_WEIGHTS",
            final,
            "MODEL.STD.LAMBDA",
            "0.5",
            "SOLVER.MAX_EPOCHS",
            "1",
            "MODEL.LOSSES.NAMES",
            "['std']",
        ],
        capsys,
    )
    _one_line_error(
        p, "MODEL.STD.TEACHER_WEIGHTS", final, "does not fit", "missing: head.reduction"
    )  # paper head and cells


def test_wrong_architecture_imagenet_file_names_file_and_arch(
    market_root, tmp_path, capsys, monkeypatch
):
    from tests.conftest import TINY_OPTS

    with torch.device("meta"):
        shapes = models.resnet18().state_dict()
    wrong = tmp_path / "resnet18-f37072fd.pth"
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}, wrong)
    p = _tool(
        "train_net.py",
        TINY_OPTS
        + [
            "DATASETS.ROOT",
            market_root,
            "OUTPUT_DIR",
            str(tmp_path / "o"),
            "MODEL.BACKBONE.NAME",
            "resnet50",
            "MODEL.BACKBONE.PRETRAINED",
            "True",
            "MODEL.BACKBONE.WEIGHTS",
            str(wrong),
        ],
        capsys,
    )
    _one_line_error(p, str(wrong), "resnet50", "holds resnet18 weights")
    # the torchvision cache file in TORCH_HOME: same message
    cache = tmp_path / "th" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(3)}, cache / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    p = _tool(
        "train_net.py",
        TINY_OPTS
        + [
            "DATASETS.ROOT",
            market_root,
            "OUTPUT_DIR",
            str(tmp_path / "o2"),
            "MODEL.BACKBONE.PRETRAINED",
            "True",
        ],
        capsys,
    )
    _one_line_error(p, str(cache / "resnet18-f37072fd.pth"), "resnet18", "not a torchvision")


def test_missing_imagenet_file_names_torch_home_correctly(tmp_path, monkeypatch):
    from reidbox.modeling.backbones import WeightsNotFoundError, build_backbone

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(WeightsNotFoundError) as e:
        build_backbone("resnet18", pretrained=True)
    msg = str(e.value)
    assert f"TORCH_HOME={tmp_path / 'th'})" in msg, msg
    assert str(tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg


def test_classification_weights_must_fit_including_classifier(tmp_path):
    from reidbox.modeling import build_model as bm

    cfg = load_config(
        None,
        [
            "MODEL.META_ARCHITECTURE",
            "classifier",
            "MODEL.BACKBONE.NAME",
            "densenet22_cifar",
            "TASK",
            "classification",
        ],
    )
    src = bm(cfg, num_classes=10)
    path = tmp_path / "c.pth"
    torch.save({"model": src.state_dict(), "num_classes": 10}, path)
    ok = bm(cfg, num_classes=10)
    assert load_model_weights(ok, str(path), skip_classifier=False).fits
    with pytest.raises(WeightsMismatchError, match="fc.weight"):
        load_model_weights(
            bm(cfg, num_classes=100), str(path), skip_classifier=False, partial_key=None
        )


def test_chain_step_weights_share_the_rules(trained, tmp_path):
    from reidbox.engine.chain import prepare_weights

    opts, final, _ = trained
    # another backbone between steps: one line naming the file and the opt-in
    cfg50 = load_config(
        None,
        [o if o != "resnet18" else "resnet50" for o in opts]
        + ["MODEL.WEIGHTS", str(tmp_path / "init50.pth")],
    )
    with pytest.raises(WeightsMismatchError, match="MODEL.WEIGHTS_PARTIAL") as e:
        prepare_weights(cfg50, _ddp_file(final, tmp_path / "ddp.pth"))
    assert "resnet50" in str(e.value) and not os.path.exists(tmp_path / "init50.pth")
    # a designed transfer (PTL cells new on top of a plain model): the init file lists the
    # fresh tensors, and the step's strict load accepts exactly those
    cfg = load_config(
        None, opts + ["MODEL.META_ARCHITECTURE", "ptl", "MODEL.WEIGHTS", str(tmp_path / "init.pth")]
    )
    report = prepare_weights(cfg, _ddp_file(final, tmp_path / "ddp2.pth"))
    model = build_model(cfg, num_classes=report["num_classes"])
    rep = load_model_weights(model, cfg.MODEL.WEIGHTS)
    assert (
        rep.fits and rep.fresh and all(k.startswith(("ptl.", "head.reduction")) for k in rep.fresh)
    )
    assert set(rep.loaded) | set(rep.fresh) | set(rep.classifier) == set(model.state_dict())


def test_fitting_imagenet_file_loads_through_the_same_loader(tmp_path):
    from reidbox.modeling.backbones import build_backbone

    ref = models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in ref.state_dict().items()}}, path)
    bb = build_backbone("resnet18", pretrained=True, weights=str(path), last_stride=2)
    assert torch.equal(bb.stem[0].weight, ref.conv1.weight)
    assert torch.equal(bb.stages[3][1].bn2.running_var, ref.layer4[1].bn2.running_var)
