"""The fast backends of the SDE op behind one interface: "cpu" (vrlvr._native), "triton"
(vrlvr.kernels.sde_step) and "cuda" (vrlvr._cuda).

Every method works on contiguous [B, N] views (N = elements per sample) and the float64
[B, COEF_COUNT] coefficient table of vrlvr.ops.sde_args, already on the tensors' device; k is a
float64 [B] per-sample factor of a backward pass. Outputs are new tensors: x_next and grad_v in the
dtypes of x and v, mean fp32 [B, N], logp and kl fp32 [B]. Shapes and dtypes are checked by the
caller (vrlvr.ops.sde); the native modules trust the pointers they are given.
"""

from __future__ import annotations

import functools

import torch

from vrlvr.ops.sde_args import COEF_KL_SCALE, COEF_LOGP_CONST, COEF_LOGP_SCALE

__all__ = ["DTYPE_CODES", "get"]

# dtype codes of csrc/include/vrlvr/sde_math.h (enum DType); a test checks both sides agree
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def _fp32_out(batch: int, device: torch.device) -> torch.Tensor:
    return torch.empty(batch, dtype=torch.float32, device=device)


def _ptr(t: torch.Tensor | None) -> int:
    """The address the native modules take; 0 (buffer not used) for None."""
    return 0 if t is None else t.data_ptr()


class NativeBackend:
    """vrlvr._native: one OpenMP pass per call, GIL released, deterministic per-sample sums."""

    name = "cpu"

    def __init__(self):
        from vrlvr import _native

        self._m = _native

    def step(self, x, v, noise, coef, *, stochastic: bool, write_mean: bool):
        B, N = x.shape
        x_next = torch.empty_like(x)
        mean = torch.empty(x.shape, dtype=torch.float32) if write_mean else None
        logp = _fp32_out(B, x.device) if stochastic else None
        self._m.sde_step_forward(
            x.data_ptr(),
            v.data_ptr(),
            _ptr(noise),
            x_next.data_ptr(),
            _ptr(mean),
            coef.data_ptr(),
            _ptr(logp),
            DTYPE_CODES[x.dtype],
            DTYPE_CODES[v.dtype],
            B,
            N,
            stochastic,
        )
        return x_next, logp, mean

    def logprob(self, x, v, x_next, coef):
        B, N = x.shape
        logp = _fp32_out(B, x.device)
        self._m.sde_logprob_forward(
            x.data_ptr(),
            v.data_ptr(),
            x_next.data_ptr(),
            coef.data_ptr(),
            logp.data_ptr(),
            DTYPE_CODES[x.dtype],
            DTYPE_CODES[v.dtype],
            B,
            N,
        )
        return logp

    def logprob_grad(self, x, v, x_next, coef, k):
        B, N = x.shape
        grad_v = torch.empty_like(v)
        self._m.sde_logprob_backward(
            x.data_ptr(),
            v.data_ptr(),
            x_next.data_ptr(),
            coef.data_ptr(),
            k.data_ptr(),
            grad_v.data_ptr(),
            DTYPE_CODES[x.dtype],
            DTYPE_CODES[v.dtype],
            B,
            N,
        )
        return grad_v

    def kl(self, v, v_ref, coef):
        B, N = v.shape
        kl = _fp32_out(B, v.device)
        self._m.sde_kl_forward(
            v.data_ptr(), v_ref.data_ptr(), coef.data_ptr(), kl.data_ptr(), DTYPE_CODES[v.dtype], B, N
        )
        return kl

    def kl_grad(self, v, v_ref, k):
        B, N = v.shape
        grad_v = torch.empty_like(v)
        self._m.sde_kl_backward(
            v.data_ptr(), v_ref.data_ptr(), k.data_ptr(), grad_v.data_ptr(), DTYPE_CODES[v.dtype], B, N
        )
        return grad_v


class TritonBackend:
    """vrlvr.kernels.sde_step: per-element math and per-block partial sums in Triton (reading the
    float64 coefficient table and k directly); the float64 per-sample sums and the logp / kl
    coefficients are applied here with torch ([B]-sized ops)."""

    name = "triton"

    def __init__(self):
        from vrlvr.kernels import sde_step as kernels

        self._k = kernels

    @staticmethod
    def _logp(coef, sums, N):
        return (coef[:, COEF_LOGP_CONST] + coef[:, COEF_LOGP_SCALE] * (sums / N)).to(torch.float32)

    def step(self, x, v, noise, coef, *, stochastic: bool, write_mean: bool):
        x_next, mean, sums = self._k.sde_step(x, v, noise, coef, stochastic=stochastic, write_mean=write_mean)
        return x_next, (self._logp(coef, sums, x.shape[1]) if stochastic else None), mean

    def logprob(self, x, v, x_next, coef):
        return self._logp(coef, self._k.sde_logprob(x, v, x_next, coef), x.shape[1])

    def logprob_grad(self, x, v, x_next, coef, k):
        return self._k.sde_logprob_grad(x, v, x_next, coef, k)

    def kl(self, v, v_ref, coef):
        sums = self._k.sde_kl(v, v_ref)
        return (coef[:, COEF_KL_SCALE] * (sums / v.shape[1])).to(torch.float32)

    def kl_grad(self, v, v_ref, k):
        return self._k.sde_kl_grad(v, v_ref, k)


class CudaBackend:
    """vrlvr._cuda: kernels enqueued on the tensors' current stream (asynchronous, no sync here)."""

    name = "cuda"

    def __init__(self):
        from vrlvr import _cuda

        self._m = _cuda

    @staticmethod
    def _where(t: torch.Tensor) -> tuple[int, int]:
        return t.device.index, torch.cuda.current_stream(t.device).cuda_stream

    def _workspace(self, B: int, N: int, device) -> torch.Tensor:
        return torch.empty(self._m.sde_workspace_doubles(B, N), dtype=torch.float64, device=device)

    def step(self, x, v, noise, coef, *, stochastic: bool, write_mean: bool):
        B, N = x.shape
        device, stream = self._where(x)
        x_next = torch.empty_like(x)
        mean = torch.empty(x.shape, dtype=torch.float32, device=x.device) if write_mean else None
        logp = _fp32_out(B, x.device) if stochastic else None
        workspace = self._workspace(B, N, x.device) if stochastic else None
        self._m.sde_step(
            x.data_ptr(),
            v.data_ptr(),
            _ptr(noise),
            x_next.data_ptr(),
            _ptr(mean),
            coef.data_ptr(),
            _ptr(logp),
            _ptr(workspace),
            DTYPE_CODES[x.dtype],
            DTYPE_CODES[v.dtype],
            B,
            N,
            stochastic,
            device,
            stream,
        )
        return x_next, logp, mean

    def logprob(self, x, v, x_next, coef):
        B, N = x.shape
        device, stream = self._where(x)
        logp = _fp32_out(B, x.device)
        workspace = self._workspace(B, N, x.device)
        self._m.sde_logprob(
            x.data_ptr(),
            v.data_ptr(),
            x_next.data_ptr(),
            coef.data_ptr(),
            logp.data_ptr(),
            workspace.data_ptr(),
            DTYPE_CODES[x.dtype],
            DTYPE_CODES[v.dtype],
            B,
            N,
            device,
            stream,
        )
        return logp

    def logprob_grad(self, x, v, x_next, coef, k):
        B, N = x.shape
        device, stream = self._where(x)
        grad_v = torch.empty_like(v)
        self._m.sde_logprob_backward(
            x.data_ptr(),
            v.data_ptr(),
            x_next.data_ptr(),
            coef.data_ptr(),
            k.data_ptr(),
            grad_v.data_ptr(),
            DTYPE_CODES[x.dtype],
            DTYPE_CODES[v.dtype],
            B,
            N,
            device,
            stream,
        )
        return grad_v

    def kl(self, v, v_ref, coef):
        B, N = v.shape
        device, stream = self._where(v)
        kl = _fp32_out(B, v.device)
        workspace = self._workspace(B, N, v.device)
        self._m.sde_kl(
            v.data_ptr(),
            v_ref.data_ptr(),
            coef.data_ptr(),
            kl.data_ptr(),
            workspace.data_ptr(),
            DTYPE_CODES[v.dtype],
            B,
            N,
            device,
            stream,
        )
        return kl

    def kl_grad(self, v, v_ref, k):
        B, N = v.shape
        device, stream = self._where(v)
        grad_v = torch.empty_like(v)
        self._m.sde_kl_backward(
            v.data_ptr(),
            v_ref.data_ptr(),
            k.data_ptr(),
            grad_v.data_ptr(),
            DTYPE_CODES[v.dtype],
            B,
            N,
            device,
            stream,
        )
        return grad_v


@functools.cache
def get(name: str):
    """The backend object for "cpu", "triton" or "cuda" (created once; imports its module)."""
    return {"cpu": NativeBackend, "triton": TritonBackend, "cuda": CudaBackend}[name]()
