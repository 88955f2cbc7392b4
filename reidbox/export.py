"""Export the test-time feature extractor (PTL: eval mode, zero latent state)."""

from __future__ import annotations

import io

import torch
from torch import nn

from .errors import MissingDependencyError, UnknownNameError
from .utils.misc import atomic_write_bytes


class _FeatureModel(nn.Module):
    """Eval-mode features, L2-normalised (what retrieval uses)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, D)
        return torch.nn.functional.normalize(self.model(images), dim=1)


def export_model(
    model: nn.Module, fmt: str, output: str, input_size=(256, 128), batch: int = 2
) -> str:
    """Write ``model``'s feature extractor as TorchScript or ONNX (dynamic batch size)."""
    wrapped = _FeatureModel(model).cpu().eval()
    example = torch.randn(batch, 3, *input_size)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, example)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)  # into memory: torch aborts the process on a failed write
        data = buf.getbuffer()
    elif fmt == "onnx":
        try:
            import onnxscript  # noqa: F401  (the exporter needs it)
        except ImportError:
            raise MissingDependencyError(
                "ONNX export needs onnx and onnxscript: pip install -e .[export]"
            ) from None
        batch_dim = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(
            wrapped,
            (example,),
            None,  # the program, serialised below: written by torch, a failed write is opaque
            input_names=["images"],
            output_names=["features"],
            dynamo=True,
            external_data=False,
            dynamic_shapes={"images": {0: batch_dim}},
        )
        data = program.model_proto.SerializeToString()
    else:
        raise UnknownNameError(f"unknown export format {fmt!r}; available: onnx, torchscript")
    atomic_write_bytes(data, output)  # a full disk or unwritable path: OSError naming the file
    return output
