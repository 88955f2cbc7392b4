"""Classification metrics: top-1 / top-5 error and mean cross-entropy of a classifier."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.misc import eval_mode
from ..utils.progress import progress as show_progress
from ..utils.tables import markdown_table
from ..errors import InputError


@dataclass
class ClassificationResult:
    """One test set's numbers; errors are fractions in [0, 1], ``loss`` the mean CE."""

    top1_error: float
    top5_error: float
    loss: float
    num_images: int

    def headline(self) -> Dict[str, float]:
        return asdict(self)


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module, loader, device: torch.device, progress: bool = True, name: str = "test"
) -> ClassificationResult:
    """Eval-mode logits (B, N) over ``loader`` (batches of ``images`` and ``targets``):
    top-1 / top-5 error and mean CE loss. Restores the model's train/eval mode afterwards."""
    n, loss, wrong1, wrong5 = 0, 0.0, 0, 0
    with eval_mode(model):
        for batch in show_progress(loader, f"evaluate {name}", progress, unit="batches"):
            images = batch["images"].to(device, non_blocking=True)
            targets = torch.as_tensor(batch["targets"]).to(device)
            logits = model(images).float()  # (B, N)
            if logits.ndim != 2:
                raise InputError(
                    f"a classifier's eval forward must return (B, num_classes) "
                    f"logits; got shape {tuple(logits.shape)}"
                )
            loss += float(F.cross_entropy(logits, targets, reduction="sum"))
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, k)
            wrong1 += int((top[:, 0] != targets).sum())
            wrong5 += int((top != targets[:, None]).all(dim=1).sum())
            n += targets.numel()
    if n == 0:
        raise InputError(f"test set {name} is empty")
    return ClassificationResult(wrong1 / n, wrong5 / n, loss / n, n)


def format_classification(results: Dict[str, ClassificationResult]) -> str:
    """Markdown table: top-1 / top-5 error in percent, mean loss, images per test set."""
    return markdown_table(
        ["dataset", "top-1 err (%)", "top-5 err (%)", "loss", "images"],
        [
            [
                name,
                f"{100 * r.top1_error:.2f}",
                f"{100 * r.top5_error:.2f}",
                f"{r.loss:.4f}",
                r.num_images,
            ]
            for name, r in results.items()
        ],
    )
