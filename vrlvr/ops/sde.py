"""The SDE step of SDE-GRPO and the two quantities training needs from it, on every backend.

- ``sde_step``: sample x' from x and the velocity v, with the log-prob of the sample (rollouts).
- ``sde_logprob``: log-prob of a recorded x' under a new velocity, differentiable w.r.t. v (the
  PPO ratio).
- ``sde_kl``: KL between the step Gaussians of the policy and the reference policy,
  differentiable w.r.t. v (the beta * KL term).

Inputs x, v, noise, x_next, v_ref are [B, ...] float32, bfloat16 or float16 (any strides; the
fast backends take a contiguous copy of non-contiguous inputs). x, noise and x_next share one dtype
and v, v_ref another, so a bf16 model output can drive fp32 latents without a cast. Math is fp32;
logp / kl are fp32 [B], averaged over all non-batch elements. sigma, sigma_next (and sigma_max)
are floats, 0-d tensors or [B] tensors; a CUDA sigma tensor costs one small device-to-host copy.

Modes (formulas in vrlvr.ops.sde_args.coefficients and vrlvr.ops.sde_reference):
  "sde"   Flow-GRPO's SDE, std = eta sqrt(sigma / (1 - sigma)); at sigma == 1, where that divides
          by zero, ``1 - sigma_max`` is used instead, as Flow-GRPO does with sigma_max =
          scheduler.sigmas[1]. sigma_max=None means sigma_next, which is sigmas[1] for the step
          that starts at sigmas[0] = 1: the default reproduces Flow-GRPO with no extra argument.
  "dance" DanceGRPO's SDE: the same mean with a constant diffusion coefficient g = eta.
  "cps"   Flow-GRPO's coefficients-preserving sampling; eta in (0, 1]. Its logp is Flow-GRPO's
          -mean((x' - mean)^2): no 1 / (2 s^2) weight and no constants (so that the last, nearly
          noiseless steps do not dominate the ratio); the KL is the exact Gaussian one.
  "ode"   the Euler step x' = x + v dt. It draws no noise (``noise`` may be None) and has no
          density: sde_step returns logp = 0 (so a trajectory's summed logp counts only its SDE
          steps), and sde_logprob / sde_kl raise ValueError.

The log-prob of a sample is computed from x' as returned, after rounding to x's dtype, so
``sde_logprob`` of a stored rollout under the same v reproduces the rollout's logp exactly on the
same backend: the first PPO ratio is exactly 1. Gradients flow to v only (x and x_next are data,
v_ref is the frozen reference); sde_step itself records no graph (it is the sampler).

Backends: see vrlvr.ops.dispatch ("torch", "cpu", "triton", "cuda"; ``backend=`` or
$VRLVR_BACKEND forces one).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vrlvr.ops import sde_backends
from vrlvr.ops.dispatch import select_backend
from vrlvr.ops.sde_args import (
    COEF_CV,
    COEF_KL_SCALE,
    COEF_LOGP_SCALE,
    COEF_S,
    check_eta,
    check_like,
    check_mode,
    check_sigmas,
    check_tensor,
    coefficients,
)
from vrlvr.ops.sde_reference import sde_kl_reference, sde_logprob_reference, sde_step_reference

__all__ = ["SdeStep", "SdeStepWithMean", "sde_step", "sde_logprob", "sde_kl"]


class SdeStep(NamedTuple):
    x_next: torch.Tensor  # [B, ...], x's dtype
    logp: torch.Tensor  # fp32 [B]


class SdeStepWithMean(NamedTuple):
    x_next: torch.Tensor  # [B, ...], x's dtype
    logp: torch.Tensor  # fp32 [B]
    mean: torch.Tensor  # fp32 [B, ...]: the step Gaussian's mean


def _flat(t: torch.Tensor) -> torch.Tensor:
    """[B, ...] -> contiguous [B, N] (a view when t is contiguous, else one copy)."""
    return t.reshape(t.shape[0], -1).contiguous()


def _on_device(table: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The float64 [B, COEF_COUNT] host table on the tensors' device. To a GPU it goes through
    torch's caching pinned allocator and a non-blocking copy: a copy from pageable memory would
    synchronise the stream, and the host would stop running ahead of the GPU on every step."""
    if device.type == "cpu":
        return table
    if device.type == "cuda":
        return table.pin_memory().to(device, non_blocking=True)
    return table.to(device)


def _prepare(mode, eta, sigma, sigma_next, sigma_max, batch: int):
    mode = check_mode(mode)
    eta = check_eta(eta, mode)
    s, sn, smax = check_sigmas(sigma, sigma_next, batch, sigma_max if mode == "sde" else None)
    return mode, eta, s, sn, smax


def _no_density(mode: str, what: str) -> None:
    if mode == "ode":
        raise ValueError(
            f"mode='ode' is deterministic: a step without noise has no {what}; use it for SDE steps"
        )


def sde_step(
    x: torch.Tensor,
    v: torch.Tensor,
    sigma,
    sigma_next,
    noise: torch.Tensor | None,
    *,
    eta: float = 0.7,
    mode: str = "sde",
    sigma_max=None,
    backend: str | None = None,
    return_mean: bool = False,
) -> SdeStep | SdeStepWithMean:
    """One step from sigma to sigma_next: x, v, noise [B, ...] -> (x_next [B, ...] in x's dtype,
    logp fp32 [B][, mean fp32 [B, ...]]). noise is a standard normal draw shaped like x (x's dtype)."""
    check_tensor("x", x)
    check_like("v", v, "x", x, same_dtype=False)
    mode, eta, s, sn, smax = _prepare(mode, eta, sigma, sigma_next, sigma_max, x.shape[0])
    stochastic = mode != "ode"
    if stochastic:
        if noise is None:
            raise ValueError(f"noise is required for mode={mode!r} (a standard normal tensor shaped like x)")
        check_like("noise", noise, "x", x, same_dtype=True)
    name = select_backend(x.device, backend)
    with torch.no_grad():  # the sampler: gradients come from sde_logprob
        if name == "torch":
            x_next, logp, mean = sde_step_reference(
                x,
                v,
                torch.from_numpy(s),
                torch.from_numpy(sn),
                noise,
                eta=eta,
                mode=mode,
                sigma_max=torch.from_numpy(smax),
            )
            logp = logp.to(torch.float32)
            mean = mean.to(torch.float32)
        else:
            impl = sde_backends.get(name)
            coef = _on_device(coefficients(mode, eta, s, sn, smax), x.device)
            x_next2, logp, mean2 = impl.step(
                _flat(x),
                _flat(v),
                _flat(noise) if stochastic else None,
                coef,
                stochastic=stochastic,
                write_mean=return_mean,
            )
            if logp is None:  # "ode": no density
                logp = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
            x_next = x_next2.view(x.shape)
            mean = mean2.view(x.shape) if return_mean else None
    if return_mean:
        return SdeStepWithMean(x_next, logp, mean)
    return SdeStep(x_next, logp)


class _LogProb(torch.autograd.Function):
    """logp [B] of x_next [B, N] given x [B, N] and v [B, N] on a fast backend, fused backward."""

    @staticmethod
    def forward(ctx, x2, v2, xn2, coef, impl):
        ctx.save_for_backward(x2, v2, xn2, coef)
        ctx.impl = impl
        return impl.logprob(x2, v2, xn2, coef)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_logp):
        if not ctx.needs_input_grad[1]:
            return None, None, None, None, None
        x2, v2, xn2, coef = ctx.saved_tensors
        # logp_b = const + logp_scale * mean_i r_i^2 with r = x' - cx x - cv v, so
        # d logp_b / d v_bi = -2 logp_scale cv r_bi / N: one per-sample factor times the residual
        k = grad_logp.to(torch.float64) * (-2.0 / x2.shape[1]) * coef[:, COEF_LOGP_SCALE] * coef[:, COEF_CV]
        return None, ctx.impl.logprob_grad(x2, v2, xn2, coef, k.contiguous()), None, None, None


class _Kl(torch.autograd.Function):
    """kl [B] between the step Gaussians of v [B, N] and v_ref [B, N] on a fast backend."""

    @staticmethod
    def forward(ctx, v2, r2, coef, impl):
        ctx.save_for_backward(v2, r2, coef)
        ctx.impl = impl
        return impl.kl(v2, r2, coef)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kl):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        v2, r2, coef = ctx.saved_tensors
        # kl_b = kl_scale * mean_i (v - v_ref)^2, so d kl_b / d v_bi = 2 kl_scale (v - v_ref)_bi / N
        k = grad_kl.to(torch.float64) * (2.0 / v2.shape[1]) * coef[:, COEF_KL_SCALE]
        return ctx.impl.kl_grad(v2, r2, k.contiguous()), None, None, None


def sde_logprob(
    x: torch.Tensor,
    v: torch.Tensor,
    x_next: torch.Tensor,
    sigma,
    sigma_next,
    *,
    eta: float,
    mode: str,
    sigma_max=None,
    backend: str | None = None,
) -> torch.Tensor:
    """fp32 logp [B] of a recorded step x -> x_next under velocity v, differentiable w.r.t. v.
    Pass the sigma_max given to sde_step (only "sde" mode at sigma == 1 uses it)."""
    check_tensor("x", x)
    check_like("v", v, "x", x, same_dtype=False)
    check_like("x_next", x_next, "x", x, same_dtype=True)
    mode, eta, s, sn, smax = _prepare(mode, eta, sigma, sigma_next, sigma_max, x.shape[0])
    _no_density(mode, "log-prob")
    name = select_backend(x.device, backend)
    if name == "torch":
        return sde_logprob_reference(
            x.detach(),
            v,
            x_next,
            torch.from_numpy(s),
            torch.from_numpy(sn),
            eta=eta,
            mode=mode,
            sigma_max=torch.from_numpy(smax),
        ).to(torch.float32)
    coef = _on_device(coefficients(mode, eta, s, sn, smax), x.device)
    return _LogProb.apply(_flat(x.detach()), _flat(v), _flat(x_next.detach()), coef, sde_backends.get(name))


def sde_kl(
    v: torch.Tensor,
    v_ref: torch.Tensor,
    sigma,
    sigma_next,
    *,
    eta: float,
    mode: str,
    sigma_max=None,
    backend: str | None = None,
) -> torch.Tensor:
    """fp32 KL [B] from the policy's step Gaussian (velocity v) to the reference policy's (v_ref):
    mean((mean - mean_ref)^2) / (2 s^2) = cv^2 mean((v - v_ref)^2) / (2 s^2); differentiable w.r.t. v."""
    check_tensor("v", v)
    check_like("v_ref", v_ref, "v", v, same_dtype=True)
    mode, eta, s, sn, smax = _prepare(mode, eta, sigma, sigma_next, sigma_max, v.shape[0])
    _no_density(mode, "KL")
    coef = coefficients(mode, eta, s, sn, smax)
    no_noise = (coef[:, COEF_S] == 0).nonzero()
    if len(no_noise):
        i = int(no_noise[0])
        raise ValueError(
            f"the KL is undefined for a step without noise (mode={mode!r}, sigma_next={sn[i]:g} "
            f"at sample {i})"
        )
    name = select_backend(v.device, backend)
    if name == "torch":
        return sde_kl_reference(
            v,
            v_ref,
            torch.from_numpy(s),
            torch.from_numpy(sn),
            eta=eta,
            mode=mode,
            sigma_max=torch.from_numpy(smax),
        ).to(torch.float32)
    return _Kl.apply(_flat(v), _flat(v_ref.detach()), _on_device(coef, v.device), sde_backends.get(name))
