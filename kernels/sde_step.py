"""Triton kernels of the fused SDE step, its log-prob (forward and backward) and the KL.

Tensors are contiguous [B, N] views; per-sample coefficients are read, as the C++ kernels read
them, from the float64 [B, COEF_COUNT] table of vrlvr.ops.sde_args (cx, cv, s) and a float64 [B]
factor k, rounded to fp32 in the kernel (see csrc/include/vrlvr/sde_math.h for the math, which
these kernels repeat line for line).
The grid is 1-D, B * cdiv(N, BLOCK) programs: a program owns BLOCK elements of one sample (one
integer division per program, none per element). Reductions write one fp32 partial per program
(a tree sum inside the block), and the partials are added per sample in float64 by torch:
deterministic, no atomics.

The kernels use only +, -, * and casts (the sigma math is done on the host, so not even tl.sqrt is
needed, and no libdevice): the same code runs in Triton's CPU interpreter (TRITON_INTERPRET=1),
which is how the tests run it. BLOCK is fixed per
call (no autotune): large in the interpreter, where every program is a round of numpy calls.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vrlvr.ops.sde_args import COEF_COUNT, COEF_CV, COEF_CX, COEF_S

from . import interpreter_mode

__all__ = ["block_size", "sde_step", "sde_logprob", "sde_logprob_grad", "sde_kl", "sde_kl_grad"]

# 2048 elements, 8 warps: 8 consecutive elements per lane, i.e. one 16-byte access per lane for
# 16-bit tensors and two for fp32 (Triton vectorises when the pointers are 16-byte aligned and N
# is a multiple of 16, which it specialises on, as for the Wan latent). The same work per program
# as the CUDA kernels' chunk: a Wan2.2-5B latent x 4 is 3072 programs of 256 threads, ~3 full
# waves of an H100 / H200 with a short tail.
_GPU_BLOCK = 2048
_INTERPRETER_BLOCK = 1 << 16

# columns of the float64 [B, COEF_COUNT] coefficient table (vrlvr.ops.sde_args)
_COEF_COUNT = tl.constexpr(COEF_COUNT)
_CX = tl.constexpr(COEF_CX)
_CV = tl.constexpr(COEF_CV)
_S = tl.constexpr(COEF_S)


def block_size(n: int) -> int:
    cap = _INTERPRETER_BLOCK if interpreter_mode() else _GPU_BLOCK
    return min(triton.next_power_of_2(max(n, 1)), cap)


def _num_warps(block: int) -> int:
    return 8 if block >= 2048 else 4


@triton.jit
def _bf16_rne(f):
    """fp32 -> bf16 rounding to nearest even, in integer ops (as sde_math.h's from_float<bf16>).
    Triton's interpreter truncates on .to(tl.bfloat16); spelling the rounding out gives the same
    bits as torch and the CUDA/CPU kernels on every Triton target."""
    u = f.to(tl.uint32, bitcast=True)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    quiet_nan = (u >> 16) | 0x40
    bits = tl.where((u & 0x7FFFFFFF) > 0x7F800000, quiet_nan, rounded)
    return bits.to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _to_f32(t):
    """Loaded values -> fp32. bf16 is the upper half of an fp32: a shift, exact for every value
    (the interpreter's own bf16 upcast loses subnormals)."""
    if t.dtype == tl.bfloat16:
        return (t.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    else:
        return t.to(tl.float32)


@triton.jit
def _to_storage(f, dtype: tl.constexpr):
    """fp32 values -> the storage dtype of an output tensor, rounding to nearest even."""
    if dtype == tl.bfloat16:
        return _bf16_rne(f)
    else:
        return f.to(dtype)


@triton.jit
def _block(N, n_blocks, BLOCK: tl.constexpr):
    """This program's id, its sample b, and the flat indices (and mask) of its block of that sample."""
    pid = tl.program_id(0)
    b = pid // n_blocks
    offs = (pid - b * n_blocks) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    return pid, b, b.to(tl.int64) * N + offs, mask


@triton.jit
def _load(ptr, idx, mask):
    return _to_f32(tl.load(ptr + idx, mask=mask, other=0.0))


@triton.jit
def _coef(coef_ptr, b, col: tl.constexpr):
    """Column `col` of sample b's row of the float64 coefficient table, as fp32 (as the C++ kernels
    read it)."""
    return tl.load(coef_ptr + b.to(tl.int64) * _COEF_COUNT + col).to(tl.float32)


@triton.jit
def _block_mean(x_ptr, v_ptr, coef_ptr, b, idx, mask):
    """Mean of the step's Gaussian over one block: cx * x + cv * v in fp32."""
    x = _load(x_ptr, idx, mask)
    v = _load(v_ptr, idx, mask)
    return _coef(coef_ptr, b, _CX) * x + _coef(coef_ptr, b, _CV) * v


@triton.jit
def _step_kernel(
    x_ptr,
    v_ptr,
    noise_ptr,
    xn_ptr,
    mean_ptr,
    coef_ptr,
    part_ptr,
    N,
    n_blocks,
    STOCHASTIC: tl.constexpr,
    WRITE_MEAN: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid, b, idx, mask = _block(N, n_blocks, BLOCK)
    m = _block_mean(x_ptr, v_ptr, coef_ptr, b, idx, mask)
    if WRITE_MEAN:
        tl.store(mean_ptr + idx, m, mask=mask)
    if STOCHASTIC:
        s = _coef(coef_ptr, b, _S)
        stored = _to_storage(m + s * _load(noise_ptr, idx, mask), xn_ptr.dtype.element_ty)
        tl.store(xn_ptr + idx, stored, mask=mask)
        # residual of the value actually stored (x's dtype), as the re-scoring kernel sees it
        r = tl.where(mask, _to_f32(stored) - m, 0.0)
        tl.store(part_ptr + pid, tl.sum(r * r, axis=0))
    else:
        tl.store(xn_ptr + idx, _to_storage(m, xn_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _residual(x_ptr, v_ptr, xn_ptr, coef_ptr, b, idx, mask):
    """x_next - mean for one block."""
    m = _block_mean(x_ptr, v_ptr, coef_ptr, b, idx, mask)
    return _load(xn_ptr, idx, mask) - m


@triton.jit
def _logprob_kernel(x_ptr, v_ptr, xn_ptr, coef_ptr, part_ptr, N, n_blocks, BLOCK: tl.constexpr):
    pid, b, idx, mask = _block(N, n_blocks, BLOCK)
    r = tl.where(mask, _residual(x_ptr, v_ptr, xn_ptr, coef_ptr, b, idx, mask), 0.0)
    tl.store(part_ptr + pid, tl.sum(r * r, axis=0))


@triton.jit
def _logprob_grad_kernel(x_ptr, v_ptr, xn_ptr, coef_ptr, k_ptr, gv_ptr, N, n_blocks, BLOCK: tl.constexpr):
    _, b, idx, mask = _block(N, n_blocks, BLOCK)
    k = tl.load(k_ptr + b).to(tl.float32)
    g = k * _residual(x_ptr, v_ptr, xn_ptr, coef_ptr, b, idx, mask)
    tl.store(gv_ptr + idx, _to_storage(g, gv_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _kl_kernel(v_ptr, r_ptr, part_ptr, N, n_blocks, BLOCK: tl.constexpr):
    pid, _, idx, mask = _block(N, n_blocks, BLOCK)
    d = _load(v_ptr, idx, mask) - _load(r_ptr, idx, mask)
    tl.store(part_ptr + pid, tl.sum(d * d, axis=0))


@triton.jit
def _kl_grad_kernel(v_ptr, r_ptr, k_ptr, gv_ptr, N, n_blocks, BLOCK: tl.constexpr):
    _, b, idx, mask = _block(N, n_blocks, BLOCK)
    k = tl.load(k_ptr + b).to(tl.float32)
    d = _load(v_ptr, idx, mask) - _load(r_ptr, idx, mask)
    tl.store(gv_ptr + idx, _to_storage(k * d, gv_ptr.dtype.element_ty), mask=mask)


_MAX_PROGRAMS = 2**31 - 1  # CUDA's limit on grid axis 0 (axes 1 and 2 stop at 65535)


def _grid(B: int, N: int) -> tuple[int, int, tuple[int]]:
    """(BLOCK, programs per sample, launch grid). The grid is 1-D, program pid owning block
    pid % n_blocks of sample pid // n_blocks: a batch axis on grid axis 1 would cap B at 65535.
    Element offsets inside a sample are int32 (the sample offset b * N is int64), so N stays
    below 2^31 - BLOCK."""
    block = block_size(N)
    n_blocks = triton.cdiv(N, block)
    if N > 2**31 - 1 - block or B * n_blocks > _MAX_PROGRAMS:
        raise ValueError(
            f"sde Triton kernels: [B={B}, N={N}] is too large for one launch "
            f"(needs N < 2^31 - {block} and B * ceil(N / {block}) < 2^31)"
        )
    return block, n_blocks, (B * n_blocks,)


def _sum_partials(part: torch.Tensor) -> torch.Tensor:
    # fp32 [B, n_blocks] -> float64 [B]; a fixed-shape torch reduction, so deterministic
    return part.sum(dim=1, dtype=torch.float64)


def sde_step(x, v, noise, coef, *, stochastic: bool, write_mean: bool):
    """x, v, noise [B, N] contiguous; coef float64 [B, COEF_COUNT] ->
    x_next [B, N] (x's dtype), mean fp32 [B, N] or None, sum of squared residuals float64 [B] or None."""
    B, N = x.shape
    block, n_blocks, grid = _grid(B, N)
    x_next = torch.empty_like(x)
    mean = torch.empty(x.shape, dtype=torch.float32, device=x.device) if write_mean else x_next
    part = torch.empty((B, n_blocks), dtype=torch.float32, device=x.device) if stochastic else coef
    _step_kernel[grid](
        x,
        v,
        noise if stochastic else x,
        x_next,
        mean,
        coef,
        part,
        N,
        n_blocks,
        STOCHASTIC=stochastic,
        WRITE_MEAN=write_mean,
        BLOCK=block,
        num_warps=_num_warps(block),
    )
    return x_next, (mean if write_mean else None), (_sum_partials(part) if stochastic else None)


def sde_logprob(x, v, x_next, coef):
    """[B, N] contiguous, coef float64 [B, COEF_COUNT] -> sum over each sample of (x_next - mean)^2,
    float64 [B]."""
    B, N = x.shape
    block, n_blocks, grid = _grid(B, N)
    part = torch.empty((B, n_blocks), dtype=torch.float32, device=x.device)
    _logprob_kernel[grid](x, v, x_next, coef, part, N, n_blocks, BLOCK=block, num_warps=_num_warps(block))
    return _sum_partials(part)


def sde_logprob_grad(x, v, x_next, coef, k):
    """grad_v [B, N] (v's dtype) = k[b] * (x_next - mean); k float64 [B]."""
    B, N = x.shape
    block, n_blocks, grid = _grid(B, N)
    grad_v = torch.empty_like(v)
    _logprob_grad_kernel[grid](
        x, v, x_next, coef, k, grad_v, N, n_blocks, BLOCK=block, num_warps=_num_warps(block)
    )
    return grad_v


def sde_kl(v, v_ref):
    """[B, N] contiguous -> sum over each sample of (v - v_ref)^2, float64 [B]."""
    B, N = v.shape
    block, n_blocks, grid = _grid(B, N)
    part = torch.empty((B, n_blocks), dtype=torch.float32, device=v.device)
    _kl_kernel[grid](v, v_ref, part, N, n_blocks, BLOCK=block, num_warps=_num_warps(block))
    return _sum_partials(part)


def sde_kl_grad(v, v_ref, k):
    """grad_v [B, N] (v's dtype) = k[b] * (v - v_ref); k float64 [B]."""
    B, N = v.shape
    block, n_blocks, grid = _grid(B, N)
    grad_v = torch.empty_like(v)
    _kl_grad_kernel[grid](v, v_ref, k, grad_v, N, n_blocks, BLOCK=block, num_warps=_num_warps(block))
    return grad_v
