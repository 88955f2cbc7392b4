"""Model summary: measured test-time parameters, stage specs, tools/model_info.py."""

import json
import os
import runpy

import pytest
import torch

from reidbox.config import load_config
from reidbox.modeling import build_model
from reidbox.modeling.summary import count_parameters, format_summary, model_summary

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "model_info.py")


def _build(arch, n=9):
    torch.manual_seed(0)
    return build_model(
        load_config(None, ["MODEL.META_ARCHITECTURE", arch, "MODEL.BACKBONE.NAME", "resnet18"]),
        num_classes=n,
    )


@pytest.mark.parametrize(
    "arch,classifier",
    [("baseline", "head.classifier"), ("ptl", "head.classifier"), ("mgn", "classifiers")],
)
def test_test_time_params_exclude_exactly_the_classifiers(arch, classifier):
    model = _build(arch)
    cls = model.get_submodule(classifier)
    s = model_summary(model)
    total = count_parameters(model.parameters())
    assert s["params_m"] == round(total / 1e6, 2)
    expected_test = total - count_parameters(cls.parameters())
    assert s["test_params_m"] == round(expected_test / 1e6, 2)
    if arch == "ptl":  # the classifier grows with the identities; the test-time part does not
        bigger = model_summary(_build(arch, n=1000))
        assert bigger["test_params_m"] == s["test_params_m"]
        assert bigger["params_m"] > s["params_m"]


def test_summary_leaves_the_model_as_it_was():
    model = _build("ptl").train()
    frozen = [p for p in model.parameters() if not p.requires_grad]
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 32))
    state = model.ptl.state.get("image_cell").clone()
    s = model_summary(model)
    assert model.training
    assert [p for p in model.parameters() if not p.requires_grad] == frozen
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model.ptl.state.get("image_cell"), state)
    assert [st["name"] for st in s["stages"]] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert s["ptl"]["state_mode"] == "carry"
    text = format_summary(s)
    assert "layer4(512ch, /16)" in text and "state_mode=carry" in text


def test_model_info_tool(capsys):
    main = runpy.run_path(TOOL, run_name="model_info")["main"]
    assert (
        main(
            [
                "--json",
                "--num-classes",
                "5",
                "MODEL.META_ARCHITECTURE",
                "ptl",
                "MODEL.BACKBONE.NAME",
                "resnet18",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["num_classes"] == 5 and out["model"] == "Baseline+PTL"
    assert out["params_m"] > out["test_params_m"] > 11


@pytest.mark.parametrize(
    "config,num_classes,note",
    [
        ("configs/market1501/ptl_d161.yml", 751, "ImageNet weights not loaded"),  # PRETRAINED True
        ("configs/cifar10/ptl_densenet100.yml", 10, None),  # classes of CIFAR, no --num-classes
        ("configs/std/table6/lambda_08.yml", 1041, "teacher config"),  # teacher not trained yet
    ],
)
def test_model_info_needs_no_weight_file(config, num_classes, note, tmp_path, monkeypatch, capsys):
    """Counting parameters reads no weight file: ImageNet, MODEL.WEIGHTS or an STD teacher."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.chdir(os.path.join(os.path.dirname(TOOL), ".."))
    main = runpy.run_path(TOOL, run_name="model_info")["main"]
    assert main(["--config-file", config, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_classes"] == num_classes
    assert out["params_m"] >= out["test_params_m"] > 0
    if note:
        assert any(note in n for n in out["notes"]), out["notes"]
    else:
        assert out["notes"] == []
