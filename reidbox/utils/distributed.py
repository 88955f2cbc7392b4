"""torchrun / DistributedDataParallel helpers (NCCL on GPUs, gloo on CPUs)."""

from __future__ import annotations

import os
from typing import Any, List

import torch
import torch.distributed as dist
from ..errors import InputError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def init_distributed(device: str = "auto") -> torch.device:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); returns this rank's device.

    ``device`` is ``cfg.DEVICE``: one process per GPU with NCCL (``cuda``, or ``auto`` on a GPU
    machine); CPU processes with gloo (``cpu``, or ``auto`` without GPUs). A CUDA request the
    machine cannot serve (no GPU, or more processes per node than GPUs) is a ``ValueError``
    naming what to run instead, raised before any process group or CUDA call.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = check_distributed_device(device, world)
    if world <= 1 or is_distributed():
        return _local_device(use_cuda)
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _local_device(use_cuda)


def check_distributed_device(device: str, world: int) -> bool:
    """Whether the ranks of this node run on GPUs; ``ValueError`` when they cannot."""
    wants_cuda = device.startswith("cuda")
    if wants_cuda and not torch.cuda.is_available():
        raise InputError(
            f"DEVICE {device} but this machine has no usable CUDA GPU: run "
            "CPU processes with the gloo backend (DEVICE cpu), e.g. torchrun "
            "--standalone --nproc_per_node 2 tools/train_net.py ... DEVICE cpu"
        )
    use_cuda = wants_cuda or (device == "auto" and torch.cuda.is_available())
    if use_cuda and world > 1:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        gpus = torch.cuda.device_count()
        if per_node > gpus:
            raise InputError(
                f"torchrun starts {per_node} processes on this node but it has "
                f"{gpus} GPU(s) (one process per GPU): use --nproc_per_node {gpus}, "
                "or CPU processes with gloo (DEVICE cpu)"
            )
    return use_cuda


def _local_device(use_cuda: bool = True) -> torch.device:
    if use_cuda and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> List[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` when not distributed)."""
    if not is_distributed():
        return [obj]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def broadcast_module_state(model: torch.nn.Module) -> None:
    """Under DDP, copy rank 0's parameters and buffers (BN statistics) to every rank in place."""
    if get_world_size() <= 1:
        return
    for t in model.state_dict().values():
        dist.broadcast(t, src=0)
