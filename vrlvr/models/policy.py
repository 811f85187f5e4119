"""The policy interface the trainers and samplers use, whatever the backbone.

A ``VideoPolicy`` wraps a diffusers ``WanTransformer3DModel`` plus whatever maps pixels and text
into its input space:

- ``encode(frames)``: uint8 [B, F, H, W, 3] -> latents [B, C, f, h, w] (pixels for tiny-pixel,
  normalised VAE latents for Wan); ``encode_condition(first_frames)``: uint8 [B, H, W, 3] ->
  [B, C, 1, h, w], the clean latent frame 0; ``decode(latents)`` -> uint8 [B, F, H, W, 3].
- ``encode_prompts(prompts)`` -> [B, L, D] prompt embeddings for the transformer's cross-attention.
- ``velocity(x, sigma, prompt_embeds, cond)``: the flow velocity v = noise - x0 at noise level sigma
  [B], with latent frame 0 held to ``cond`` at timestep 0 (vrlvr.models.conditioning); v is zero on
  frame 0, so an Euler or SDE step never moves it.
- ``save(dir)`` / ``load_policy(dir)``: a checkpoint folder with ``policy.json`` naming the kind.

``load_policy`` also takes the name of a checkpoint shipped inside the package
(vrlvr/checkpoints/<name>/; the names and the command that made each: ``vrlvr.models.shipped``).
"""

from __future__ import annotations

import abc
import contextlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vrlvr.models import framewise
from vrlvr.models.conditioning import apply_condition, frame_timesteps, token_timesteps
from vrlvr.models.shipped import SHIPPED_DIR, SHIPPED_RECIPES, shipped_names

__all__ = [
    "VideoPolicy",
    "load_policy",
    "resolve_checkpoint",
    "SHIPPED_DIR",
    "SHIPPED_RECIPES",
    "DEFAULT_LORA_TARGETS",
    "LORA_WEIGHTS",
]

POLICY_FILE = "policy.json"
#: the adapter file, in the diffusers LoRA format (keys ``transformer.*``; ``load_lora_weights`` reads it)
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
#: attention and FFN projections of every WanTransformer3DModel block
DEFAULT_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]


class VideoPolicy(nn.Module, abc.ABC):
    """Base class: subclasses set ``kind`` and ``transformer`` and implement the codecs."""

    kind: str = ""
    transformer: nn.Module
    #: {"rank", "alpha", "target_modules"} once ``add_lora`` ran, else None
    lora: dict | None = None
    #: run the transformer under torch.autocast in this dtype (bf16 on GPUs over fp32 master weights)
    autocast_dtype: torch.dtype | None = None

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(self.transformer.config.patch_size)

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    # --- codecs (subclasses) -------------------------------------------------------------
    @abc.abstractmethod
    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, f, h, w) of the latents of a num_frames x height x width video."""
        ...

    @abc.abstractmethod
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor: ...

    def encode_condition(self, first_frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> [B, C, 1, h, w]: the first frame encoded alone (a causal video VAE
        maps it to exactly latent frame 0)."""
        f = first_frames if isinstance(first_frames, torch.Tensor) else np.asarray(first_frames)
        return self.encode(f[:, None])

    @abc.abstractmethod
    def decode(self, latents: torch.Tensor) -> np.ndarray: ...

    @abc.abstractmethod
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor: ...

    @abc.abstractmethod
    def save(self, path: str | Path) -> None: ...

    # --- the model call ------------------------------------------------------------------
    def transformer_input(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """What the transformer sees; the base holds frame 0 to the condition (TI2V)."""
        return apply_condition(x, cond)

    def velocity(
        self, x: torch.Tensor, sigma: torch.Tensor, prompt_embeds: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """x [B, C, f, h, w], sigma [B] in [0, 1], prompt_embeds [B, L, D], cond [B, C, 1, h, w]
        -> v [B, C, f, h, w] (float32; zero on frame 0)."""
        dtype = self.dtype
        inp = self.transformer_input(x, cond).to(dtype)  # [B, C', f, h, w]
        amp = (
            torch.autocast(x.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with amp:
            if framewise.supports(self.transformer):  # the time path per frame, not per token
                t = frame_timesteps(sigma.to(x.device), x.shape, self.patch_size)  # [B, F]
                v = framewise.framewise_forward(self.transformer, inp, t, prompt_embeds.to(dtype))
            else:
                v = self.transformer(
                    hidden_states=inp,
                    timestep=token_timesteps(sigma.to(x.device), x.shape, self.patch_size),  # [B, seq_len]
                    encoder_hidden_states=prompt_embeds.to(dtype),
                    return_dict=False,
                )[0]
        v = v.float()  # [B, C, f, h, w]; fp32 from here on (log-probs, losses)
        return torch.cat([torch.zeros_like(v[:, :, :1]), v[:, :, 1:]], dim=2)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # --- LoRA adapters (every kind: the transformer is always a diffusers WanTransformer3DModel) ---
    def add_lora(
        self, rank: int, alpha: float | None = None, target_modules: list[str] | None = None
    ) -> None:
        """Freeze the whole policy and add a peft LoRA adapter to the transformer's projections.

        B is initialised to zero, so the adapted policy starts equal to the base. Adapter weights
        are float32 even over a bf16 base (the optimizer updates them, and bf16 would round small
        updates away)."""
        from peft import LoraConfig

        from vrlvr.models.lora_forward import fuse_lora_forward

        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        if self.lora:
            raise ValueError("this policy already has a LoRA adapter")
        targets = list(target_modules or DEFAULT_LORA_TARGETS)
        names = [n for n, _ in self.transformer.named_modules()]
        unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if unmatched:
            raise ValueError(
                f"LoRA targets {unmatched} match no module of the transformer; "
                f"valid examples: {', '.join(DEFAULT_LORA_TARGETS)}"
            )
        self.requires_grad_(False)
        alpha = float(alpha) if alpha else float(rank)
        cfg = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=True, target_modules=targets)
        self.transformer.add_adapter(cfg)
        # the adapted forward with the adapter's product accumulated into the base GEMM (same
        # function, fewer passes over the activation; vrlvr.models.lora_forward)
        fuse_lora_forward(self.transformer)
        for n, p in self.transformer.named_parameters():
            if "lora_" in n:
                p.data = p.data.float()
                p.requires_grad_(True)
        self.lora = {"rank": int(rank), "alpha": alpha, "target_modules": targets}

    @contextlib.contextmanager
    def adapters_disabled(self):
        """The reference policy of GRPO's KL term: the same transformer with its LoRA adapters off
        (no second copy of the model)."""
        if not self.lora:
            raise ValueError("this policy has no LoRA adapter to disable")
        self.transformer.disable_adapters()
        try:
            yield self
        finally:
            self.transformer.enable_adapters()

    def folded_lora(self):
        """A reusable no-grad context in which the transformer runs with its adapter folded into the
        base weights (W + s B A: one matmul per projection instead of three): the same function,
        faster. A no-op where folding would change it (bf16 base, DoRA) or there is no adapter.
        Build it after the last optimizer step; see vrlvr.models.lora_fold."""
        from vrlvr.models.lora_fold import FoldedLoRA

        return FoldedLoRA(self.transformer, compute_dtype=self.autocast_dtype or torch.float32)

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter weights, peft's keys (``blocks.0.attn1.to_q.lora_A.weight``, ...)."""
        from peft.utils import get_peft_model_state_dict

        if not self.lora:
            raise ValueError("this policy has no LoRA adapter")
        return get_peft_model_state_dict(self.transformer)

    def merge_lora(self) -> None:
        """Fold the adapter into the base weights (W += alpha / rank * B A) and remove it."""
        if not self.lora:
            raise ValueError("this policy has no LoRA adapter to merge")
        self.transformer.fuse_lora()
        self.transformer.unload_lora()
        self.lora = None

    def base_state_dict(self) -> dict[str, torch.Tensor]:
        """The policy's weights without adapters, under the keys of the plain model (peft renames a
        wrapped layer's weight to ``...base_layer.weight``)."""
        out = {}
        for k, v in self.state_dict().items():
            if "lora_" in k:
                continue
            out[k.replace(".base_layer.", ".")] = v
        return out

    def save_lora(self, path: str | Path) -> None:
        """Write the adapter as ``pytorch_lora_weights.safetensors`` in the diffusers LoRA format,
        with its metadata (rank, alpha, targets) so ``load_lora_weights`` scales it as trained."""
        from diffusers import WanPipeline

        state = {k: v.detach().float().cpu().contiguous() for k, v in self.lora_state_dict().items()}
        WanPipeline.save_lora_weights(
            Path(path),
            transformer_lora_layers=state,
            transformer_lora_adapter_metadata=self.transformer.peft_config["default"].to_dict(),
        )

    def load_lora(self, path: str | Path, lora: dict) -> None:
        """Add the adapter described by ``lora`` (policy.json's record) and load its weights from
        ``path / pytorch_lora_weights.safetensors``; a mismatch is an error, never a silent skip."""
        self.add_lora(lora["rank"], lora["alpha"], lora["target_modules"])
        self.set_lora_weights(path)

    def set_lora_weights(self, path: str | Path) -> None:
        """Load ``path / pytorch_lora_weights.safetensors`` into the existing adapter."""
        from diffusers import WanPipeline
        from peft.utils import set_peft_model_state_dict

        path = Path(path)
        if not (path / LORA_WEIGHTS).is_file():
            raise FileNotFoundError(f"{path} records a LoRA adapter but has no {LORA_WEIGHTS}")
        state = WanPipeline.lora_state_dict(str(path), weight_name=LORA_WEIGHTS, local_files_only=True)
        state = state[0] if isinstance(state, tuple) else state
        state = {k.removeprefix("transformer."): v for k, v in state.items()}
        res = set_peft_model_state_dict(self.transformer, state)
        if getattr(res, "unexpected_keys", None):
            raise ValueError(f"{path}: LoRA weights do not fit the base model: {res.unexpected_keys[:5]}")
        missing = [k for k in getattr(res, "missing_keys", None) or [] if "lora_" in k]
        if missing:
            raise ValueError(f"{path}: LoRA weights miss {len(missing)} adapter tensors: {missing[:5]}")


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """A checkpoint folder, or the name of a shipped one; a clear error otherwise."""
    p = Path(path_or_name)
    if p.is_dir():
        if (p / "model_index.json").is_file() and not (p / POLICY_FILE).is_file():
            return p  # a diffusers-format Wan folder, used as is
        if not (p / POLICY_FILE).is_file() and (p / "final" / POLICY_FILE).is_file():
            return p / "final"  # a `vrlvr sft` run folder
        if not (p / POLICY_FILE).is_file():
            raise FileNotFoundError(
                f"checkpoint folder {p} has no {POLICY_FILE}: give the folder a `vrlvr sft` run writes "
                "(OUT/final or OUT/checkpoints/step_N) or a shipped name"
            )
        return p
    name = str(path_or_name)
    if name in SHIPPED_RECIPES:
        shipped = SHIPPED_DIR / name
        if not (shipped / POLICY_FILE).is_file():
            raise FileNotFoundError(
                f"shipped checkpoint {name!r} is not in this installation ({shipped}); make it with "
                f"`{SHIPPED_RECIPES[name]}` and copy OUT/final to {shipped}"
            )
        return shipped
    raise FileNotFoundError(
        f"checkpoint {name!r} is neither a folder nor a shipped checkpoint ({shipped_names()})"
    )


def load_policy(path_or_name: str | Path, device: str | torch.device = "cpu", **kwargs) -> VideoPolicy:
    """Load any policy checkpoint folder (or shipped name) by the kind in its policy.json."""
    folder = resolve_checkpoint(path_or_name)
    meta = (
        json.loads((folder / POLICY_FILE).read_text())
        if (folder / POLICY_FILE).is_file()
        else {"kind": "wan"}
    )
    kind = meta.get("kind")
    if kind == "tiny-pixel":
        from vrlvr.models.tiny import TinyPixelPolicy

        return TinyPixelPolicy.load(folder, device=device)
    if kind == "wan":
        from vrlvr.models.wan import WanPolicy

        return WanPolicy.load(folder, device=device, **kwargs)
    raise ValueError(f"{folder / POLICY_FILE}: unknown policy kind {kind!r} (expected 'tiny-pixel' or 'wan')")
