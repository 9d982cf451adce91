"""Process-group setup for ``torchrun`` (DistributedDataParallel training).

:func:`core.train.train` reads ``torch.distributed`` state when a process group
exists; this module creates that group when the process was launched by
``torchrun`` (``WORLD_SIZE`` > 1): gloo on CPU, nccl on CUDA.

``plate-review train`` calls :func:`init_distributed`, so::

    torchrun --nproc_per_node 2 -m core.cli train FOLDER --out model.pt

trains with DDP. Only rank 0 prints the result and writes the checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime
import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> tuple[int, int]:
    """Create the default process group when launched by ``torchrun``; a no-op otherwise.

    Safe to call more than once and in plain (single-process) runs.

    Args:
        device: The training device setting (``auto``, ``cpu``, ``cuda``, ``mps``); nccl is used
            only when CUDA is present and ``device`` allows it, gloo otherwise.
        timeout_s: Collective timeout (rank 0 validates while the others wait).

    Returns:
        ``(rank, world_size)``; ``(0, 1)`` when not distributed.
    """
    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if not launched_by_torchrun():
        return 0, 1
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda:")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    """True on rank 0, and in any non-distributed run."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def cleanup_distributed() -> None:
    """Wait for every rank, then destroy the process group (no-op when none exists)."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.barrier()
        dist.destroy_process_group()
