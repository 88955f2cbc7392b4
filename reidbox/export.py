"""Export the test-time feature extractor (PTL: eval mode, zero latent state).

The exported file carries its preprocessing contract (input size, RGB, mean/std, that the
output rows are L2-normalised) as metadata: ONNX ``metadata_props`` (one ``reidbox.<key>``
entry per field and the whole contract as JSON under ``reidbox.preprocessing``), TorchScript
an extra file ``reidbox_preprocessing.json``; :func:`read_metadata` reads either back. The
input height and width are fixed at export, the batch size is free.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from typing import Any, Dict, Iterator, Optional

import torch
from torch import nn

from .errors import InputError, MissingDependencyError, UnknownNameError
from .utils.misc import atomic_write_bytes

METADATA_KEY = "reidbox.preprocessing"
TORCHSCRIPT_EXTRA = "reidbox_preprocessing.json"


class _FeatureModel(nn.Module):
    """Eval-mode features, L2-normalised (what retrieval uses)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, D)
        return torch.nn.functional.normalize(self.model(images), dim=1)


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


def _contract(preprocessing: Optional[Dict[str, Any]], input_size, dim: int) -> Dict[str, Any]:
    meta = dict(preprocessing or {})
    meta["input_size_hw"] = [int(s) for s in input_size]
    meta["flip_averaged"] = False  # the exported graph runs one pass; flip in the caller
    meta["l2_normalised"] = True
    meta["output"] = f"(B, {dim}) float32 features, unit L2 norm per row"
    meta["input"] = f"(B, 3, {input_size[0]}, {input_size[1]}) float32, named 'images'"
    return meta


def export_model(
    model: nn.Module,
    fmt: str,
    output: str,
    input_size=(256, 128),
    batch: int = 2,
    preprocessing: Optional[Dict[str, Any]] = None,
) -> str:
    """Write ``model``'s feature extractor as TorchScript or ONNX (dynamic batch size), with
    the preprocessing contract (``preprocessing``, e.g. from
    ``reidbox.data.transforms.preprocessing(cfg)``, completed with input size and output) in
    its metadata."""
    wrapped = _FeatureModel(model).cpu().eval()
    example = torch.randn(batch, 3, *input_size)
    with torch.no_grad():
        dim = int(wrapped(example).shape[1])
    meta = _contract(preprocessing, input_size, dim)
    if fmt == "torchscript":
        with torch.no_grad(), _quiet_export():
            traced = torch.jit.trace(wrapped, example)
        buf = io.BytesIO()
        with _quiet_export():  # into memory: torch aborts the process on a failed write
            torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta)})
        data = buf.getbuffer()
    elif fmt == "onnx":
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
        data = proto.SerializeToString()
    else:
        raise UnknownNameError(f"unknown export format {fmt!r}; available: onnx, torchscript")
    atomic_write_bytes(data, output)  # a full disk or unwritable path: OSError naming the file
    return output


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
