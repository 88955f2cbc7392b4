"""Model summary: parameter counts (whole model and test-time part) and the stage specs.

The test-time part is measured, not guessed from names: one eval-mode forward and backward on
a small dummy batch marks every parameter the retrieval feature depends on. Classifiers (whose
size depends on the number of training identities) are what usually falls out.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..utils.misc import count_parameters, eval_mode


def build_for_summary(cfg, num_classes: int) -> Tuple[nn.Module, List[str]]:
    """The model of ``cfg`` for counting parameters: no weight file is read.

    ImageNet weights are off (counts do not depend on them) and ``MODEL.WEIGHTS`` is never
    loaded. An STD student whose teacher config does not exist yet (the teacher is trained
    first) is built without the teacher; the returned notes say what that leaves out.
    """
    from .build import build_model  # here: build imports the registries this module is used by

    notes: List[str] = []
    if cfg.MODEL.BACKBONE.PRETRAINED:
        notes.append("ImageNet weights not loaded (counts do not depend on them)")
    teacher = cfg.MODEL.STD.TEACHER_CONFIG
    if cfg.MODEL.META_ARCHITECTURE == "std" and teacher and not os.path.isfile(teacher):
        notes.append(
            f"teacher config {teacher} not found: student counted "
            "without the embedding that matches a teacher of another feature width"
        )
        teacher = ""
    # no distillation term: the student's own layers are counted, no teacher weights needed
    model = build_model(
        cfg, num_classes=num_classes, pretrained=False, teacher=bool(teacher), distill=False
    )
    return model, notes


def test_time_parameters(
    model: nn.Module, input_size: Tuple[int, int] = (64, 32)
) -> List[nn.Parameter]:
    """Parameters that the eval-mode feature (B, D) depends on (measured by a backward pass)."""
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
            p.grad = None
        device = params[0].device if params else torch.device("cpu")
        with eval_mode(model):
            feat = model(torch.randn(2, 3, *input_size, device=device))
        feat.float().sum().backward()
        used = [p for p in params if p.grad is not None]
    finally:
        for p, (req, grad) in zip(params, saved):
            p.requires_grad_(req)
            p.grad = grad
    return used


def model_summary(model: nn.Module, input_size: Tuple[int, int] = (64, 32)) -> Dict[str, Any]:
    """Counts in millions, the backbone's stage specs and (PTL models) the state settings."""
    total = count_parameters(model.parameters())
    test = count_parameters(test_time_parameters(model, input_size))
    out: Dict[str, Any] = {
        "model": type(model).__name__ + ("+PTL" if getattr(model, "ptl", None) is not None else ""),
        "params_m": round(total / 1e6, 2),
        "test_params_m": round(test / 1e6, 2),
        "classifier_params_m": round((total - test) / 1e6, 2),
        "stages": [],
    }
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "stage_specs"):
        specs = [backbone.stem_spec] + list(backbone.stage_specs)
        out["stages"] = [dict(name=s.name, channels=s.channels, stride=s.stride) for s in specs]
    ptl = getattr(model, "ptl_state_info", lambda: None)()
    if ptl:
        out["ptl"] = ptl
    return out


def format_summary(summary: Dict[str, Any], paper_params_m: Optional[float] = None) -> str:
    """Human-readable lines for the log and ``tools/model_info.py``."""
    lines = [
        f"model {summary['model']}: {summary['params_m']:.2f}m parameters, "
        f"{summary['test_params_m']:.2f}m used at test time "
        f"(classifiers {summary['classifier_params_m']:.2f}m)"
    ]
    if paper_params_m is not None:
        lines.append(f"paper #Param.: {paper_params_m}m")
    stages: Sequence[dict] = summary.get("stages", [])
    if stages:
        lines.append(
            "stages: "
            + ", ".join(f"{s['name']}({s['channels']}ch, /{s['stride']})" for s in stages)
        )
    if "ptl" in summary:
        lines.append("ptl: " + ", ".join(f"{k}={v}" for k, v in summary["ptl"].items()))
    for note in summary.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
