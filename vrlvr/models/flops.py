"""Analytic FLOPs of one WanTransformer3DModel forward, from its config and the latent shape.

Counts matrix multiplies (2 FLOPs per multiply-add), the terms that dominate at scale:

    per block: self-attention projections 8 N d^2, scores and values 4 N^2 d,
               cross-attention q/o 4 N d^2, k/v over the L text tokens 4 L d^2, scores 4 N L d,
               feed-forward 4 N d f
    once:      patch embedding 2 N c p d, text projection 2 L (t d + d^2),
               time embedding 2 T (e d + d^2 + 6 d^2), output 2 N d c p

N tokens = f/p_t * h/p_h * w/p_w, d model width, f ffn width, c latent channels, p patch volume,
t text width, e sinusoidal width, T embedded timesteps: N given per-token timesteps (diffusers'
TI2V form), f/p_t with vrlvr.models.framewise (one per latent frame, what vrlvr's policies run),
1 given one timestep per video. A training step (forward + backward) is about 3x a forward.
Elementwise work (norms, RoPE, softmax) is ignored. ``tests/test_models_flops.py`` checks every
term but the attention scores against torch's FLOP counter on a small model (the counter does not
see diffusers' attention dispatch on CPU; ``attention_scores`` reports that part separately).
"""

from __future__ import annotations

import math

__all__ = ["wan_forward_flops"]


def wan_forward_flops(
    config, latent_shape: tuple[int, int, int, int], text_len: int, timesteps: str = "token"
) -> dict[str, float]:
    """config: a WanTransformer3DModel config (or a dict with its keys); latent_shape (C, f, h, w);
    timesteps: "token" (per-token, diffusers' forward), "frame" (vrlvr.models.framewise) or "video"."""
    if timesteps not in ("token", "frame", "video"):
        raise ValueError(f"timesteps must be 'token', 'frame' or 'video', got {timesteps!r}")
    g = (lambda k: config[k]) if isinstance(config, dict) else (lambda k: getattr(config, k))
    c, f, h, w = latent_shape
    pt, ph, pw = g("patch_size")
    d = g("num_attention_heads") * g("attention_head_dim")
    ffn, layers, tdim, e = g("ffn_dim"), g("num_layers"), g("text_dim"), g("freq_dim")
    n = (f // pt) * (h // ph) * (w // pw)
    p = pt * ph * pw
    L = text_len
    block = 8 * n * d * d + 4 * n * n * d + 4 * n * d * d + 4 * L * d * d + 4 * n * L * d + 4 * n * d * ffn
    t_tokens = {"token": n, "frame": f // pt, "video": 1}[timesteps]
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
        "time_embedding": float(2 * t_tokens * (e * d + d * d + 6 * d * d)),
        "forward": float(fwd),
        "train_step": 3.0 * fwd,
        "attention_scores": float(scores),
        "attention_share": scores / fwd,
        "log10_forward": math.log10(fwd),
    }
