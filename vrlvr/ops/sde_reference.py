"""The torch reference of the SDE step, its log-prob and the KL: the oracle every backend is tested
against, and the "torch" backend.

Written the way Flow-GRPO (``sde_step_with_logprob``) and DanceGRPO (``flux_step``) write it:
separate, readable tensor ops on per-sample sigmas broadcast to [B, 1, ..., 1]. Math runs in
float32 (float64 inputs stay float64, which is what gradcheck uses); it is differentiable w.r.t. x
and v by plain autograd. Inputs are assumed checked (vrlvr.ops.sde does that).
"""

from __future__ import annotations

import math

import torch

__all__ = ["step_mean_std", "sde_step_reference", "sde_logprob_reference", "sde_kl_reference"]


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    # bf16/fp16 overflow in the mean (Flow-GRPO's reason to upcast); float64 stays for gradcheck
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _broadcast(value, like: torch.Tensor) -> torch.Tensor:
    """float or [B] tensor -> [B, 1, ..., 1] float64, via float32 (schedulers store float32)."""
    B = like.shape[0]
    t = torch.as_tensor(value, dtype=torch.float32, device=like.device).detach().to(torch.float64)
    return t.expand(B).reshape(B, *([1] * (like.ndim - 1)))


def step_mean_std(x, v, sigma, sigma_next, *, eta, mode, sigma_max=None):
    """mean [B, ...] and step std s [B, 1, ..., 1] of x' given x and v, in x's compute dtype.

    The per-sample scalars (std, the coefficients of x and v, s) are computed in float64 and rounded
    once where they meet the tensors, as the native kernels do: "cps" takes sqrt(sigma'^2 - std^2),
    which cancels catastrophically in float32 when eta is near 1.
    """
    sigma = _broadcast(sigma, x)
    sigma_next = _broadcast(sigma_next, x)
    dt = sigma_next - sigma

    def c(t: torch.Tensor) -> torch.Tensor:  # float64 scalar -> x's compute dtype
        return t.to(x.dtype)

    if mode in ("sde", "dance"):
        if mode == "sde":
            # Flow-GRPO: sigma == 1 would divide by zero; it uses sigmas[1] (sigma_max) there
            sigma_max = sigma_next if sigma_max is None else _broadcast(sigma_max, x)
            std_dev_t = torch.sqrt(sigma / (1 - torch.where(sigma == 1, sigma_max, sigma))) * eta
        else:
            # DanceGRPO: constant diffusion coefficient g = eta
            std_dev_t = torch.full_like(sigma, eta)
        mean = x * c(1 + std_dev_t**2 / (2 * sigma) * dt) + v * c(
            (1 + std_dev_t**2 * (1 - sigma) / (2 * sigma)) * dt
        )
        s = std_dev_t * torch.sqrt(-dt)
    elif mode == "cps":
        # coefficients-preserving sampling (Flow-GRPO "cps")
        std_dev_t = sigma_next * math.sin(eta * math.pi / 2)
        pred_original_sample = x - c(sigma) * v  # predicted x_0
        noise_estimate = x + v * c(1 - sigma)  # predicted x_1
        mean = pred_original_sample * c(1 - sigma_next) + noise_estimate * c(
            torch.sqrt(torch.clamp(sigma_next**2 - std_dev_t**2, min=0))
        )
        s = std_dev_t
    elif mode == "ode":
        mean = x + v * c(dt)
        s = torch.zeros_like(sigma)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return mean, c(s)


def _gaussian_logp(x_next, mean, s, mode):
    """Per-element log-prob of x_next under N(mean, s^2) ("cps": Flow-GRPO's -(x' - mean)^2)."""
    if mode == "cps":
        return -((x_next - mean) ** 2)
    return -((x_next - mean) ** 2) / (2 * s**2) - torch.log(s) - math.log(math.sqrt(2 * math.pi))


def _mean_over_sample(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=tuple(range(1, t.ndim))) if t.ndim > 1 else t


def sde_step_reference(x, v, sigma, sigma_next, noise, *, eta, mode, sigma_max=None):
    """x, v, noise [B, ...] -> x_next [B, ...] (x's dtype), logp [B] (fp32), mean [B, ...] (fp32)."""
    cdt = _compute_dtype(x)
    xc, vc = x.to(cdt), v.to(cdt)
    mean, s = step_mean_std(xc, vc, sigma, sigma_next, eta=eta, mode=mode, sigma_max=sigma_max)
    if mode == "ode":
        x_next = mean.to(x.dtype)
        logp = torch.zeros(x.shape[0], dtype=cdt, device=x.device)
        return x_next, logp, mean
    x_next = (mean + s * noise.to(cdt)).to(x.dtype)
    # score the sample as stored (rounded to x's dtype): re-scoring it later gives the same logp
    logp = _mean_over_sample(_gaussian_logp(x_next.to(cdt), mean, s, mode))
    return x_next, logp, mean


def sde_logprob_reference(x, v, x_next, sigma, sigma_next, *, eta, mode, sigma_max=None):
    """logp [B] of a recorded x_next given x and v; differentiable w.r.t. v (and x)."""
    if mode == "ode":
        raise ValueError("mode='ode' is deterministic: a step without noise has no log-prob")
    cdt = _compute_dtype(x)
    mean, s = step_mean_std(x.to(cdt), v.to(cdt), sigma, sigma_next, eta=eta, mode=mode, sigma_max=sigma_max)
    return _mean_over_sample(_gaussian_logp(x_next.detach().to(cdt), mean, s, mode))


def sde_kl_reference(v, v_ref, sigma, sigma_next, *, eta, mode, sigma_max=None):
    """KL [B] between the step Gaussians of v and v_ref: mean((mean - mean_ref)^2) / (2 s^2).

    The x-terms of the two means cancel, so x = 0 here.
    """
    if mode == "ode":
        raise ValueError("mode='ode' is deterministic: the KL between two steps without noise is undefined")
    cdt = _compute_dtype(v)
    vc, rc = v.to(cdt), v_ref.detach().to(cdt)
    zero = torch.zeros_like(vc)
    mean, s = step_mean_std(zero, vc, sigma, sigma_next, eta=eta, mode=mode, sigma_max=sigma_max)
    mean_ref, _ = step_mean_std(zero, rc, sigma, sigma_next, eta=eta, mode=mode, sigma_max=sigma_max)
    return _mean_over_sample((mean - mean_ref) ** 2 / (2 * s**2))
