"""Batched flow-matching sampling: Euler ODE over the shifted schedule, first frame held clean.

The loop is exposed step by step so an SDE-GRPO trainer can swap the Euler update for
``vrlvr.ops.sde_step`` on the steps of its Early-Step Focus window::

    x = initial_latents(cond, shape, generator)              # noise, frame 0 = condition
    for i in range(T):
        v = policy.velocity(x, sigmas[i].expand(B), prompt_embeds, cond)
        x = euler_step(x, v, sigmas[i], sigmas[i + 1])       # or an SDE step (frames 1.. only)

``sample_latents`` runs that loop with a pluggable ``step_fn``; ``generate_videos`` goes from
first frames and prompts to uint8 videos, by default with Euler steps only (the deterministic
sampler evaluation uses), or with ``sde=SdeWindow(start, end, eta, mode)``: SDE steps on the
window [start, end) and Euler steps elsewhere, the sampler an SDE-GRPO trainer rolls out with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlvr.models.conditioning import apply_condition
from vrlvr.models.lora_fold import fold_outside
from vrlvr.models.schedule import flow_sigmas

__all__ = [
    "SDE_MODES",
    "SdeWindow",
    "initial_latents",
    "euler_step",
    "sde_window_step",
    "sample_latents",
    "generate_videos",
]

#: the SDE formulations of vrlvr.ops.sde_step that draw noise (its "ode" mode does not)
SDE_MODES = ("sde", "dance", "cps")

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


class SdeWindow(NamedTuple):
    """SDE steps on sampling steps [start, end) (``vrlvr.ops.sde_step``, noise level ``eta``, SDE
    ``mode``), Euler steps elsewhere: the rollout sampler of SDE-GRPO (``grpo.sde_window``,
    ``sampling.eta``, ``sampling.mode``)."""

    start: int
    end: int
    eta: float = 0.7
    mode: str = "sde"

    def check(self, num_steps: int) -> SdeWindow:
        """The window within the num_steps sampling steps; mode and eta as the SDE op checks them."""
        from vrlvr.ops.sde_args import check_eta

        if not 0 <= self.start < self.end <= num_steps:
            raise ValueError(
                f"the SDE window must be [start, end) with 0 <= start < end <= {num_steps} sampling steps, "
                f"got [{self.start}, {self.end})"
            )
        if self.mode not in SDE_MODES:  # the op's "ode" draws no noise: not an SDE window
            raise ValueError(f"the SDE mode must be one of {', '.join(SDE_MODES)}, got {self.mode!r}")
        check_eta(self.eta, self.mode)
        return self


def sde_window_step(window: SdeWindow, generator: torch.Generator | None) -> StepFn:
    """A ``step_fn`` for ``sample_latents``: inside the window an SDE step of the generated frames
    1.. (frame 0, the condition, is never stepped), noise drawn from ``generator`` on the CPU;
    outside it an Euler step."""
    from vrlvr.ops import sde_step

    def step(x, v, sigma, sigma_next, i):
        if not window.start <= i < window.end:
            return euler_step(x, v, sigma, sigma_next, i)
        xg = x[:, :, 1:].contiguous()  # [B, C, f - 1, h, w]
        noise = torch.randn(xg.shape, generator=generator, dtype=xg.dtype).to(xg.device)
        out = sde_step(
            xg,
            v[:, :, 1:].contiguous(),
            float(sigma),
            float(sigma_next),
            noise,
            eta=window.eta,
            mode=window.mode,
        )
        return torch.cat([x[:, :, :1], out.x_next], dim=2)

    return step


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
    step_context: Callable[[int], contextlib.AbstractContextManager] | None = None,
) -> torch.Tensor:
    """Denoise from sigmas[0] to sigmas[-1]. cond [B, C, 1, h, w], prompt_embeds [B, L, D]
    -> latents [B, C, f, h, w] with frame 0 == cond exactly. ``step_context(i)``: a context the
    model call of step i runs in (generate_videos: the folded LoRA adapter)."""
    B, C, _, h, w = cond.shape
    x = initial_latents(cond, (C, num_latent_frames, h, w), generator)
    sigmas = sigmas.to(x.device)
    steps = range(len(sigmas) - 1)
    for i in tqdm(steps, desc="denoise", leave=False, disable=not progress):
        with step_context(i) if step_context is not None else contextlib.nullcontext():
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
    sde: SdeWindow | None = None,
) -> np.ndarray:
    """first_frames uint8 [B, H, W, 3] + prompts -> videos uint8 [B, num_frames, H, W, 3]; Euler
    steps only, or with ``sde`` SDE steps on its window (noise from the same seeded generator).

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
    step_fn = euler_step if sde is None else sde_window_step(sde.check(num_steps), gen)
    # An adapter runs folded into the base weights (the same function, faster), except on the SDE
    # window's steps, which run adapted as in the trainer's rollout: the same videos bit for bit.
    step_context = fold_outside(policy, None if sde is None else (sde.start, sde.end))
    latents = sample_latents(
        policy,
        cond,
        prompt_embeds,
        f,
        flow_sigmas(num_steps, shift),
        gen,
        step_fn,
        progress=progress,
        step_context=step_context,
    )
    videos = policy.decode(latents)[:, :num_frames]  # [B, F, H, W, 3]
    videos[:, 0] = first_frames
    return videos
