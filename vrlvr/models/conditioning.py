"""First-frame conditioning as Wan2.2-TI2V does it (diffusers ``WanImageToVideoPipeline`` with
``expand_timesteps=True``).

Latents are [B, C, f, h, w]; latent frame 0 is the clean puzzle frame (the encoding of the first
video frame alone, which a causal video VAE maps to exactly one latent frame). During sampling and
training:

- latent frame 0 is overwritten with the clean condition before every model call
  (``apply_condition``), so it is never noised and never moves;
- its tokens get timestep 0 while every other token gets the current ``sigma * 1000``: diffusers'
  transformer takes per-token timesteps [B, seq_len] (``token_timesteps``), seq_len = f * (h / p_h)
  * (w / p_w) in the transformer's flatten order (frame-major); vrlvr.models.framewise runs it on
  the same timesteps per latent frame, [B, f / p_t] (``frame_timesteps``);
- it is excluded from losses and log-probs (``generated_frames`` / ``frame_mask``).
"""

from __future__ import annotations

import torch

__all__ = ["apply_condition", "frame_timesteps", "token_timesteps", "frame_mask", "generated_frames"]


def apply_condition(x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """x [B, C, f, h, w] with latent frame 0 replaced by cond [B, C, 1, h, w] (out of place)."""
    if cond.ndim != 5 or cond.shape[2] != 1 or cond.shape[:2] != x.shape[:2] or cond.shape[3:] != x.shape[3:]:
        raise ValueError(
            f"condition must be [B, C, 1, h, w] matching latents {tuple(x.shape)}, got {tuple(cond.shape)}"
        )
    return torch.cat([cond.to(x.dtype), x[:, :, 1:]], dim=2)


def frame_mask(num_frames: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[num_frames]: 0 for the condition frame 0, 1 for generated frames (diffusers' first_frame_mask)."""
    m = torch.ones(num_frames, device=device, dtype=dtype)
    m[0] = 0
    return m


def frame_timesteps(
    sigma: torch.Tensor,
    latent_shape: tuple[int, ...],
    patch_size: tuple[int, int, int],
    scale: float = 1000.0,
) -> torch.Tensor:
    """Per-latent-frame timesteps [B, f / p_t]: 0 on the condition frame, sigma[b] * scale elsewhere
    (every token of a frame has its frame's timestep; vrlvr.models.framewise runs the transformer
    on this form).

    sigma: [B] (or a scalar, broadcast); latent_shape: (B, C, f, h, w) or (f, h, w).
    """
    f, h, w = latent_shape[-3:]
    pt, ph, pw = patch_size
    if f % pt or h % ph or w % pw:
        raise ValueError(f"latent (f, h, w) = {(f, h, w)} is not divisible by the patch size {patch_size}")
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if sigma.ndim == 0:
        sigma = sigma[None]
    return sigma[:, None] * scale * frame_mask(f // pt, device=sigma.device)[None, :]  # [B, f / pt]


def token_timesteps(
    sigma: torch.Tensor,
    latent_shape: tuple[int, ...],
    patch_size: tuple[int, int, int],
    scale: float = 1000.0,
) -> torch.Tensor:
    """Per-token timesteps [B, seq_len]: 0 on the condition frame's tokens, sigma[b] * scale elsewhere.

    sigma: [B] (or a scalar, broadcast); latent_shape: (B, C, f, h, w) or (f, h, w).
    """
    _, h, w = latent_shape[-3:]
    per_frame = (h // patch_size[1]) * (w // patch_size[2])
    # each latent frame's tokens are contiguous in the transformer's flatten order
    return frame_timesteps(sigma, latent_shape, patch_size, scale).repeat_interleave(per_frame, dim=1)


def generated_frames(x: torch.Tensor) -> torch.Tensor:
    """The frames a loss or log-prob sees: x [B, C, f, h, w] -> [B, C, f - 1, h, w]."""
    return x[:, :, 1:]
