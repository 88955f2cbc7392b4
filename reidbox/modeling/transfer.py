"""Weights of one trained model as the start of another: everything but the classifier.

A transfer step (a chain step, the transfer demo's fine-tunes) trains on new identities, so the
classifier is always replaced by a freshly initialised one, even when the identity counts happen
to match: all of it, hidden layers included (PTL's three FC layers with their BN, MGN's eight
FC layers).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from ..utils.checkpoint import (
    WeightsMismatchError,
    adapt_to_model,
    atomic_save,
    load_file,
    model_state_from,
    strip_wrapper_prefixes,
)
from .build import build_model


def probe_model(cfg, num_classes: int) -> Tuple[Dict[str, Tuple[int, ...]], set]:
    """State-dict shapes of ``cfg``'s model, built on the meta device (no memory, no init),
    and the keys of its classifier: every tensor outside the model's ``test_modules()`` (the
    parts the retrieval feature uses), for meta-architectures that declare them."""
    shapes, classifier, _ = _probe(cfg, num_classes)
    return shapes, classifier


def _probe(cfg, num_classes: int):
    with torch.device("meta"):
        # for its shapes only: no ImageNet file, no distillation term
        model = build_model(cfg, num_classes, pretrained=False, distill=False)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    test_modules = getattr(model, "test_modules", None)
    if not callable(test_modules):
        return shapes, set(), model
    used = {id(t) for m in test_modules() for t in m.state_dict(keep_vars=True).values()}
    keys = {k for k, v in model.state_dict(keep_vars=True).items() if id(v) not in used}
    return shapes, keys, model


def transfer_weights(cfg, source: str, num_classes: int, out_path: str) -> Dict[str, Any]:
    """Write ``out_path``: the weights of ``source`` that fit ``cfg``'s model built for
    ``num_classes`` identities, without the classifier. Classifier tensors are those outside
    the model's ``test_modules()`` (where declared) plus those whose shape changes when the model
    is built for N + 1 identities. Returns the report (skipped, newly initialised and unused
    tensors) for the log and the manifest."""
    own, classifier, model = _probe(cfg, num_classes)
    other, _ = probe_model(cfg, num_classes + 1)
    classifier |= {k for k in own if other.get(k) != own[k]}
    obj = load_file(source)
    # a plain twin's weights into a PTL model: the joined layers widened, the side network fresh
    state, _ = adapt_to_model(model, strip_wrapper_prefixes(model_state_from(obj), own), True)
    skipped = [
        k for k in state if k in classifier or (k in own and tuple(state[k].shape) != own[k])
    ]
    keep = {k: v for k, v in state.items() if k in own and k not in skipped}
    new = [k for k in own if k not in keep]
    # Tensors only one side has are by design (a +STD student from a PTL model: the PTL branch
    # unused, a projection new); a non-classifier tensor of another shape, or nothing shared,
    # means another architecture.
    reshaped = [k for k in skipped if k not in classifier]
    if (reshaped or not any(k not in classifier for k in keep)) and not cfg.MODEL.WEIGHTS_PARTIAL:
        what = (
            f"shape mismatch: {', '.join(reshaped[:3])}"
            if reshaped
            else "no tensor but the classifier in common"
        )
        raise WeightsMismatchError(
            f"chain step weights {source} do not fit the step's model "
            f"({cfg.MODEL.META_ARCHITECTURE}/{cfg.MODEL.BACKBONE.NAME}; {what}); set "
            "MODEL.WEIGHTS_PARTIAL True to start from the tensors that fit"
        )
    # "fresh": the tensors left initialised on purpose; the loader accepts their absence (like a
    # classifier's) instead of calling the file incomplete
    atomic_save({"model": keep, "source": source, "fresh": new}, out_path)
    return {
        "weights": source,
        "init_file": out_path,
        "num_classes": num_classes,
        "previous_num_classes": obj.get("num_classes") if isinstance(obj, dict) else None,
        "skipped": skipped,
        "new": new,
        "unused": [k for k in state if k not in own],
    }
