"""Checkpoints: atomic writes, ``weights_only`` loading, fall-back to the last good file."""

from __future__ import annotations

import glob
import io
import logging
import os
import random
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .misc import atomic_write_bytes

logger = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, truncated, corrupt or needs unsafe unpickling."""


class NonFiniteStateError(CheckpointError):
    """A state about to be saved holds NaN or Inf values; it is not written."""


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to a unique temporary file in the same folder, then rename over ``path``.

    A failed write (disk full, kill) never leaves a partial ``path``; the temporary file is
    removed on failure, or on the next run's start if the writer was killed.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)  # into memory: torch reports a failed file write as a bare RuntimeError
    atomic_write_bytes(buf.getbuffer(), path)


def nonfinite_tensors(obj: Any, prefix: str = "") -> List[str]:
    """Names of the floating-point tensors in a (nested) state that hold NaN or Inf."""
    bad: List[str] = []
    if isinstance(obj, torch.Tensor):
        if (obj.is_floating_point() or obj.is_complex()) and not torch.isfinite(obj).all():
            bad.append(prefix or "tensor")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            bad += nonfinite_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad += nonfinite_tensors(v, f"{prefix}[{i}]")
    return bad


def _plain_pickle_globals(path: str) -> Optional[List[str]]:
    """The classes and functions a plain pickle file names, read without running it (opcodes
    only); None when the file is not one well-formed pickle."""
    import pickletools

    names: List[str] = []
    strings: List[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name == "GLOBAL":
                    names.append(str(arg).replace(" ", "."))
                elif "UNICODE" in op.name or op.name.endswith("STRING"):
                    strings.append(str(arg))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                if op.name == "STOP":
                    return list(dict.fromkeys(names))
    except Exception:  # noqa: BLE001  not a pickle: any parse error means just that
        return None
    return None


def load_file(path: str, trusted: bool = False) -> Dict[str, Any]:
    """Load with ``weights_only=True``; ``trusted=True`` allows full unpickling of legacy files."""
    if not os.path.isfile(path):
        raise CheckpointError(
            f"checkpoint not found: {path}"
            + (" (that is a folder: name the .pth file inside it)" if os.path.isdir(path) else "")
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as e:  # noqa: BLE001
        text = str(e)
        if not trusted and "Unsupported global" in text:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"{path} holds Python objects{what} that only full unpickling can rebuild, which "
                "can run code; if you trust its source, re-save its tensors as a state dict "
                "(reidbox.utils.checkpoint.load_file(path, trusted=True)) and use that file"
            ) from None
        found_names = _plain_pickle_globals(path)
        if found_names is not None:
            what = f" holding objects ({', '.join(found_names[:3])})" if found_names else ""
            raise CheckpointError(
                f"{path} is a plain Python pickle{what}, not a torch.save file; it was not "
                "loaded because unpickling it can run code; if you trust its source, load it "
                "with pickle yourself and torch.save its tensors as a state dict"
            ) from None
        detail = (
            (text.split("WeightsUnpickler error:")[-1].strip().splitlines() or [""])[0]
            if "WeightsUnpickler" in text
            else (text.splitlines() or [""])[0]
        )
        detail = detail.split(". ")[0].rstrip(".") or type(e).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path}: truncated or corrupt, or not a torch.save file "
            f"({detail}); use an intact .pth file"
        ) from None


#: Prefixes that wrappers add to every key: DataParallel/DDP (``module.``), Lightning-style
#: modules that hold the network as ``self.model`` (``model.``).
WRAPPER_PREFIXES = ("module.", "model.")
#: Module names of the training-only classifiers (reid heads, MGN, torchvision ``fc``): their
#: shape depends on the number of identities, so they may differ between files and models.
CLASSIFIER_NAMES = frozenset({"classifier", "classifiers", "fc"})


class WeightsMismatchError(CheckpointError):
    """A weight file does not fit the model (another architecture, config or wrapper)."""


def _is_state(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def model_state_from(obj: Any) -> Dict[str, torch.Tensor]:
    """The state dict inside a file: bare, or under ``model`` / ``state_dict`` (nested too)."""
    for _ in range(4):
        if _is_state(obj):
            return obj
        if not isinstance(obj, dict):
            break
        inner = next(
            (
                obj[k]
                for k in ("model", "state_dict", "model_state_dict")
                if isinstance(obj.get(k), dict)
            ),
            None,
        )
        if inner is None:
            break
        obj = inner
    raise CheckpointError(
        "file holds neither a state dict nor a checkpoint with a 'model' or 'state_dict' entry"
    )


def strip_wrapper_prefixes(
    state: Dict[str, torch.Tensor], own_keys: Iterable[str]
) -> Dict[str, torch.Tensor]:
    """Drop ``module.`` / ``model.`` when every key of the file carries it and no model key does."""
    own = list(own_keys)
    changed = True
    while changed and state:
        changed = False
        for p in WRAPPER_PREFIXES:
            if all(k.startswith(p) for k in state) and not any(k.startswith(p) for k in own):
                state = {k[len(p) :]: v for k, v in state.items()}
                changed = True
    return state


def is_classifier_key(key: str) -> bool:
    """True for tensors of a training-only classifier (``head.classifier.weight``, ``fc.bias``)."""
    return any(part in CLASSIFIER_NAMES for part in key.split(".")[:-1])


@dataclass
class LoadReport:
    """What :func:`load_state_into` did; every list holds state-dict keys."""

    source: str
    loaded: List[str] = field(default_factory=list)
    classifier: List[str] = field(default_factory=list)  # left as initialised (absent/reshaped)
    fresh: List[str] = field(default_factory=list)  # absent, listed by the file as fresh
    side: List[str] = field(default_factory=list)  # a plain twin's file: side network fresh
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        """Everything but the classifier was loaded."""
        return not (self.missing or self.unexpected or self.mismatched)

    def counts(self) -> str:
        fresh = f"{len(self.fresh)} fresh by design, " if self.fresh else ""
        side = f"{len(self.side)} of the side network fresh (a plain twin's file), " * bool(
            self.side
        )
        return (
            f"{len(self.loaded)} loaded, {len(self.classifier)} classifier skipped, {fresh}{side}"
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} shape mismatch"
        )

    def examples(self, n: int = 3) -> str:
        parts = []
        for name, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
        ):
            if keys:
                parts.append(f"{name}: {', '.join(keys[:n])}{' ...' if len(keys) > n else ''}")
        return "; ".join(parts)


def adapt_to_model(model: nn.Module, state: Dict[str, torch.Tensor], twin: bool = False):
    """``(state, side_keys)``: ``state`` as the model reads it (its ``adapt_state``, where the
    meta-architecture declares one: legacy names; with ``twin``, a plain twin's file in a PTL
    model) and the keys it leaves fresh on purpose."""
    adapt = getattr(model, "adapt_state", None)
    if not callable(adapt):
        return state, []
    state, side = adapt(state, twin)
    return state, set(side)


def match_state(
    model: nn.Module,
    state: Dict[str, torch.Tensor],
    source: str,
    *,
    skip_classifier: bool = True,
    fresh: Iterable[str] = (),
    twin: bool = False,
) -> Tuple[LoadReport, Dict[str, torch.Tensor]]:
    """How ``state`` fits ``model``, without loading it: the :class:`LoadReport` and the
    tensors that fit (keyed as the model names them). The rules are
    :func:`load_state_into`'s; ``--resume`` reads the report to say why a checkpoint does not
    fit (``skip_classifier=False``: a run's own checkpoint holds its classifier)."""
    own = model.state_dict()
    state = strip_wrapper_prefixes(state, own)
    rep = LoadReport(source)
    state, side = adapt_to_model(model, state, twin)
    fitting = {}
    for k, v in state.items():
        cls = skip_classifier and is_classifier_key(k)
        if k not in own:
            if not cls:
                rep.unexpected.append(k)
        elif own[k].shape != v.shape and own[k].numel() > 0:
            (rep.classifier if cls else rep.mismatched).append(k)
        else:
            fitting[k] = v
    fresh = set(fresh)
    for k in own:
        if k not in state:
            if skip_classifier and is_classifier_key(k):
                rep.classifier.append(k)
            elif k in side:
                rep.side.append(k)
            else:
                (rep.fresh if k in fresh else rep.missing).append(k)
    rep.loaded = list(fitting)
    return rep, fitting


def load_state_into(
    model: nn.Module,
    state: Dict[str, torch.Tensor],
    source: str,
    *,
    what: str = "MODEL.WEIGHTS",
    partial: bool = False,
    skip_classifier: bool = True,
    partial_key: Optional[str] = "MODEL.WEIGHTS_PARTIAL",
    fresh: Iterable[str] = (),
    twin: bool = False,
) -> LoadReport:
    """Copy the tensors of ``state`` into ``model``; the one place weight files meet models.

    Wrapper prefixes are stripped; an empty tensor of the model (a buffer sized on first use,
    such as center loss's centers) takes the file's shape; classifier tensors (see
    :func:`is_classifier_key`) that are absent or of another shape stay as initialised when
    ``skip_classifier``. Anything else
    missing, unexpected or of another shape raises :class:`WeightsMismatchError` (one line
    naming ``what``, the file and ``partial_key``, the opt-in; None: no opt-in) unless
    ``partial`` is True, when it is logged and only the fitting tensors load. ``fresh``: keys
    that may be absent because whoever wrote the file left them initialised on purpose (a
    chain step's ``init_weights.pth``).
    """
    rep, fitting = match_state(
        model, state, source, skip_classifier=skip_classifier, fresh=fresh, twin=twin
    )
    if not rep.fits and not partial:
        opt_in = (
            f", or set {partial_key} True to load only the tensors that fit" if partial_key else ""
        )
        raise WeightsMismatchError(
            f"{what} {source} does not fit the model ({rep.counts()}; {rep.examples()}); "
            f"use a file saved from this config{opt_in}"
        )
    model.load_state_dict(fitting, strict=False)
    log = logger.warning if not rep.fits else logger.info
    log(
        "%s %s: %s%s",
        what,
        source,
        rep.counts(),
        f" (partial load: {rep.examples()})" if not rep.fits else "",
    )
    return rep


def load_model_weights(
    model: nn.Module,
    path: str,
    *,
    what: str = "MODEL.WEIGHTS",
    partial: bool = False,
    skip_classifier: bool = True,
    partial_key: Optional[str] = "MODEL.WEIGHTS_PARTIAL",
    trusted: bool = False,
    twin: bool = False,
) -> LoadReport:
    """Load a weight file (checkpoint, ``model_final.pth``, DDP/DataParallel or wrapped state
    dict) into ``model`` with :func:`load_state_into`'s rules; returns its report. ``twin``:
    training starts from the file, which may be the model's plain twin (side network fresh).

    Classifier layers sized for another dataset's identities are skipped and reported, so a
    model trained on one dataset can be fine-tuned or tested on another.
    """
    try:
        obj = load_file(path, trusted)
        state = model_state_from(obj)
    except CheckpointError as e:
        raise CheckpointError(f"{what}: {e}" if path in str(e) else f"{what} {path}: {e}") from None
    bad = nonfinite_tensors(state)
    if bad:
        raise NonFiniteStateError(
            f"{what} {path}: {len(bad)} weight tensor(s) hold NaN or Inf (e.g. {bad[0]}), so "
            "every feature would be NaN; these weights come from a run that diverged: use an "
            "earlier checkpoint or retrain (e.g. with a lower SOLVER.BASE_LR)"
        )
    fresh = obj.get("fresh", ()) if isinstance(obj, dict) else ()
    return load_state_into(
        model,
        state,
        path,
        what=what,
        partial=partial,
        skip_classifier=skip_classifier,
        partial_key=partial_key,
        fresh=[k for k in fresh if isinstance(k, str)],
        twin=twin,
    )


def rng_states() -> Dict[str, Any]:
    """Python, numpy and torch RNG states as tensors/lists (loadable with weights_only)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: Dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = states["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Checkpointer:
    """Epoch checkpoints ``checkpoint_EEEE.pth`` in ``directory``; keeps the newest ``keep`` of
    its own run.

    Pruning only ever removes older checkpoints this run wrote (listed in the folder's run
    record once :meth:`bind` gave a run id, else those this object saved), never the file just
    written and never another run's or an unreadable file. Saved states carry ``run_id``.
    """

    PATTERN = re.compile(r"checkpoint_(\d+)\.pth$")

    def __init__(self, directory: str, keep: int = 3, run_id: Optional[str] = None) -> None:
        self.directory = directory
        self.keep = max(1, keep)
        self.run_id = run_id
        self.record: Optional[Dict[str, Any]] = None
        self._own: List[str] = []

    def bind(self, record: Dict[str, Any]) -> None:
        """Adopt a run record (``run_id``, ``checkpoints``), kept up to date in ``run.json``."""
        self.record, self.run_id = record, record["run_id"]
        self._own = list(record.setdefault("checkpoints", []))

    def path(self, epoch: int) -> str:
        return os.path.join(self.directory, f"checkpoint_{epoch:04d}.pth")

    def _sync_record(self) -> None:
        if self.record is not None:
            from .run_folder import write_run_record

            self.record["checkpoints"] = list(self._own)
            write_run_record(self.directory, self.record)

    def save(self, epoch: int, state: Dict[str, Any]) -> str:
        """Write ``checkpoint_<epoch>.pth`` (refused if the state holds NaN/Inf), then prune."""
        bad = nonfinite_tensors({k: v for k, v in state.items() if k != "rng_per_rank"})
        if bad:
            raise NonFiniteStateError(
                f"the state after epoch {epoch} holds non-finite values ({', '.join(bad[:5])}); "
                "not saved as a checkpoint"
            )
        path = self.path(epoch)
        name = os.path.basename(path)
        if self.run_id:
            state = dict(state, run_id=self.run_id)
        if name not in self._own:
            self._own.append(name)
            self._sync_record()  # listed before it exists: a kill mid-write leaves no orphan
        atomic_save(state, path)
        own = sorted(self._own, key=lambda n: int(self.PATTERN.search(n).group(1)))
        for old in own[: -self.keep]:
            if old == name:
                continue
            try:
                os.remove(os.path.join(self.directory, old))
            except FileNotFoundError:
                pass
            self._own.remove(old)
        self._sync_record()
        return path

    def list(self) -> List[str]:
        """Every ``checkpoint_*.pth`` in the folder (any run), oldest epoch first."""
        files = glob.glob(os.path.join(self.directory, "checkpoint_*.pth"))
        return sorted(
            (f for f in files if self.PATTERN.search(f)),
            key=lambda f: int(self.PATTERN.search(f).group(1)),
        )

    def load_latest(self, trusted: bool = False) -> Optional[Dict[str, Any]]:
        """Newest readable checkpoint of this run; a corrupt newest file, or one another run
        wrote (its ``run_id`` differs), falls back to the previous one. Without a run id (or
        for files from before run ids) any readable checkpoint counts."""
        for path in reversed(self.list()):
            try:
                state = load_file(path, trusted)
            except CheckpointError as e:
                logger.warning("%s; falling back to the previous checkpoint", e)
                continue
            other = state.get("run_id") if isinstance(state, dict) else None
            if self.run_id and other and other != self.run_id:
                logger.warning(
                    "%s belongs to another run (%s, this folder's run is %s); "
                    "falling back to the previous checkpoint",
                    path,
                    other,
                    self.run_id,
                )
                continue
            state["_path"] = path
            return state
        return None
