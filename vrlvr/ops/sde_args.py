"""Arguments of an SDE step: checked, and folded into the per-sample coefficient table.

Every mode of the step is, per element, the same affine map (csrc/include/vrlvr/sde_math.h)::

    mean = cx * x + cv * v      x' = mean + s * noise
    logp = logp_const + logp_scale * mean((x' - mean)^2)        kl = kl_scale * mean((v - v_ref)^2)

so the fast backends receive one float64 [B, COEF_COUNT] table computed here, once per call, on
the host, in float64. The torch reference (sde_reference.py) does not use this table: it writes
each mode out the way Flow-GRPO and DanceGRPO do, which is what makes it an independent oracle.

Sigmas are rounded to float32 first, as schedulers store them, so the ``sigma == 1`` test and every
coefficient see the same values the reference sees.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = [
    "MODES",
    "SUPPORTED_DTYPES",
    "COEF_CX",
    "COEF_CV",
    "COEF_S",
    "COEF_LOGP_SCALE",
    "COEF_LOGP_CONST",
    "COEF_KL_SCALE",
    "COEF_COUNT",
    "check_mode",
    "check_eta",
    "check_tensor",
    "check_like",
    "per_sample",
    "check_sigmas",
    "coefficients",
]

MODES = ("sde", "dance", "cps", "ode")
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# Columns of the coefficient table; csrc/include/vrlvr/sde_math.h (enum Coef) has the same layout.
COEF_CX, COEF_CV, COEF_S, COEF_LOGP_SCALE, COEF_LOGP_CONST, COEF_KL_SCALE = range(6)
COEF_COUNT = 6

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(map(repr, MODES))}")
    return mode


def check_eta(eta: float, mode: str) -> float:
    """eta is the noise level: > 0 for "sde" and "dance", in (0, 1] for "cps"; "ode" ignores it."""
    if mode == "ode":
        return 0.0
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not math.isfinite(float(eta)):
        raise ValueError(f"eta must be a finite number, got {eta!r}")
    eta = float(eta)
    if mode == "cps" and not 0.0 < eta <= 1.0:
        raise ValueError(f"eta must be in (0, 1] for mode='cps' (noise angle eta * pi / 2), got {eta}")
    if eta <= 0.0:
        raise ValueError(
            f"eta must be > 0 for mode={mode!r}, got {eta} (use mode='ode' for a step without noise)"
        )
    return eta


def check_tensor(name: str, t) -> torch.Tensor:
    """A [B, ...] float32 / bfloat16 / float16 tensor with at least one element."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"{name} has dtype {t.dtype}; supported: torch.float32, torch.bfloat16, torch.float16"
        )
    if t.ndim < 1:
        raise ValueError(f"{name} must have a batch dimension [B, ...], got a 0-d tensor")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    return t


def check_like(name: str, t, ref_name: str, ref: torch.Tensor, *, same_dtype: bool) -> torch.Tensor:
    """t must have ref's shape and device (and dtype when same_dtype)."""
    check_tensor(name, t)
    if t.shape != ref.shape:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)} but {ref_name} has shape {tuple(ref.shape)}: they must match"
        )
    if t.device != ref.device:
        raise ValueError(
            f"{name} is on {t.device} but {ref_name} is on {ref.device}: they must be on one device"
        )
    if same_dtype and t.dtype != ref.dtype:
        raise ValueError(f"{name} has dtype {t.dtype} but {ref_name} has dtype {ref.dtype}: they must match")
    return t


def per_sample(name: str, value, batch: int) -> np.ndarray:
    """A float, a 0-d tensor or a [B] tensor -> float64 [B] holding float32-rounded values.

    A CUDA tensor is copied to the host here: one small device-to-host copy (a sync point). Pass
    Python floats or CPU tensors where that matters.
    """
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise ValueError(f"{name} must be real, got a tensor of dtype {value.dtype}")
        if value.ndim == 0:
            arr = np.full(batch, value.detach().to("cpu", torch.float32).item(), dtype=np.float32)
        elif value.ndim == 1 and value.shape[0] == batch:
            arr = value.detach().to("cpu", torch.float32).numpy()
        else:
            raise ValueError(
                f"{name} has shape {tuple(value.shape)} but the batch has B={batch} samples: "
                "pass a float, a 0-d tensor or a [B] tensor"
            )
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        arr = np.full(batch, value, dtype=np.float32)
    else:
        raise ValueError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_sigmas(sigma, sigma_next, batch: int, sigma_max=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample float64 [B] sigma, sigma_next and sigma_max, range-checked.

    sigma in (0, 1], sigma_next in [0, sigma) (a step goes towards the data). sigma_max, the value
    Flow-GRPO substitutes for sigma in ``1 - sigma`` where sigma == 1 (it passes
    ``scheduler.sigmas[1]``), must be in [0, 1); None means sigma_next, which *is* sigmas[1] for the
    only step of a schedule that starts at sigma = 1.
    """
    s = per_sample("sigma", sigma, batch)
    sn = per_sample("sigma_next", sigma_next, batch)
    bad = ~((s > 0.0) & (s <= 1.0))
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"sigma must be in (0, 1], got {s[i]:g} (sample {i})")
    bad = ~((sn >= 0.0) & (sn < s))
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(
            f"sigma_next must be in [0, sigma) (a step moves towards the data), got sigma_next={sn[i]:g} "
            f"with sigma={s[i]:g} (sample {i})"
        )
    smax = sn if sigma_max is None else per_sample("sigma_max", sigma_max, batch)
    bad = ~((smax >= 0.0) & (smax < 1.0))
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"sigma_max must be in [0, 1), got {smax[i]:g} (sample {i})")
    return s, sn, smax


def coefficients(mode: str, eta: float, s: np.ndarray, sn: np.ndarray, smax: np.ndarray) -> torch.Tensor:
    """float64 [B, COEF_COUNT] on the CPU, from checked per-sample sigmas (see check_sigmas).

    sde    (Flow-GRPO):  std = eta sqrt(sigma / (1 - sigma*)), sigma* = sigma_max where sigma == 1
    dance  (DanceGRPO):  std = eta (the SDE's diffusion coefficient g is constant)
           both:  mean = x (1 + std^2 dt / (2 sigma)) + v (1 + std^2 (1 - sigma) / (2 sigma)) dt,
                  s = std sqrt(-dt), logp the Gaussian log-density averaged over elements
    cps    (Flow-GRPO "cps", coefficients-preserving sampling): std = sigma' sin(eta pi / 2),
           mean = (x - sigma v)(1 - sigma') + (x + (1 - sigma) v) sqrt(sigma'^2 - std^2), s = std,
           logp = -mean((x' - mean)^2): Flow-GRPO drops the 1 / (2 s^2) weight and the constants
    ode    x' = x + v dt, no noise, logp = 0
    The KL is the exact one between the two step Gaussians: cv^2 mean((v - v_ref)^2) / (2 s^2).
    """
    B = s.shape[0]
    dt = sn - s
    table = np.zeros((B, COEF_COUNT), dtype=np.float64)
    with np.errstate(divide="ignore"):  # s == 0 (ode, or cps at sigma_next == 0) gives an infinite KL
        if mode in ("sde", "dance"):
            if mode == "sde":
                std = eta * np.sqrt(s / (1.0 - np.where(s == 1.0, smax, s)))
            else:
                std = np.full(B, eta)
            var_over_2sigma = std * std / (2.0 * s)
            table[:, COEF_CX] = 1.0 + var_over_2sigma * dt
            table[:, COEF_CV] = (1.0 + var_over_2sigma * (1.0 - s)) * dt
            step_std = std * np.sqrt(-dt)
            table[:, COEF_S] = step_std
            table[:, COEF_LOGP_SCALE] = -1.0 / (2.0 * step_std * step_std)
            table[:, COEF_LOGP_CONST] = -np.log(step_std) - _LOG_SQRT_2PI
        elif mode == "cps":
            std = sn * math.sin(eta * math.pi / 2.0)
            keep = np.sqrt(np.maximum(sn * sn - std * std, 0.0))  # weight of the predicted noise
            table[:, COEF_CX] = (1.0 - sn) + keep
            table[:, COEF_CV] = -s * (1.0 - sn) + (1.0 - s) * keep
            table[:, COEF_S] = std
            table[:, COEF_LOGP_SCALE] = -1.0
            table[:, COEF_LOGP_CONST] = 0.0
        else:  # ode
            table[:, COEF_CX] = 1.0
            table[:, COEF_CV] = dt
        step_std = table[:, COEF_S]
        table[:, COEF_KL_SCALE] = table[:, COEF_CV] ** 2 / (2.0 * step_std * step_std)
    return torch.from_numpy(table)
