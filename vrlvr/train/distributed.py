"""Data parallelism on torch.distributed, for `torchrun --nproc_per_node=N vrlvr-train ...`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE; without them everything here is a
no-op for one process. NCCL on GPUs, gloo on CPUs. The trainer keeps every rank's randomness
independent of the rank (rollout noise derives from the seed, the step, the puzzle and the rollout),
so N processes compute what one process computes with the same global batch; the only
communication is one all-reduce of the flattened trainable gradients per step and a few scalars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "init_process_group",
    "DistInfo",
    "init_distributed",
    "all_reduce_sum",
    "all_reduce_max",
    "merge_sums",
    "broadcast_flag",
    "barrier",
    "threads_per_rank",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 writes files and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (if any). ``device``: the device asked for; a
    CUDA run takes GPU LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(
        rank=int(os.environ["RANK"]),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    init_process_group()
    return info


def init_process_group() -> None:
    """Join torchrun's group once: gloo for CPU tensors, NCCL for CUDA tensors where CUDA exists."""
    if dist.is_initialized():
        return
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)


def threads_per_rank(requested: int, info: DistInfo) -> int:
    """CPU threads for this process: the request, or the node's cores split between its ranks, so
    two CPU ranks on two cores do not oversubscribe them."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, info.local_world))


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over ranks, in place (a no-op for one process). Gloo and NCCL both take float64/float32."""
    if info.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.active:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def merge_sums(sums: dict[str, list[float]], info: DistInfo) -> dict[str, list[float]]:
    """{key: [sum, count]} added up over ranks, whose key sets may differ (one all_gather_object)."""
    if not info.active:
        return sums
    gathered: list[dict] = [{} for _ in range(info.world)]
    dist.all_gather_object(gathered, sums)
    out: dict[str, list[float]] = {}
    for part in gathered:
        for k, (total, count) in part.items():
            acc = out.setdefault(k, [0.0, 0.0])
            acc[0] += total
            acc[1] += count
    return out


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's decision for everyone (e.g. "out of time": clocks differ between processes)."""
    if not info.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()
