"""Export the test-time feature extractor (PTL: eval mode, zero latent state).

The exported graph is a :class:`reidbox.evaluation.FeatureModel`: the config's flip averaging
(``TEST.FLIP_AUG``) and L2 normalisation (``TEST.NORM_FEAT``) are baked in, so the file gives
the features ``test_net`` evaluates. The file carries its preprocessing contract (input size,
RGB, mean/std, whether the output rows are flip-averaged and L2-normalised) as metadata: ONNX
``metadata_props`` (one ``reidbox.<key>`` entry per field and the whole contract as JSON under
``reidbox.preprocessing``), TorchScript an extra file ``reidbox_preprocessing.json``;
:func:`read_metadata` reads either back. The input height and width are fixed at export, the
batch size is free.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from typing import Any, Dict, Iterator, Optional, Union

import torch
from torch import nn

from .evaluation.features import FeatureModel
from .errors import InputError, MissingDependencyError, UnknownNameError
from .utils.misc import atomic_write_bytes

METADATA_KEY = "reidbox.preprocessing"
TORCHSCRIPT_EXTRA = "reidbox_preprocessing.json"


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence what the exporters say that a user cannot act on: ``torch.jit``'s deprecation
    notices (TorchScript is still written and loads; ONNX is the format to prefer), and
    TracerWarnings from shape checks, which are constant because height and width are fixed
    at export (the tests run the files at another batch size against PyTorch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+.* is deprecated")
        yield


def _contract(
    preprocessing: Optional[Dict[str, Any]], input_size, dim: int, features: FeatureModel
) -> Dict[str, Any]:
    meta = dict(preprocessing or {})
    meta["input_size_hw"] = [int(s) for s in input_size]
    meta.update(features.rules())  # what the graph itself does: the caller does neither
    norm = "unit L2 norm per row" if features.normalize else "not normalised"
    flip = ", averaged with the mirrored image's" if features.flip else ""
    meta["output"] = f"(B, {dim}) float32 features{flip}, {norm}"
    meta["input"] = f"(B, 3, {input_size[0]}, {input_size[1]}) float32, named 'images'"
    return meta


def export_model(
    model: Union[FeatureModel, nn.Module],
    fmt: str,
    output: str,
    input_size=(256, 128),
    batch: int = 2,
    preprocessing: Optional[Dict[str, Any]] = None,
) -> str:
    """Write ``model``'s features as TorchScript or ONNX (dynamic batch size), with the
    preprocessing contract (``preprocessing``, e.g. from
    ``reidbox.data.transforms.preprocessing(cfg)``, completed with input size, the baked-in
    rules and output) in its metadata.

    ``model``: a :class:`FeatureModel` (``FeatureModel.from_config(model, cfg)``: the config's
    flip and normalisation rules go into the graph), or a bare model, exported as
    ``FeatureModel(model)`` (one pass, L2-normalised)."""
    wrapped = model if isinstance(model, FeatureModel) else FeatureModel(model)
    wrapped = wrapped.cpu().eval()
    example = torch.randn(batch, 3, *input_size)
    with torch.no_grad():
        dim = int(wrapped(example).shape[1])
    meta = _contract(preprocessing, input_size, dim, wrapped)
    if fmt == "torchscript":
        data = _torchscript_bytes(wrapped, example, meta)
    elif fmt == "onnx":
        data = _onnx_bytes(wrapped, example, meta)
    else:
        raise UnknownNameError(f"unknown export format {fmt!r}; available: onnx, torchscript")
    atomic_write_bytes(data, output)  # a full disk or unwritable path: OSError naming the file
    return output


def _torchscript_bytes(wrapped: nn.Module, example: torch.Tensor, meta: Dict[str, Any]):
    """The traced module with the contract as an extra file, serialised into memory (torch
    aborts the process on a failed write)."""
    with torch.no_grad(), _quiet_export():
        traced = torch.jit.trace(wrapped, example)
    buf = io.BytesIO()
    with _quiet_export():
        torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta)})
    return buf.getbuffer()


def _onnx_bytes(wrapped: nn.Module, example: torch.Tensor, meta: Dict[str, Any]) -> bytes:
    """The ONNX program (dynamic batch) with the contract in its metadata and doc string."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise MissingDependencyError(
            "ONNX export needs onnx and onnxscript: pip install -e .[export]"
        ) from None
    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    with _quiet_export():
        program = torch.onnx.export(
            wrapped,
            (example,),
            None,  # the program, serialised below: written by torch, a failed write is opaque
            input_names=["images"],
            output_names=["features"],
            dynamo=True,
            external_data=False,
            dynamic_shapes={"images": {0: batch_dim}},
            verbose=False,
        )
    proto = program.model_proto
    del proto.metadata_props[:]
    entries = {METADATA_KEY: json.dumps(meta)}
    entries.update({f"reidbox.{k}": json.dumps(v) for k, v in meta.items()})
    for k, v in entries.items():
        proto.metadata_props.add(key=k, value=v)
    proto.doc_string = "reidbox feature extractor; preprocessing: " + json.dumps(meta)
    return proto.SerializeToString()


def read_metadata(path: str) -> Dict[str, Any]:
    """The preprocessing contract an exported ``.onnx`` or TorchScript file carries."""
    if path.endswith(".onnx"):
        import onnx

        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        if METADATA_KEY not in props:
            raise InputError(f"{path} carries no reidbox preprocessing metadata; re-export it")
        return json.loads(props[METADATA_KEY])
    extra = {TORCHSCRIPT_EXTRA: ""}
    with _quiet_export():
        torch.jit.load(path, map_location="cpu", _extra_files=extra)
    if not extra[TORCHSCRIPT_EXTRA]:
        raise InputError(f"{path} carries no reidbox preprocessing metadata; re-export it")
    return json.loads(extra[TORCHSCRIPT_EXTRA])
