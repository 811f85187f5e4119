"""What the benchmarks share: the machine block of a report and writing the report (every
benchmark), and for the tiny-policy ones the policy and inputs at a rollout's shape, a
trained-looking adapter, alternated timing and the copy bandwidth that bounds memory-bound work.
Not a benchmark itself (`vrlvr bench` lists only bench_* modules). torch is imported where it is
used: the parser and task benchmarks do not need it."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PROMPT = "Solve the 7x7 maze: draw the path from the green cell to the red cell."


def machine(threads: int | None = None, **extra) -> dict:
    """The report's "machine" block: the platform and CPUs, the load while it ran, and with
    ``threads`` (a benchmark that runs torch) torch's threads and version; ``extra`` adds the
    benchmark's own entries (native threads, a device)."""
    block = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        # a shared machine's load (1, 5, 15 min) when the report is made: high load, noisy times
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if threads is not None:
        import torch

        block |= {"torch_threads": threads, "torch": torch.__version__}
    return block | extra


def require_positive(ap, args, *names: str) -> None:
    """``ap.error`` for the first of the integer options ``names`` below 1 ("--reps must be >= 1")."""
    for name in names:
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")


def _jsonable(value):
    """numpy scalars (and anything else json cannot write) in a report."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def emit(report: dict, json_path: str | None) -> dict:
    """Print the report as JSON (and write it to json_path when given); returns it."""
    text = json.dumps(report, indent=2, default=_jsonable)
    if json_path:
        Path(json_path).write_text(text + "\n")
    print(text)
    return report


@dataclass
class RolloutInputs:
    """A tiny-pixel policy (its shipped adapter merged) and one rollout-shaped batch:
    x [B, C, f, h, w], cond [B, C, 1, h, w], sigma [B] (0.7), prompt_embeds [B, L, D]."""

    policy: torch.nn.Module
    x: torch.Tensor
    cond: torch.Tensor
    sigma: torch.Tensor
    prompt_embeds: torch.Tensor


def tiny_rollout_inputs(ap, init: str, batch: int, frames: int) -> RolloutInputs:
    """Load ``init`` (a tiny-pixel checkpoint; anything else is an ``ap.error``) and draw a batch of
    ``batch`` videos of ``frames`` x 28 x 28 px, seeded."""
    import torch

    from vrlvr.models.policy import load_policy

    torch.manual_seed(0)
    policy = load_policy(init).eval()
    if policy.kind != "tiny-pixel":
        ap.error(f"--init must be a tiny-pixel checkpoint, got {policy.kind}")
    if policy.lora:
        policy.merge_lora()
    g = torch.Generator().manual_seed(0)
    C, f, h, w = policy.latent_shape(frames, 28, 28)
    x = torch.randn(batch, C, f, h, w, generator=g)
    cond = torch.randn(batch, C, 1, h, w, generator=g)
    pe = policy.encode_prompts([PROMPT] * batch).detach()
    return RolloutInputs(policy, x, cond, torch.full((batch,), 0.7), pe)


def add_trained_looking_lora(policy, rank: int) -> None:
    """``policy.add_lora(rank)`` with B ~ N(0, 0.02) (a fresh adapter has B = 0 and costs nothing
    to skip)."""
    import torch

    policy.add_lora(rank)
    with torch.no_grad():
        for n, w in policy.named_parameters():
            if "lora_B" in n:
                w.normal_(0, 0.02)


def alternated(cases: dict, reps: int) -> dict[str, float]:
    """Median seconds of each case, timed in turns after one warm-up call of each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    for _ in range(reps):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def copy_bandwidth(mib: int = 64, reps: int = 5) -> float:
    """Bytes per second a large fp32 tensor copy moves (read + write), best of reps."""
    import torch

    src = torch.randn(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best
