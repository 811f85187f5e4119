"""diffusers' WanTransformer3DModel forward with one timestep per latent frame instead of per token.

Given per-token timesteps [B, seq_len] (Wan2.2-TI2V's form, which first-frame conditioning needs:
0 on the condition frame, sigma elsewhere; vrlvr.models.conditioning), diffusers embeds every
token's timestep (sinusoid, two linears, a [B * seq_len, 6 D] projection) and every block adds its
modulation table to a [B, seq_len, 6, D] fp32 tensor before slicing shift, scale and gate out of it.
Here every token of a latent frame has its frame's timestep, so all of that runs on [B, F] frames
(F = f / p_t) and the modulation broadcasts [B, F, 1, D] over the frame's tokens. The arithmetic of
each element is the one diffusers does (norm(x) * (1 + scale) + shift, x + a * gate, in fp32); only
the time embedding's matmuls see F rows instead of seq_len, so results agree to fp32 rounding
(tests/test_models_framewise.py checks outputs and gradients against diffusers' forward). Its
attention layers run vrlvr.models.attention (the same function in fewer passes over the activation)
where that applies, diffusers' processor otherwise.

Why it matters: on the tiny-pixel policy (441 tokens of width 128 per video) the per-token time
path was about 30% of a forward on a CPU; bench/bench_models.py measures both forwards. On a GPU it
saves a transient of B * seq_len * 6 * D fp32 per block (1.9 GiB at Wan2.2-5B's 27,280 tokens).

``supports(transformer)`` says when this applies: a WanTransformer3DModel whose forward and blocks
are diffusers' own classes (peft's LoRA layers live inside the projections, so adapters, folded or
not, work unchanged), no image embedder (Wan I2V-14B's CLIP path) and no hook on the model's own
forward (diffusers' cache or offload hooks, a user's). Otherwise
vrlvr.models.policy calls the transformer itself with per-token timesteps.
"""

from __future__ import annotations

import torch
from torch import nn

from vrlvr.models import attention

__all__ = ["supports", "framewise_forward"]


def supports(transformer: nn.Module) -> bool:
    """Whether ``framewise_forward`` computes ``transformer``'s own function."""
    try:
        from diffusers.models.transformers.transformer_wan import WanTransformer3DModel, WanTransformerBlock
    except ImportError:  # pragma: no cover - diffusers is a dependency
        return False
    return (
        type(transformer) is WanTransformer3DModel
        and getattr(transformer.condition_embedder, "image_embedder", None) is None
        and all(type(b) is WanTransformerBlock for b in transformer.blocks)
        and transformer.scale_shift_table.ndim == 3
        # hooks on the model's own forward (a user's, diffusers' caching or offloading) would not run
        and not transformer._forward_hooks
        and not transformer._forward_pre_hooks
        and getattr(transformer, "_diffusers_hook", None) is None
    )


def _per_frame(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[B, seq_len, D] -> [B, F, seq_len / F, D] (each latent frame's tokens are contiguous)."""
    B, S, D = x.shape
    return x.reshape(B, frames, S // frames, D)


def _attend(
    attn: nn.Module, h: torch.Tensor, context: torch.Tensor | None, rotary_emb, freqs, fast: bool
) -> torch.Tensor:
    """The layer's own forward, or vrlvr.models.attention's fewer-pass one where it computes the same."""
    if fast and attention.supports(attn, h):
        return attention.wan_attention(attn, h, context, freqs)
    return attn(h, context, None, rotary_emb)


def _block(
    block: nn.Module,
    x: torch.Tensor,
    text: torch.Tensor,
    mod: torch.Tensor,
    rotary_emb,
    freqs: torch.Tensor | None = None,
    fast_attention: bool = False,
) -> torch.Tensor:
    """One WanTransformerBlock: x [B, S, D], text [B, L, D], mod [B, F, 6, D] (the frame's time
    projection), rotary_emb diffusers' (cos, sin) and freqs the same as complex (for
    vrlvr.models.attention) -> [B, S, D]. Line for line diffusers' block, the modulation per frame."""
    B, S, D = x.shape
    F = mod.shape[1]
    # [B, F, 6, D] -> six [B, F, 1, D]: broadcast over a frame's S / F tokens
    shift, scale, gate, c_shift, c_scale, c_gate = (block.scale_shift_table.unsqueeze(0) + mod.float()).chunk(
        6, dim=2
    )

    def modulate(h: torch.Tensor, sc: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
        return (_per_frame(h, F) * (1 + sc) + sh).reshape(B, S, D)

    # 1. self-attention (fp32 norm and residual, as diffusers)
    h = modulate(block.norm1(x.float()), scale, shift).type_as(x)
    a = _attend(block.attn1, h, None, rotary_emb, freqs, fast_attention)
    x = (x.float() + (_per_frame(a, F) * gate).reshape(B, S, D)).type_as(x)
    # 2. cross-attention on the prompt
    h = block.norm2(x.float()).type_as(x)
    x = x + _attend(block.attn2, h, text, None, None, fast_attention)
    # 3. feed-forward
    h = modulate(block.norm3(x.float()), c_scale, c_shift).type_as(x)
    ff = block.ffn(h)
    return (x.float() + (_per_frame(ff.float(), F) * c_gate).reshape(B, S, D)).type_as(x)


def framewise_forward(
    transformer: nn.Module,
    hidden_states: torch.Tensor,
    frame_timesteps: torch.Tensor,
    text: torch.Tensor,
    fast_attention: bool = True,
) -> torch.Tensor:
    """hidden_states [B, C, f, h, w], frame_timesteps [B, f / p_t] (vrlvr.models.conditioning.
    frame_timesteps), text [B, L, text_dim] -> the transformer's output [B, C_out, f, h, w]: the
    same as ``transformer(hidden_states, timestep=per_token, encoder_hidden_states=text)`` where
    ``per_token`` repeats each frame's timestep over its tokens. ``fast_attention``: attention
    layers run vrlvr.models.attention where it applies (fp32), else diffusers' processor."""
    B, _, f, hh, ww = hidden_states.shape
    p_t, p_h, p_w = transformer.config.patch_size
    F, H, W = f // p_t, hh // p_h, ww // p_w
    if frame_timesteps.shape != (B, F):
        raise ValueError(f"frame_timesteps must be [B, F] = {[B, F]}, got {list(frame_timesteps.shape)}")
    rotary_emb = transformer.rope(hidden_states)
    # complex once a forward, not once a layer (only vrlvr.models.attention uses it)
    freqs = attention.rope_as_complex(rotary_emb) if fast_attention else None
    x = transformer.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()  # [B, S, D]
    # the time embedding per frame: temb [B, F, D], mod [B, F, 6 D]; text [B, L, D]
    temb, mod, text, _ = transformer.condition_embedder(
        frame_timesteps.flatten(), text, None, timestep_seq_len=F
    )
    mod = mod.unflatten(2, (6, -1))  # [B, F, 6, D]
    checkpointing = torch.is_grad_enabled() and transformer.gradient_checkpointing
    for block in transformer.blocks:
        if checkpointing:
            x = torch.utils.checkpoint.checkpoint(
                _block, block, x, text, mod, rotary_emb, freqs, fast_attention, use_reentrant=False
            )
        else:
            x = _block(block, x, text, mod, rotary_emb, freqs, fast_attention)
    # output norm and projection, modulated per frame: [B, F, 2, D] -> two [B, F, 1, D]
    shift, scale = (transformer.scale_shift_table.unsqueeze(0).to(temb.device) + temb.unsqueeze(2)).chunk(
        2, dim=2
    )
    S, D = x.shape[1:]
    x = (_per_frame(transformer.norm_out(x.float()), F) * (1 + scale) + shift).reshape(B, S, D).type_as(x)
    x = transformer.proj_out(x)  # [B, S, p_t p_h p_w C_out]
    x = x.reshape(B, F, H, W, p_t, p_h, p_w, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)  # [B, C_out, f, h, w]
