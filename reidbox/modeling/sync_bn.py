"""Synchronised batch norm for DDP: torch's ``SyncBatchNorm`` on GPUs, a gloo version on CPUs.

``nn.SyncBatchNorm`` only runs on GPUs. :class:`AllReduceBatchNorm` computes the batch
statistics over every rank with an autograd-aware all-reduce of (sum, sum of squares, count),
so a CPU run over N processes normalises exactly like one process holding the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce
from ..errors import InputError


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over (B, C) or (B, C, ...) whose training statistics span all ranks."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise InputError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        # Local two-pass moments, combined in float64 so E[x^2] - E[x]^2 loses no precision.
        n_local = x.numel() / x.shape[1]
        m = xf.mean(dims).double()
        v = xf.var(dims, unbiased=False).double()
        count = torch.tensor([n_local], dtype=torch.float64, device=x.device)
        stats = torch.cat([n_local * m, n_local * (v + m * m), count])
        stats = all_reduce(stats)  # (2C + 1,), summed over ranks, gradients flow back
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0).float()
        mean = mean.float()
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp_min(1))
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm layer by its synchronised form for ``device``'s backend."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(m: nn.Module) -> nn.Module:
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, AllReduceBatchNorm):
            new = AllReduceBatchNorm(
                m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats
            )
            new.load_state_dict(m.state_dict())
            for name in ("weight", "bias"):
                p_old, p_new = getattr(m, name), getattr(new, name)
                if p_old is not None:
                    p_new.requires_grad_(p_old.requires_grad)
            new.train(m.training)
            return new
        for name, child in m.named_children():
            setattr(m, name, convert(child))
        return m

    return convert(model)
