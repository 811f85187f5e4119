"""Wan attention (diffusers' ``WanAttnProcessor``) with fewer passes over the activation, for fp32.

diffusers' processor, per attention layer: q, k, v projections; RMSNorm of q and k over the whole
width (``torch.nn.RMSNorm``, which on a CPU runs as pow, mean, two multiplies: four passes over
[B, S, D]); rotary embedding of q and k by strided halves (x1 cos - x2 sin, x1 sin + x2 cos: six
elementwise ops and two strided writes); scaled dot-product attention; output projection.

Here the same function with:
- RMSNorm as one reduction (``linalg.vector_norm``, reads x once, writes [B, S, 1]) and two
  multiplies, the second in place: x * rsqrt(|x|^2 / D + eps) * w;
- the rotary embedding as one complex multiply: consecutive pairs (x[2i], x[2i+1]) of a head are the
  complex number x[2i] + i x[2i+1], rotated by cos + i sin of its position (``rope_as_complex``
  turns diffusers' [1, S, 1, Dh] cos and sin tables into [1, S, 1, Dh / 2] complex64 once a
  forward, not once a layer).
Both are differentiable by autograd; results agree with diffusers' to fp32 rounding (an FMA or a
reduction order apart; tests/test_models_attention.py checks values and gradients against
diffusers' processor and a readable reference). bench/bench_attention.py measures the layer and a
whole policy forward both ways.

``supports(attn, x)`` says when this computes the layer's own function: fp32 activations and no
autocast (complex32 does not exist for bf16, and on a GPU fused kernels make the passes cheap), diffusers'
default processor with its default attention backend and no context parallelism, separate q/k/v
projections, no image-conditioning projections (Wan I2V), RMSNorm on q and k. Otherwise the caller
runs the layer itself (vrlvr.models.framewise does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["supports", "rms_norm", "rope_as_complex", "apply_rope", "wan_attention"]


def supports(attn: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``wan_attention(attn, x, ...)`` computes ``attn(x, ...)``'s function."""
    try:
        from diffusers.models.transformers.transformer_wan import WanAttnProcessor
    except ImportError:  # pragma: no cover - diffusers is a dependency
        return False
    proc = getattr(attn, "processor", None)
    return (
        x.dtype == torch.float32
        # under autocast the projections return bf16/fp16 (no complex bf16): diffusers' processor
        and not torch.is_autocast_enabled(x.device.type)
        and type(proc) is WanAttnProcessor
        and getattr(proc, "_attention_backend", None) is None
        and getattr(proc, "_parallel_config", None) is None
        and not getattr(attn, "fused_projections", False)
        and getattr(attn, "add_k_proj", None) is None
        and type(attn.norm_q) is nn.RMSNorm
        and type(attn.norm_k) is nn.RMSNorm
        and not attn._forward_hooks
        and not attn._forward_pre_hooks
    )


def rms_norm(x: torch.Tensor, norm: nn.RMSNorm) -> torch.Tensor:
    """``norm(x)`` over the last dim: x * rsqrt(mean(x^2) + eps) * weight, in three passes."""
    if tuple(norm.normalized_shape) != (x.shape[-1],):
        raise ValueError(
            f"RMSNorm over {tuple(norm.normalized_shape)} does not match x's last dim {x.shape[-1]}"
        )
    eps = norm.eps if norm.eps is not None else torch.finfo(x.dtype).eps
    # [..., 1]: the sum of squares in one read of x (no x^2 tensor written)
    r = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / x.shape[-1] + eps)
    y = x * r
    return y.mul_(norm.weight) if norm.weight is not None else y


def rope_as_complex(rotary_emb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """diffusers' WanRotaryPosEmbed output (cos, sin), each [1, S, 1, Dh] with every frequency
    repeated for its pair -> [1, S, 1, Dh / 2] complex64 cos + i sin."""
    cos, sin = rotary_emb
    return torch.complex(cos[..., 0::2].float(), sin[..., 1::2].float())


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """x [B, S, H, Dh] fp32, freqs [1, S, 1, Dh / 2] complex64 -> x with each pair (x[2i], x[2i+1])
    rotated: (x[2i] cos - x[2i+1] sin, x[2i] sin + x[2i+1] cos), a new contiguous tensor."""
    # view_as_complex needs the pair dim innermost and contiguous
    xc = torch.view_as_complex(x.contiguous().unflatten(-1, (-1, 2)))
    return torch.view_as_real(xc * freqs).flatten(-2)


def wan_attention(
    attn: nn.Module, x: torch.Tensor, context: torch.Tensor | None, freqs: torch.Tensor | None
) -> torch.Tensor:
    """One WanAttention layer: x [B, S, D] (queries), context [B, L, D] (keys and values; None: x
    itself, self-attention), freqs the rotary embedding (``rope_as_complex``; None: none, as on
    cross-attention) -> [B, S, D]. Check ``supports(attn, x)`` first."""
    kv = x if context is None else context
    q = rms_norm(attn.to_q(x), attn.norm_q).unflatten(2, (attn.heads, -1))  # [B, S, H, Dh]
    k = rms_norm(attn.to_k(kv), attn.norm_k).unflatten(2, (attn.heads, -1))  # [B, L, H, Dh]
    v = attn.to_v(kv).unflatten(2, (attn.heads, -1))
    if freqs is not None:
        q, k = apply_rope(q, freqs), apply_rope(k, freqs)
    # SDPA takes [B, H, S, Dh]: the transposes are views, as in diffusers' native backend
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    o = o.transpose(1, 2).flatten(2, 3)  # [B, S, D]
    return attn.to_out[1](attn.to_out[0](o))  # projection, dropout
