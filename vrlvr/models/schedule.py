"""The flow-matching noise schedule (rectified flow), compatible with diffusers'
``FlowMatchEulerDiscreteScheduler``.

Convention (diffusers, Wan, SD3): ``x_sigma = (1 - sigma) * x0 + sigma * noise`` with sigma in
[0, 1]; the model predicts the velocity ``v = noise - x0``; one Euler step from sigma to sigma' is
``x' = x + (sigma' - sigma) * v``; the model's timestep input is ``sigma * 1000``.

Shift (Wan uses 3 to 8 for video): ``sigma' = shift * s / (1 + (shift - 1) * s)`` spends more of
the steps at high noise. ``flow_sigmas(T, shift)`` reproduces diffusers' inference sigmas exactly,
including its quirk of shifting the lowest training sigma twice (the linspace runs from 1 to the
already shifted ``sigma_min`` and is then shifted again), so a policy sampled here and in a
diffusers pipeline sees the same T + 1 sigmas.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["NUM_TRAIN_TIMESTEPS", "shift_sigmas", "flow_sigmas", "sigmas_to_timesteps", "sample_train_sigmas"]

NUM_TRAIN_TIMESTEPS = 1000


def shift_sigmas(s, shift: float):
    """sigma' = shift * s / (1 + (shift - 1) * s); works on floats, numpy arrays and tensors."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    return shift * s / (1 + (shift - 1) * s)


def flow_sigmas(
    num_steps: int, shift: float = 1.0, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
) -> torch.Tensor:
    """float32 [num_steps + 1]: sigmas[0] = 1 (pure noise) down to sigmas[T] = 0 (clean).

    Equal to ``FlowMatchEulerDiscreteScheduler(shift=shift).set_timesteps(num_steps).sigmas``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    # diffusers: training sigmas are (1..N)/N shifted; sigma_min is the smallest of them
    # (float32 there, as here), then a float64 linspace, shifted again, cast to float32 at the end
    train = torch.tensor([1.0 / num_train_timesteps, 1.0], dtype=torch.float32)
    sigma_min, sigma_max = (float(v) for v in shift_sigmas(train, shift))
    t = np.linspace(sigma_max * num_train_timesteps, sigma_min * num_train_timesteps, num_steps)
    s = shift_sigmas(t / num_train_timesteps, float(shift))
    return torch.cat([torch.from_numpy(s).to(torch.float32), torch.zeros(1)])


def sigmas_to_timesteps(sigmas: torch.Tensor, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """The model's timestep input for each sigma (diffusers: sigma * num_train_timesteps)."""
    return sigmas * num_train_timesteps


def sample_train_sigmas(
    batch: int,
    shift: float = 1.0,
    mode: str = "logit_normal",
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """float32 [batch] training noise levels in (0, 1).

    ``logit_normal`` (SD3's default density: sigmoid of a standard normal, most mass mid-range) or
    ``uniform``; then shifted like the inference schedule so training and sampling weight the same
    noise levels.
    """
    if mode == "logit_normal":
        u = torch.sigmoid(torch.randn(batch, generator=generator))
    elif mode == "uniform":
        u = torch.rand(batch, generator=generator)
    else:
        raise ValueError(f"sigma sampling mode must be 'logit_normal' or 'uniform', got {mode!r}")
    u = u.clamp(1e-4, 1 - 1e-4)
    return shift_sigmas(u, shift).to(device=device, dtype=torch.float32)
