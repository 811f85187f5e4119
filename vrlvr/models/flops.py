"""Analytic FLOPs of one WanTransformer3DModel forward, from its config and the latent shape.

Counts matrix multiplies (2 FLOPs per multiply-add), the terms that dominate at scale:

    per block: self-attention projections 8 N d^2, scores and values 4 N^2 d,
               cross-attention q/o 4 N d^2, k/v over the L text tokens 4 L d^2, scores 4 N L d,
               feed-forward 4 N d f
    once:      patch embedding 2 N c p d, text projection 2 L (t d + d^2),
               per-token time embedding (TI2V) 2 N (e d + d^2 + 6 d^2), output 2 N d c p

N tokens = f/p_t * h/p_h * w/p_w, d model width, f ffn width, c latent channels, p patch volume,
t text width, e sinusoidal width. A training step (forward + backward) is about 3x a forward.
Elementwise work (norms, RoPE, softmax) is ignored. ``tests/test_models_flops.py`` checks every
term but the attention scores against torch's FLOP counter on a small model (the counter does not
see diffusers' attention dispatch on CPU; ``attention_scores`` reports that part separately).
"""

from __future__ import annotations

import math

__all__ = ["wan_forward_flops"]


def wan_forward_flops(
    config, latent_shape: tuple[int, int, int, int], text_len: int, per_token_timesteps: bool = True
) -> dict[str, float]:
    """config: a WanTransformer3DModel config (or a dict with its keys); latent_shape (C, f, h, w)."""
    g = (lambda k: config[k]) if isinstance(config, dict) else (lambda k: getattr(config, k))
    c, f, h, w = latent_shape
    pt, ph, pw = g("patch_size")
    d = g("num_attention_heads") * g("attention_head_dim")
    ffn, layers, tdim, e = g("ffn_dim"), g("num_layers"), g("text_dim"), g("freq_dim")
    n = (f // pt) * (h // ph) * (w // pw)
    p = pt * ph * pw
    L = text_len
    block = 8 * n * d * d + 4 * n * n * d + 4 * n * d * d + 4 * L * d * d + 4 * n * L * d + 4 * n * d * ffn
    t_tokens = n if per_token_timesteps else 1
    once = (
        2 * n * g("in_channels") * p * d
        + 2 * L * (tdim * d + d * d)
        + 2 * t_tokens * (e * d + d * d + 6 * d * d)
        + 2 * n * d * g("out_channels") * p
    )
    fwd = layers * block + once
    scores = layers * (4 * n * n * d + 4 * n * L * d)
    return {
        "tokens": n,
        "forward": float(fwd),
        "train_step": 3.0 * fwd,
        "attention_scores": float(scores),
        "attention_share": scores / fwd,
        "log10_forward": math.log10(fwd),
    }
