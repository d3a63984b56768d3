"""Several processes under ``torchrun``: the process group, DDP wrapping, reductions, SIGTERM.

Every function is a no-op (or returns its input) in a single process, so training code runs
the same way with and without ``torch.distributed``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside ``torch.distributed``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def process_group(device: str) -> Iterator[None]:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (nccl on CUDA, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def parallel(net: nn.Module, device: torch.device, world: int) -> nn.Module:
    """``net`` wrapped in DistributedDataParallel when there are several processes."""
    if world == 1:
        return net
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce(tensor: Tensor, world: int, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> Tensor:
    """``tensor`` reduced over all processes (in place); unchanged in a single process."""
    if world > 1:
        dist.all_reduce(tensor, op=op)
    return tensor


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (a job scheduler, torchrun) into KeyboardInterrupt while training."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
