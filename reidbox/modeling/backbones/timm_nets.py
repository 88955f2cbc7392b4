"""Any timm CNN as a :class:`StagedBackbone`: ``MODEL.BACKBONE.NAME "timm:<model name>"``.

timm's feature-extraction wrapper (``features_only``) runs a model's top-level modules in
order and names the ones whose output is a feature map of the network's pyramid. The stages
here are those groups of modules, each ending at a feature map of stride 4 or more; the
modules before the first stage's last module are the stem. Channels and strides are measured
like every other backbone's, so PTL and MGN-style taps need nothing per architecture.

Networks whose features are not NCHW maps (vision transformers: tokens; Swin: NHWC) are
refused in one line: the PTL cells, the pooling heads and the last-stride option all read
convolutional maps.
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional, Tuple

import torch
from torch import nn

from ...errors import UserError
from ...utils.misc import eval_mode
from .staged import StagedBackbone, WeightsNotFoundError, check_last_stride

logger = logging.getLogger(__name__)

#: ``MODEL.BACKBONE.NAME`` prefix that selects a timm model
PREFIX = "timm:"


class TimmModelError(UserError, ValueError):
    """The timm model named in ``MODEL.BACKBONE.NAME`` does not exist or is not a CNN."""


def is_timm_name(name: str) -> bool:
    return str(name).lower().startswith(PREFIX)


def _timm():
    import timm  # imported on use: timm registers ~1000 models at import

    return timm


def _model_name(name: str) -> str:
    model = str(name)[len(PREFIX) :]
    if not _timm().is_model(model):
        raise TimmModelError(
            f"MODEL.BACKBONE.NAME {name!r}: timm has no model {model!r} "
            f'(timm {_timm().__version__}; `python -c "import timm; '
            f"print(timm.list_models('{model.split('_')[0]}*'))\"` lists similar names)"
        )
    return model


def _hf_cache_folder(hub_id: str) -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return os.path.join(HF_HUB_CACHE, "models--" + hub_id.replace("/", "--"))


def timm_weights_file(model: str) -> Tuple[Optional[str], str, str]:
    """(the cached file timm would read, or None; where timm caches it; its published URL).

    timm downloads ``hf_hub_id`` models into the Hugging Face cache
    (``$HF_HOME/hub/models--<org>--<name>/snapshots/<revision>/``) and URL-only ones into
    torch's (``$TORCH_HOME/hub/checkpoints/``); only a file already there is used.
    """
    cfg = _pretrained_cfg(model)
    hub_id = timm_hub_id(model)
    url = getattr(cfg, "url", "") if cfg is not None else ""
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        filename = getattr(cfg, "hf_hub_filename", None) or "model.safetensors"
        for name in (filename, "pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, name)
            if isinstance(found, str) and os.path.isfile(found):
                return found, _hf_cache_folder(hub_id), f"https://huggingface.co/{hub_id}"
        return None, _hf_cache_folder(hub_id), f"https://huggingface.co/{hub_id} ({filename})"
    if url:
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
        return (path if os.path.isfile(path) else None), path, url
    return None, "", ""


def _pretrained_cfg(model: str):
    return _timm().models.get_pretrained_cfg(model) or _default_cfg(model)


def timm_hub_id(model: str) -> str:
    """The Hugging Face repository timm downloads ``model``'s weights from ("" if none)."""
    cfg = _pretrained_cfg(model)
    return (getattr(cfg, "hf_hub_id", None) or "") if cfg is not None else ""


def _default_cfg(model: str):
    """The pretrained config timm would use for a bare architecture name (its default tag)."""
    try:
        tag = _timm().models.get_arch_pretrained_cfgs(model)
    except Exception:  # noqa: BLE001 - an architecture without published weights
        return None
    return next(iter(tag.values()), None) if tag else None


def _weights_path(name: str, model: str, weights: str) -> str:
    if weights:
        if not os.path.isfile(weights):
            raise WeightsNotFoundError(
                f"ImageNet weights not found at {weights} (MODEL.BACKBONE.WEIGHTS for {name}): "
                "point it at the file, or set MODEL.BACKBONE.PRETRAINED False"
            )
        return weights
    found, cache, url = timm_weights_file(model)
    if found:
        return found
    if not url:
        raise WeightsNotFoundError(
            f"timm publishes no ImageNet weights for {model}: set MODEL.BACKBONE.WEIGHTS to a "
            "file of your own, or MODEL.BACKBONE.PRETRAINED False"
        )
    raise WeightsNotFoundError(
        f"ImageNet weights for {name} not found in timm's cache {cache}. Download {url} on a "
        "machine with internet access (timm.create_model(..., pretrained=True) fills that "
        "cache; copy it here), or set MODEL.BACKBONE.WEIGHTS to the file's path, or set "
        "MODEL.BACKBONE.PRETRAINED False."
    )


def _check_file(name: str, model: str, path: str) -> None:
    """``path`` must hold every tensor of ``model`` but its classifier, each of the right shape
    (timm's feature wrapper loads leniently and only warns; a half-random backbone must fail)."""
    from timm.models import load_state_dict

    from ...utils.checkpoint import CheckpointError, WeightsMismatchError

    with torch.device("meta"):
        full = _timm().create_model(model)
    classifier = full.pretrained_cfg.get("classifier") or "fc"
    classifiers = classifier if isinstance(classifier, (list, tuple)) else [classifier]

    def body(state):
        return {
            k: tuple(v.shape)
            for k, v in state.items()
            if not any(k == c or k.startswith(c + ".") for c in classifiers)
        }

    try:
        state = load_state_dict(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets one clear line
        raise CheckpointError(f"cannot read ImageNet weights {path}: {_why(e)}") from None
    own, got = body(full.state_dict()), body(state)
    if own != got:
        missing = sorted(set(own) - set(got))
        other = sorted(k for k in set(own) & set(got) if own[k] != got[k])
        extra = sorted(set(got) - set(own))
        raise WeightsMismatchError(
            f"ImageNet weight file {path} does not fit {name} ({len(missing)} missing, "
            f"{len(other)} of another shape, {len(extra)} unexpected; e.g. "
            f"{(missing + other + extra)[0]}): point MODEL.BACKBONE.WEIGHTS at a {model} file"
        )


def _features_net(name: str, model: str, path: Optional[str]) -> nn.Module:
    """timm's ``FeatureListNet`` of ``model`` (ImageNet weights from ``path`` when given)."""
    from timm.models import FeatureDictNet

    kwargs = dict(features_only=True, pretrained=path is not None)
    if path is not None:
        _check_file(name, model, path)
        kwargs["pretrained_cfg_overlay"] = dict(file=path)
    attempts = [dict(feature_cls="list"), dict(feature_cfg=dict(flatten_sequential=True))]
    net, error = None, None
    for extra in attempts:
        try:
            net = _timm().create_model(model, **kwargs, **extra)
        except (RuntimeError, KeyError, ValueError, AssertionError, TypeError) as e:
            error = e  # e.g. a model whose features are not a module list (ViT)
            continue
        if isinstance(net, FeatureDictNet):
            return net
    logger.debug("timm features_only failed for %s: %s", model, error)
    raise TimmModelError(
        f"{name} cannot be split into stages of convolutional feature maps (a transformer's "
        "features are tokens): reidbox takes timm CNNs; pick a convolutional model (e.g. "
        "timm:resnet50, timm:convnext_tiny, timm:regnety_008)"
    )


def _why(error: Optional[Exception]) -> str:
    return str(error).splitlines()[0][:120] if error else "timm returns no module list"


def _groups(net: nn.Module) -> List[List[nn.Module]]:
    """The wrapper's modules cut after each returned feature map of stride >= 4."""
    strides = dict(zip(net.return_layers, net.feature_info.reduction()))
    groups, current = [], []
    for key, module in net.items():
        current.append(module)
        if key in strides and strides[key] >= 4:
            groups.append(current)
            current = []
    return groups


def _set_last_stride_1(stage: nn.Module) -> None:
    """Stride 1 for the stride-2 convs and poolings of the last stage (a kernel-2, stride-2
    pooling, whose stride-1 version would shrink the map by a pixel, becomes an identity)."""
    for parent in stage.modules():
        for child_name, child in parent.named_children():
            stride = getattr(child, "stride", None)
            if isinstance(child, nn.Conv2d) and tuple(child.stride) == (2, 2):
                child.stride = (1, 1)
            elif isinstance(child, (nn.AvgPool2d, nn.MaxPool2d)) and stride in (2, (2, 2)):
                if child.kernel_size in (2, (2, 2)):
                    setattr(parent, child_name, nn.Identity())
                else:
                    child.stride = 1


def timm_backbone(
    name: str, pretrained: bool = False, weights: str = "", last_stride: int = 1, **_
) -> StagedBackbone:
    model = _model_name(name)
    check_last_stride(last_stride, name)
    path = _weights_path(name, model, weights) if pretrained else None
    net = _features_net(name, model, path)
    groups = _groups(net)
    if len(groups) < 2:
        raise TimmModelError(f"{name} has fewer than two feature stages of stride >= 4")
    first = groups[0]
    stem_modules = first[:-1] or first
    stages = [first[-1:]] + groups[1:] if len(first) > 1 else groups[1:]
    if last_stride == 1:
        for m in stages[-1]:
            _set_last_stride_1(m)
    stem = nn.Sequential(*stem_modules)
    named = [(f"stage{i + 1}", nn.Sequential(*mods)) for i, mods in enumerate(stages)]
    _check_maps(name, stem, [m for _, m in named])
    backbone = StagedBackbone(stem, named)
    specs = backbone.stage_specs
    if last_stride == 1 and specs[-1].stride != specs[-2].stride:
        raise ValueError(
            f"{name} cannot run its last stage at stride 1 (it downsamples with a layer that "
            "would change the map's size, not just its stride): set MODEL.BACKBONE.LAST_STRIDE 2"
        )
    return backbone


def _check_maps(name: str, stem: nn.Module, stages: List[nn.Module]) -> None:
    """Every stage must output an NCHW map whose size halves or holds (not NHWC tokens)."""
    with eval_mode(stem), torch.no_grad():
        try:
            h = stem(torch.zeros(1, 3, 64, 64))
        except Exception as e:  # noqa: BLE001 - e.g. a transformer fixed to 224 x 224
            raise TimmModelError(
                f"{name} does not run on a 64 x 64 probe ({_why(e)}): reidbox takes timm CNNs, "
                "which run at any input size"
            ) from None
        prev = h.shape
        for stage in stages:
            with eval_mode(stage):
                h = stage(h)
            if h.dim() != 4 or h.shape[-1] > prev[-1] or h.shape[-2] > prev[-2]:
                raise TimmModelError(
                    f"{name} outputs {tuple(h.shape)} after {tuple(prev)}, not an NCHW map "
                    "(a transformer's tokens or NHWC maps): reidbox takes timm CNNs"
                )
            prev = h.shape
