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

``load_policy`` also takes the name of a checkpoint shipped inside the package (``maze-tiny``,
``flowfree-tiny``, ``sokoban-tiny``: vrlvr/checkpoints/<name>/).
"""

from __future__ import annotations

import abc
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vrlvr.models.conditioning import apply_condition, token_timesteps

__all__ = ["VideoPolicy", "load_policy", "resolve_checkpoint", "SHIPPED_DIR", "SHIPPED_RECIPES"]

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
#: the command that makes each shipped checkpoint (README: "Checkpoints")
SHIPPED_RECIPES = {
    "maze-tiny": "vrlvr sft --config configs/maze-tiny-sft.yaml",
    "flowfree-tiny": "vrlvr sft --config configs/flowfree-tiny-sft.yaml",
    "sokoban-tiny": "vrlvr sft --config configs/sokoban-tiny-sft.yaml",
}
POLICY_FILE = "policy.json"


class VideoPolicy(nn.Module, abc.ABC):
    """Base class: subclasses set ``kind`` and ``transformer`` and implement the codecs."""

    kind: str = ""
    transformer: nn.Module

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
        t = token_timesteps(sigma.to(x.device), x.shape, self.patch_size)  # [B, seq_len]
        v = self.transformer(
            hidden_states=inp, timestep=t, encoder_hidden_states=prompt_embeds.to(dtype), return_dict=False
        )[0].float()  # [B, C, f, h, w]
        return torch.cat([torch.zeros_like(v[:, :, :1]), v[:, :, 1:]], dim=2)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


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
        f"checkpoint {name!r} is neither a folder nor a shipped checkpoint ({', '.join(SHIPPED_RECIPES)})"
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
