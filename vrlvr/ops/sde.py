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
$VRLVR_BACKEND forces one). The fast backends run as torch.library custom ops (vrlvr::sde_step,
vrlvr::sde_logprob, vrlvr::sde_kl and their backward ops; vrlvr.ops.sde_library), so a
torch.compile'd training step (fullgraph=True) calls the fused kernels without graph breaks; under
torch.compile the backend is chosen once, when the graph is traced. The "torch" reference is plain
torch code and not meant for fullgraph compilation (its host-side sigma checks break the graph).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch

from vrlvr.ops.dispatch import select_backend
from vrlvr.ops.sde_args import (
    COEF_S,
    check_eta,
    check_like,
    check_mode,
    check_sigmas,
    check_tensor,
    coefficients,
)
from vrlvr.ops.sde_library import sde_kl_op, sde_logprob_op, sde_step_op
from vrlvr.ops.sde_reference import sde_kl_reference, sde_logprob_reference, sde_step_reference

__all__ = ["SdeStep", "SdeStepWithMean", "sde_step", "sde_logprob", "sde_kl"]


class SdeStep(NamedTuple):
    x_next: torch.Tensor  # [B, ...], x's dtype
    logp: torch.Tensor  # fp32 [B]


class SdeStepWithMean(NamedTuple):
    x_next: torch.Tensor  # [B, ...], x's dtype
    logp: torch.Tensor  # fp32 [B]
    mean: torch.Tensor  # fp32 [B, ...]: the step Gaussian's mean


def _sigma_arg(name: str, value) -> torch.Tensor | None:
    """A float, 0-d or [B] tensor -> a tensor for the custom ops (which range-check it on the host);
    None stays None (sigma_max's default)."""
    if value is None or isinstance(value, torch.Tensor):
        return None if value is None else value.detach()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    raise ValueError(f"{name} must be a float or a tensor, got {type(value).__name__}")


def _prepare(mode, eta, sigma, sigma_next, sigma_max, batch: int):
    mode = check_mode(mode)
    eta = check_eta(eta, mode)
    s, sn, smax = check_sigmas(sigma, sigma_next, batch, sigma_max if mode == "sde" else None)
    return mode, eta, s, sn, smax


def _fast_args(mode, eta, sigma, sigma_next, sigma_max):
    """(sigma, sigma_next, sigma_max, eta, mode) as the custom ops take them; the sigmas are checked
    inside the op."""
    mode = check_mode(mode)
    eta = check_eta(eta, mode)
    return (
        _sigma_arg("sigma", sigma),
        _sigma_arg("sigma_next", sigma_next),
        _sigma_arg("sigma_max", sigma_max) if mode == "sde" else None,  # only "sde" reads it
        eta,
        mode,
    )


@torch.compiler.assume_constant_result
def _select(device: torch.device, backend: str | None) -> str:
    """select_backend, seen by torch.compile as a constant (it reads the environment and probes
    modules once per process: nothing a graph should trace)."""
    return select_backend(device, backend)


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
    mode = check_mode(mode)
    stochastic = mode != "ode"
    if stochastic:
        if noise is None:
            raise ValueError(f"noise is required for mode={mode!r} (a standard normal tensor shaped like x)")
        check_like("noise", noise, "x", x, same_dtype=True)
    name = _select(x.device, backend)
    with torch.no_grad():  # the sampler: gradients come from sde_logprob
        if name == "torch":
            mode, eta, s, sn, smax = _prepare(mode, eta, sigma, sigma_next, sigma_max, x.shape[0])
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
            s, sn, smax, eta, mode = _fast_args(mode, eta, sigma, sigma_next, sigma_max)
            x_next, logp, mean = sde_step_op(
                x, v, noise if stochastic else None, s, sn, smax, eta, mode, name, return_mean
            )
    if return_mean:
        return SdeStepWithMean(x_next, logp, mean)
    return SdeStep(x_next, logp)


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
    _no_density(check_mode(mode), "log-prob")
    name = _select(x.device, backend)
    if name == "torch":
        mode, eta, s, sn, smax = _prepare(mode, eta, sigma, sigma_next, sigma_max, x.shape[0])
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
    s, sn, smax, eta, mode = _fast_args(mode, eta, sigma, sigma_next, sigma_max)
    return sde_logprob_op(x.detach(), v, x_next.detach(), s, sn, smax, eta, mode, name)


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
    mean((mean - mean_ref)^2) / (2 s^2) = cv^2 mean((v - v_ref)^2) / (2 s^2); differentiable w.r.t. v.
    A step without noise (cps at sigma_next == 0) has no KL: ValueError."""
    check_tensor("v", v)
    check_like("v_ref", v_ref, "v", v, same_dtype=True)
    _no_density(check_mode(mode), "KL")
    name = _select(v.device, backend)
    if name == "torch":
        mode, eta, s, sn, smax = _prepare(mode, eta, sigma, sigma_next, sigma_max, v.shape[0])
        # the same "no noise" check as the op's (on the coefficient table)
        no_noise = (coefficients(mode, eta, s, sn, smax)[:, COEF_S] == 0).nonzero()
        if len(no_noise):
            i = int(no_noise[0])
            raise ValueError(
                f"the KL is undefined for a step without noise (mode={mode!r}, sigma_next={sn[i]:g} "
                f"at sample {i})"
            )
        return sde_kl_reference(
            v,
            v_ref,
            torch.from_numpy(s),
            torch.from_numpy(sn),
            eta=eta,
            mode=mode,
            sigma_max=torch.from_numpy(smax),
        ).to(torch.float32)
    s, sn, smax, eta, mode = _fast_args(mode, eta, sigma, sigma_next, sigma_max)
    return sde_kl_op(v, v_ref.detach(), s, sn, smax, eta, mode, name)
