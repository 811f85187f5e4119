"""The fused SDE kernels as torch.library custom ops, so torch.compile sees them as single opaque
calls (no graph breaks) with fake-tensor (shape) and autograd registrations.

    vrlvr::sde_step(x, v, noise?, sigma, sigma_next, sigma_max?, eta, mode, backend, write_mean)
        -> (x_next, logp, mean)          mean is [0] fp32 unless write_mean
    vrlvr::sde_logprob(x, v, x_next, sigma, sigma_next, sigma_max?, eta, mode, backend) -> logp
    vrlvr::sde_logprob_backward(grad_logp, x, v, x_next, sigmas..., eta, mode, backend) -> grad_v
    vrlvr::sde_kl(v, v_ref, sigma, sigma_next, sigma_max?, eta, mode, backend) -> kl
    vrlvr::sde_kl_backward(grad_kl, v, v_ref, sigmas..., eta, mode, backend) -> grad_v

x, v, noise, x_next, v_ref: [B, ...] on one device (any strides); sigma, sigma_next, sigma_max: 0-d
or [B] tensors (any device; read on the host). backend is a fast backend ("cpu", "triton",
"cuda"): the torch reference is plain torch code and needs no op. The sigmas are range-checked and
folded into the coefficient table inside the op, on the host: that host work (numpy, a
data-dependent check) is what would otherwise break a compiled graph. These are the building
blocks of vrlvr.ops.sde, which checks shapes and dtypes before calling them.
"""

from __future__ import annotations

import torch

from vrlvr.ops import sde_backends
from vrlvr.ops.sde_args import COEF_CV, COEF_KL_SCALE, COEF_LOGP_SCALE, COEF_S, check_sigmas, coefficients

__all__ = ["sde_step_op", "sde_logprob_op", "sde_logprob_backward_op", "sde_kl_op", "sde_kl_backward_op"]

Tensor = torch.Tensor


def _flat(t: Tensor) -> Tensor:
    """[B, ...] -> contiguous [B, N] (a view when t is contiguous, else one copy)."""
    return t.reshape(t.shape[0], -1).contiguous()


def _on_device(table: Tensor, device: torch.device) -> Tensor:
    """The float64 [B, COEF_COUNT] host table on the tensors' device. To a GPU it goes through
    torch's caching pinned allocator and a non-blocking copy: a copy from pageable memory would
    synchronise the stream, and the host would stop running ahead of the GPU on every step."""
    if device.type == "cpu":
        return table
    if device.type == "cuda":
        return table.pin_memory().to(device, non_blocking=True)
    return table.to(device)


def _coef(mode, eta, sigma, sigma_next, sigma_max, batch: int, device, *, for_kl: bool = False) -> Tensor:
    """Checked sigmas -> the float64 [B, COEF_COUNT] table on `device`."""
    s, sn, smax = check_sigmas(sigma, sigma_next, batch, sigma_max if mode == "sde" else None)
    table = coefficients(mode, eta, s, sn, smax)
    if for_kl:
        no_noise = (table[:, COEF_S] == 0).nonzero()
        if len(no_noise):
            i = int(no_noise[0])
            raise ValueError(
                f"the KL is undefined for a step without noise (mode={mode!r}, sigma_next={sn[i]:g} "
                f"at sample {i})"
            )
    return _on_device(table, device)


# ------------------------------------------------------------------------------------------------
# sde_step: the sampler (no autograd: gradients come from sde_logprob)
# ------------------------------------------------------------------------------------------------


@torch.library.custom_op("vrlvr::sde_step", mutates_args=())
def sde_step_op(
    x: Tensor,
    v: Tensor,
    noise: Tensor | None,
    sigma: Tensor,
    sigma_next: Tensor,
    sigma_max: Tensor | None,
    eta: float,
    mode: str,
    backend: str,
    write_mean: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    B = x.shape[0]
    stochastic = mode != "ode"
    coef = _coef(mode, eta, sigma, sigma_next, sigma_max, B, x.device)
    x_next2, logp, mean2 = sde_backends.get(backend).step(
        _flat(x),
        _flat(v),
        _flat(noise) if stochastic else None,
        coef,
        stochastic=stochastic,
        write_mean=write_mean,
    )
    if logp is None:  # "ode": no density
        logp = torch.zeros(B, dtype=torch.float32, device=x.device)
    mean = mean2.view(x.shape) if write_mean else x.new_empty(0, dtype=torch.float32)
    return x_next2.view(x.shape), logp, mean


@sde_step_op.register_fake
def _(x, v, noise, sigma, sigma_next, sigma_max, eta, mode, backend, write_mean):
    mean_shape = x.shape if write_mean else (0,)
    return (
        x.new_empty(x.shape),
        x.new_empty(x.shape[0], dtype=torch.float32),
        x.new_empty(mean_shape, dtype=torch.float32),
    )


# ------------------------------------------------------------------------------------------------
# sde_logprob and its backward
# ------------------------------------------------------------------------------------------------


@torch.library.custom_op("vrlvr::sde_logprob", mutates_args=())
def sde_logprob_op(
    x: Tensor,
    v: Tensor,
    x_next: Tensor,
    sigma: Tensor,
    sigma_next: Tensor,
    sigma_max: Tensor | None,
    eta: float,
    mode: str,
    backend: str,
) -> Tensor:
    coef = _coef(mode, eta, sigma, sigma_next, sigma_max, x.shape[0], x.device)
    return sde_backends.get(backend).logprob(_flat(x), _flat(v), _flat(x_next), coef)


@sde_logprob_op.register_fake
def _(x, v, x_next, sigma, sigma_next, sigma_max, eta, mode, backend):
    return x.new_empty(x.shape[0], dtype=torch.float32)


@torch.library.custom_op("vrlvr::sde_logprob_backward", mutates_args=())
def sde_logprob_backward_op(
    grad_logp: Tensor,
    x: Tensor,
    v: Tensor,
    x_next: Tensor,
    sigma: Tensor,
    sigma_next: Tensor,
    sigma_max: Tensor | None,
    eta: float,
    mode: str,
    backend: str,
) -> Tensor:
    """grad_v [B, ...] (v's dtype, contiguous) of sum(grad_logp * logp)."""
    coef = _coef(mode, eta, sigma, sigma_next, sigma_max, x.shape[0], x.device)
    x2 = _flat(x)
    # logp_b = const + logp_scale * mean_i r_i^2 with r = x' - cx x - cv v, so
    # d logp_b / d v_bi = -2 logp_scale cv r_bi / N: one per-sample factor times the residual
    k = grad_logp.to(torch.float64) * (-2.0 / x2.shape[1]) * coef[:, COEF_LOGP_SCALE] * coef[:, COEF_CV]
    grad = sde_backends.get(backend).logprob_grad(x2, _flat(v), _flat(x_next), coef, k.contiguous())
    return grad.view(v.shape)


@sde_logprob_backward_op.register_fake
def _(grad_logp, x, v, x_next, sigma, sigma_next, sigma_max, eta, mode, backend):
    return v.new_empty(v.shape)


def _logprob_setup(ctx, inputs, output):
    x, v, x_next, sigma, sigma_next, sigma_max, eta, mode, backend = inputs
    ctx.save_for_backward(x, v, x_next, sigma, sigma_next, sigma_max)
    ctx.args = (eta, mode, backend)


def _logprob_backward(ctx, grad_logp):
    grad_v = None
    if ctx.needs_input_grad[1]:
        x, v, x_next, sigma, sigma_next, sigma_max = ctx.saved_tensors
        grad_v = sde_logprob_backward_op(grad_logp, x, v, x_next, sigma, sigma_next, sigma_max, *ctx.args)
    # gradients flow to v only: x and x_next are data, the sigmas are the schedule
    return None, grad_v, None, None, None, None, None, None, None


sde_logprob_op.register_autograd(_logprob_backward, setup_context=_logprob_setup)


# ------------------------------------------------------------------------------------------------
# sde_kl and its backward
# ------------------------------------------------------------------------------------------------


@torch.library.custom_op("vrlvr::sde_kl", mutates_args=())
def sde_kl_op(
    v: Tensor,
    v_ref: Tensor,
    sigma: Tensor,
    sigma_next: Tensor,
    sigma_max: Tensor | None,
    eta: float,
    mode: str,
    backend: str,
) -> Tensor:
    coef = _coef(mode, eta, sigma, sigma_next, sigma_max, v.shape[0], v.device, for_kl=True)
    return sde_backends.get(backend).kl(_flat(v), _flat(v_ref), coef)


@sde_kl_op.register_fake
def _(v, v_ref, sigma, sigma_next, sigma_max, eta, mode, backend):
    return v.new_empty(v.shape[0], dtype=torch.float32)


@torch.library.custom_op("vrlvr::sde_kl_backward", mutates_args=())
def sde_kl_backward_op(
    grad_kl: Tensor,
    v: Tensor,
    v_ref: Tensor,
    sigma: Tensor,
    sigma_next: Tensor,
    sigma_max: Tensor | None,
    eta: float,
    mode: str,
    backend: str,
) -> Tensor:
    """grad_v [B, ...] (v's dtype, contiguous) of sum(grad_kl * kl)."""
    coef = _coef(mode, eta, sigma, sigma_next, sigma_max, v.shape[0], v.device, for_kl=True)
    v2 = _flat(v)
    # kl_b = kl_scale * mean_i (v - v_ref)^2, so d kl_b / d v_bi = 2 kl_scale (v - v_ref)_bi / N
    k = grad_kl.to(torch.float64) * (2.0 / v2.shape[1]) * coef[:, COEF_KL_SCALE]
    return sde_backends.get(backend).kl_grad(v2, _flat(v_ref), k.contiguous()).view(v.shape)


@sde_kl_backward_op.register_fake
def _(grad_kl, v, v_ref, sigma, sigma_next, sigma_max, eta, mode, backend):
    return v.new_empty(v.shape)


def _kl_setup(ctx, inputs, output):
    v, v_ref, sigma, sigma_next, sigma_max, eta, mode, backend = inputs
    ctx.save_for_backward(v, v_ref, sigma, sigma_next, sigma_max)
    ctx.args = (eta, mode, backend)


def _kl_backward(ctx, grad_kl):
    grad_v = None
    if ctx.needs_input_grad[0]:
        v, v_ref, sigma, sigma_next, sigma_max = ctx.saved_tensors
        grad_v = sde_kl_backward_op(grad_kl, v, v_ref, sigma, sigma_next, sigma_max, *ctx.args)
    return grad_v, None, None, None, None, None, None, None


sde_kl_op.register_autograd(_kl_backward, setup_context=_kl_setup)
