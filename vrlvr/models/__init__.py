"""Video backbones behind one policy interface, first-frame conditioning, the flow-matching
schedule and sampling.

- ``policy``: ``VideoPolicy`` (the interface trainers use), ``load_policy(folder_or_shipped_name)``
- ``tiny``: "tiny-pixel", a ~1M-parameter WanTransformer3DModel in pixel space (CPU default)
- ``wan``: a local diffusers-format Wan folder (+ LoRA), ``build_tiny_wan_folder`` for tests
- ``conditioning``: Wan2.2-TI2V first-frame conditioning (clean frame 0, timestep 0)
- ``framewise``: the Wan transformer's forward with its time path per latent frame, not per token
  (the same function as diffusers' given per-token timesteps, ~1/3 less time on the tiny policy)
- ``attention``: Wan attention (RMSNorm of q and k, rotary embedding) in fewer passes, for fp32
- ``schedule``: shifted sigmas equal to diffusers' FlowMatchEulerDiscreteScheduler
- ``sampling``: batched Euler ODE sampling, step by step or ``generate_videos``
- ``lora_fold``: ``FoldedLoRA``, inference with the adapter folded into the base weights;
  ``fold_outside``, folded on the sampling steps outside an SDE window
- ``lora_forward``: peft's adapted forward with the adapter's product accumulated by one GEMM
- ``flops``: analytic FLOPs of a WanTransformer3DModel forward

Names are imported lazily (``from vrlvr.models import load_policy`` imports torch then, not before),
so command-line help stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VideoPolicy": "policy",
    "load_policy": "policy",
    "resolve_checkpoint": "policy",
    "TinyPixelConfig": "configs",
    "TinyPixelPolicy": "tiny",
    "WanPolicy": "wan",
    "build_tiny_wan_folder": "wan",
    "apply_condition": "conditioning",
    "token_timesteps": "conditioning",
    "frame_timesteps": "conditioning",
    "framewise_forward": "framewise",
    "wan_attention": "attention",
    "flow_sigmas": "schedule",
    "shift_sigmas": "schedule",
    "sample_train_sigmas": "schedule",
    "initial_latents": "sampling",
    "euler_step": "sampling",
    "sample_latents": "sampling",
    "generate_videos": "sampling",
    "wan_forward_flops": "flops",
    "FoldedLoRA": "lora_fold",
    "fold_outside": "lora_fold",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vrlvr.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vrlvr.models' has no attribute {name!r}")
