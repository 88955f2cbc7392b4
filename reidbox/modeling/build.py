"""``build_model``: the only reader of ``cfg.MODEL``."""

from __future__ import annotations

import inspect
from typing import Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..registry import LOSSES, META_ARCHS
from ..utils.checkpoint import load_file, load_model_weights
from .backbones import build_backbone
from .meta_arch.ptl import refuse_side_network
from ..errors import InputError


def build_losses(cfg, num_classes: int = 0) -> Tuple[Dict[str, nn.Module], Dict[str, float]]:
    """Loss modules and weights named in ``MODEL.LOSSES.NAMES``.

    Each registered loss reads its own options (``from_config(cfg)``, given ``num_classes``
    too when it takes that argument: center loss sizes its centers) and weight
    (``config_weight(cfg)``); one that declares neither (a plugin) is built with no arguments
    and weighs 1.
    """
    losses, weights = {}, {}
    for name in cfg.MODEL.LOSSES.NAMES:
        loss = LOSSES.get(name)
        make, weight = getattr(loss, "from_config", None), getattr(loss, "config_weight", None)
        extra = (
            {"num_classes": num_classes}
            if make is not None and "num_classes" in inspect.signature(make).parameters
            else {}
        )
        losses[name] = make(cfg, **extra) if make is not None else loss()
        weights[name] = float(weight(cfg)) if weight is not None else 1.0
    return losses, weights


def build_teacher(config_path: str) -> nn.Module:
    """A distillation teacher's architecture from its run's ``config.yaml``, frozen, in eval
    mode, with ``input_size`` (its test size); its weights load when training starts."""
    from ..config import load_config

    tcfg = load_config(config_path)
    # no ImageNet file (its trained weights load over it), no distillation of its own
    teacher = build_model(tcfg, num_classes=1, pretrained=False, distill=False)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.input_size = tuple(tcfg.INPUT.SIZE_TEST)
    return teacher


def model_display_name(
    meta_arch: str, backbone: str, ptl: bool = False, head: str = "embedding"
) -> str:
    """How result tables name a model (``resnet50+PTL``, ``MGN+PTL``, ``resnet18 [paper
    head]``): the registered meta-architecture's ``display_name`` (else ``meta_arch/backbone``),
    ``+PTL`` with the side network, the head where it is not the meta-architecture's usual one.
    A former alias (``ptl``, ``mgn_ptl``, in an earlier run's config) is named as it resolves."""
    from ..config.loader import ARCH_ALIASES

    if meta_arch in ARCH_ALIASES:
        meta_arch, keys = ARCH_ALIASES[meta_arch]
        ptl, head = True, keys.get("HEADS.NAME", head)
    arch = META_ARCHS.get(meta_arch) if meta_arch in META_ARCHS else None
    template = getattr(arch, "display_name", None)
    name = template.format(backbone=backbone) if template else f"{meta_arch}/{backbone}"
    if ptl:
        name += "+PTL"
    if meta_arch == "baseline" and head != "embedding":
        name += f" [{head} head]"
    return name


def build_model(
    cfg,
    num_classes: int,
    *,
    pretrained: Optional[bool] = None,
    teacher: bool = True,
    distill: bool = True,
) -> nn.Module:
    """The model named by ``MODEL.META_ARCHITECTURE``, with ``num_classes`` training identities.

    Eval-mode forward returns (B, D) features; train-mode forward returns a ``ModelOutput``.
    A meta-architecture that distils (``takes_teacher``) receives the teacher built from
    ``MODEL.STD.TEACHER_CONFIG`` (:func:`build_teacher`) as an argument.

    The keywords build a model for its shapes or counts, never to train:

    - ``pretrained``: None follows ``MODEL.BACKBONE.PRETRAINED``; False reads no ImageNet file.
    - ``distill``: False builds a distilling student with lambda 0 (no distillation term, so no
      teacher weights are needed); the teacher architecture, which sets the student's feature
      width, is still built.
    - ``teacher``: False leaves the teacher out too (its config may not exist yet: it is an
      earlier chain step); implies ``distill=False``.
    """
    arch = META_ARCHS.get(cfg.MODEL.META_ARCHITECTURE)
    plain_only = getattr(arch, "plain_only", "")  # why it cannot carry PTL's side network
    if plain_only:
        refuse_side_network(cfg, cfg.MODEL.META_ARCHITECTURE, plain_only)  # before any weight
    b = cfg.MODEL.BACKBONE
    backbone = build_backbone(
        b.NAME,
        pretrained=b.PRETRAINED if pretrained is None else pretrained,
        weights=b.WEIGHTS,
        last_stride=b.LAST_STRIDE,
        drop_rate=b.DROP_RATE,
    )
    losses, weights = build_losses(cfg, num_classes)
    extra = {}
    if getattr(arch, "takes_teacher", False):
        teacher_config = cfg.MODEL.STD.TEACHER_CONFIG if teacher else ""
        extra["teacher"] = build_teacher(teacher_config) if teacher_config else None
        if not (distill and teacher):
            extra["lam"] = 0.0
    return arch.from_config(
        cfg,
        num_classes=num_classes,
        backbone=backbone,
        losses=losses,
        loss_weights=weights,
        **extra,
    )


def require_retrieval_model(cfg, who: str) -> None:
    """Feature extraction and export serve retrieval: a ``TASK: classification`` model's
    output is class logits, not an identity feature, so ``who`` refuses it in one line."""
    if cfg.TASK != "reid":
        from ..config import ConfigError

        raise ConfigError(
            f"{who} extracts ReID features, but this config has TASK {cfg.TASK!r} (its model "
            "outputs class logits): use a ReID config, or tools/test_net.py to evaluate it"
        )


def build_inference_model(
    cfg,
    weights: Optional[str],
    device: Union[str, torch.device] = "cpu",
    classifier: bool = False,
    num_classes: Optional[int] = None,
) -> nn.Module:
    """The model of ``cfg`` with ``weights`` (a ``model_final.pth``, checkpoint or state dict
    file; None: as built), in eval mode on ``device``: what testing, the API, export and
    visualization use.

    ``classifier`` False (retrieval): the training-only classifier is built for one class and
    the file's classifier is skipped, so weights of any identity count load. True (a
    classifier's logits are the output): ``num_classes`` classes (default: the count the file
    records) and every tensor must fit.
    """
    if not classifier:
        model = build_model(cfg, num_classes=1)
        if weights:
            load_model_weights(model, weights, partial=cfg.MODEL.WEIGHTS_PARTIAL)
        return model.to(device).eval()
    if not weights:
        raise InputError(
            "a classifier needs trained weights: pass --weights / MODEL.WEIGHTS "
            "(an untrained classifier's output means nothing)"
        )
    if num_classes is None:
        state = load_file(weights)
        num_classes = state.get("num_classes") if isinstance(state, dict) else None
    if not isinstance(num_classes, int):
        raise InputError(
            f"{weights} does not record num_classes: use a model_final.pth or "
            "checkpoint written by reidbox"
        )
    model = build_model(cfg, num_classes=num_classes)
    load_model_weights(
        model, weights, what="classifier weights", skip_classifier=False, partial_key=None
    )
    return model.to(device).eval()
