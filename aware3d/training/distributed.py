"""Data-parallel training across processes started by ``torchrun``.

Every process holds full copies of G and D and computes gradients on its share of the global batch;
gradients are averaged with one all-reduce per update (the flattened gradients of the module being
updated), so every process applies the same update and the weights stay identical. This is what
DistributedDataParallel does, done explicitly: the recipes switch modules' ``requires_grad`` between
phases and the progressive discriminator has inactive blocks, which DDP's bucketing handles poorly.
Only rank 0 writes files. Backend: NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits."""

    rank: int = 0
    """Global rank (0 writes files)."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank within the node (selects the GPU)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def shutdown_distributed() -> None:
    """Leave the process group, after every rank is done with it: a rank tearing its connections down while a
    peer still talks to the store aborted that peer's exit (SIGABRT, once, two nodes under load)."""
    if dist.is_available() and dist.is_initialized():
        try:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=60))  # a peer that is gone: an error, no hang
            else:
                dist.barrier()
        except RuntimeError:
            pass  # a peer already left: nothing to wait for
        dist.destroy_process_group()


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Replace each gradient by its mean over processes (missing gradients count as zeros).

    A parameter with no gradient on any process keeps ``grad = None``, so the optimiser skips it exactly as
    a single process would (a zero gradient would still advance Adam's moments and step count, e.g. for
    EG3D's super-resolution during the density-regularisation phase, which does not reach it).
    """
    if not info.enabled or not params:
        return
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=params[0].device)
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    params = [p for p, has in zip(params, present.tolist()) if has]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Replace each floating-point buffer by its mean over processes (statistics a module tracks in its
    forward pass, like EG3D's w_avg, would otherwise drift apart between processes)."""
    if not info.enabled:
        return
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if not bufs:
        return
    flat = torch.cat([b.flatten() for b in bufs])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for b in bufs:
        b.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


def all_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process iff ``flag`` is true on every process."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def mean_over_ranks(values: dict[str, Tensor], info: DistInfo, device: torch.device | str = "cpu") -> dict[str, float]:
    """Average logged scalars over processes (same keys on every rank). The scalars may live on different
    devices (a recipe's CPU-side counters beside CUDA losses): they are gathered on ``device`` (the
    training device, which the process group's backend reduces on)."""
    if not values:
        return {}
    keys = sorted(values)
    t = torch.stack([values[k].detach().float().reshape(()).to(device) for k in keys])
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= info.world_size
    return dict(zip(keys, t.tolist()))


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every process (e.g. 'stop now' after a signal reached only some ranks)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
