"""Batched flow-matching sampling: Euler ODE over the shifted schedule, first frame held clean.

The loop is exposed step by step so an SDE-GRPO trainer can swap the Euler update for
``vrlvr.ops.sde_step`` on the steps of its Early-Step Focus window::

    x = initial_latents(cond, shape, generator)              # noise, frame 0 = condition
    for i in range(T):
        v = policy.velocity(x, sigmas[i].expand(B), prompt_embeds, cond)
        x = euler_step(x, v, sigmas[i], sigmas[i + 1])       # or an SDE step (frames 1.. only)

``sample_latents`` runs that loop with a pluggable ``step_fn``; ``generate_videos`` goes from
first frames and prompts to uint8 videos.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlvr.models.conditioning import apply_condition
from vrlvr.models.schedule import flow_sigmas

__all__ = ["initial_latents", "euler_step", "sample_latents", "generate_videos"]

StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def initial_latents(
    cond: torch.Tensor, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pure noise [B, C, f, h, w] (drawn on the CPU generator, so results do not depend on the
    device) with latent frame 0 set to cond [B, C, 1, h, w]."""
    B = cond.shape[0]
    noise = torch.randn((B, *shape), generator=generator, dtype=torch.float32)
    return apply_condition(noise.to(cond.device), cond.float())


def euler_step(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, i: int = 0):
    """ODE step x' = x + (sigma' - sigma) v (v is zero on frame 0, so frame 0 stays exactly)."""
    return x + (sigma_next - sigma) * v


@torch.no_grad()
def sample_latents(
    policy,
    cond: torch.Tensor,
    prompt_embeds: torch.Tensor,
    num_latent_frames: int,
    sigmas: torch.Tensor,
    generator: torch.Generator | None = None,
    step_fn: StepFn = euler_step,
    progress: bool = False,
) -> torch.Tensor:
    """Denoise from sigmas[0] to sigmas[-1]. cond [B, C, 1, h, w], prompt_embeds [B, L, D]
    -> latents [B, C, f, h, w] with frame 0 == cond exactly."""
    B, C, _, h, w = cond.shape
    x = initial_latents(cond, (C, num_latent_frames, h, w), generator)
    sigmas = sigmas.to(x.device)
    steps = range(len(sigmas) - 1)
    for i in tqdm(steps, desc="denoise", leave=False, disable=not progress):
        v = policy.velocity(x, sigmas[i].expand(B), prompt_embeds, cond)  # [B, C, f, h, w]
        x = step_fn(x, v, sigmas[i], sigmas[i + 1], i)
    return apply_condition(x, cond)


@torch.no_grad()
def generate_videos(
    policy,
    first_frames: np.ndarray,
    prompts: list[str],
    num_frames: int,
    num_steps: int = 20,
    shift: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """first_frames uint8 [B, H, W, 3] + prompts -> videos uint8 [B, num_frames, H, W, 3].

    Frame 0 of every video is its first frame exactly (for VAE policies the decoded frame 0 is
    replaced by the given frame, which is the input, not a prediction)."""
    first_frames = np.asarray(first_frames)
    if first_frames.dtype != np.uint8 or first_frames.ndim != 4 or first_frames.shape[-1] != 3:
        raise ValueError(
            f"first_frames must be uint8 [B, H, W, 3], got {first_frames.dtype} {first_frames.shape}"
        )
    if len(prompts) != len(first_frames):
        raise ValueError(f"{len(prompts)} prompts for {len(first_frames)} first frames")
    _, H, W, _ = first_frames.shape
    _, f, _, _ = policy.latent_shape(num_frames, H, W)
    cond = policy.encode_condition(first_frames)  # [B, C, 1, h, w]
    prompt_embeds = policy.encode_prompts(list(prompts))  # [B, L, D]
    gen = torch.Generator().manual_seed(int(seed))
    latents = sample_latents(
        policy, cond, prompt_embeds, f, flow_sigmas(num_steps, shift), gen, progress=progress
    )
    videos = policy.decode(latents)[:, :num_frames]  # [B, F, H, W, 3]
    videos[:, 0] = first_frames
    return videos
