"""Thin helpers over ``torch.distributed`` that are no-ops in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "all_reduce_mean",
    "gather_nograd",
    "gather_with_grad",
    "init_from_env",
    "is_distributed",
    "rank",
    "world_size",
]


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1); True if distributed.

    NCCL when CUDA is available (each rank on ``cuda:LOCAL_RANK``), gloo on CPU.
    """
    import os

    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


@torch.no_grad()
def gather_nograd(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0 (no gradient); ``x`` itself in one process."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, 0)


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0; gradients flow back to this rank's slice."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    out[rank()] = x
    return torch.cat(out, 0)


def all_reduce_mean(x: Tensor) -> Tensor:
    """Mean of ``x`` over ranks (for logging)."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / world_size()
