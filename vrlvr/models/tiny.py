""" "tiny-pixel": a ~1M-parameter WanTransformer3DModel in pixel space, the CPU default.

- Pixels are the latents: uint8 frames -> float in [-1, 1], [B, 3, F, H, W]; no VAE, so the
  "latent" frame 0 is the puzzle frame itself and decoding is exact.
- Patch (1, 4, 4): one token per 4x4 pixel block, i.e. one token per grid cell when cells are
  4 px (a 7x7 maze wall grid renders at 28x28 px -> 49 tokens per frame).
- Besides the TI2V conditioning of the base class (frame 0 clean, timestep 0), the first frame is
  concatenated on channels to every frame (in_channels = 6), so each token sees its own cell of
  the puzzle without having to find it through attention.
- Text: a learned byte-level prompt encoder (bytes -> embedding + position, LayerNorm), offline
  and small; it trains with the transformer.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vrlvr.models.conditioning import apply_condition
from vrlvr.models.configs import TinyPixelConfig
from vrlvr.models.policy import POLICY_FILE, VideoPolicy

__all__ = [
    "TinyPixelConfig",
    "TinyPixelPolicy",
    "ByteTextEncoder",
    "frames_to_pixels",
    "pixels_to_frames",
    "deepen",
]

WEIGHTS_FILE = "model.safetensors"


def frames_to_pixels(frames: np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    """uint8 [B, F, H, W, 3] -> float32 [B, 3, F, H, W] in [-1, 1]."""
    t = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if t.dtype != torch.uint8 or t.ndim != 5 or t.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [B, F, H, W, 3], got {t.dtype} {tuple(t.shape)}")
    return (t.to(device).permute(0, 4, 1, 2, 3).float() / 127.5) - 1.0


def pixels_to_frames(x: torch.Tensor) -> np.ndarray:
    """float [B, 3, F, H, W] in [-1, 1] -> uint8 [B, F, H, W, 3] (exact inverse on uint8 values)."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


class ByteTextEncoder(nn.Module):
    """Prompt -> [L, text_dim] from its UTF-8 bytes: byte embedding + learned position, LayerNorm.
    Padding positions (beyond a prompt's length, up to the batch's longest) are exact zeros."""

    def __init__(self, dim: int, max_bytes: int):
        super().__init__()
        self.max_bytes = max_bytes
        self.byte = nn.Embedding(256, dim)
        self.pos = nn.Parameter(torch.randn(max_bytes, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(self, prompts: list[str]) -> torch.Tensor:
        ids = [list(p.encode("utf-8"))[: self.max_bytes] or [0] for p in prompts]
        L = max(len(i) for i in ids)
        # built on the CPU, moved once (not one small copy per prompt)
        tok = torch.tensor([seq + [0] * (L - len(seq)) for seq in ids], dtype=torch.long)  # [B, L]
        mask = torch.tensor([[1.0] * len(seq) + [0.0] * (L - len(seq)) for seq in ids])[..., None]
        dev = self.pos.device
        tok, mask = tok.to(dev), mask.to(dev)
        return self.norm(self.byte(tok) + self.pos[:L]) * mask  # [B, L, text_dim]


class TinyPixelPolicy(VideoPolicy):
    kind = "tiny-pixel"

    def __init__(self, config: TinyPixelConfig | None = None):
        super().__init__()
        from diffusers import WanTransformer3DModel

        cfg = config or TinyPixelConfig()
        cfg.validate()
        self.config = cfg
        self.transformer = WanTransformer3DModel(
            patch_size=(1, cfg.patch, cfg.patch),
            num_attention_heads=cfg.num_heads,
            attention_head_dim=cfg.head_dim,
            in_channels=6 if cfg.concat_first_frame else 3,
            out_channels=3,
            text_dim=cfg.text_dim,
            freq_dim=cfg.freq_dim,
            ffn_dim=cfg.ffn_dim,
            num_layers=cfg.num_layers,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=1024,
        )
        self.text_encoder = ByteTextEncoder(cfg.text_dim, cfg.max_prompt_bytes)

    # --- codecs --------------------------------------------------------------------------
    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        p = self.config.patch
        if height % p or width % p:
            raise ValueError(f"tiny-pixel needs frame sides divisible by the patch {p}, got {height}x{width}")
        return 3, num_frames, height, width

    def encode(self, frames) -> torch.Tensor:
        return frames_to_pixels(frames, self.device)  # [B, 3, F, H, W]

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        return pixels_to_frames(latents)

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        return self.text_encoder(list(prompts))

    def transformer_input(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = apply_condition(x, cond)  # [B, 3, f, H, W]
        if self.config.concat_first_frame:
            x = torch.cat([x, cond.to(x.dtype).expand_as(x)], dim=1)  # [B, 6, f, H, W]
        return x

    # --- checkpoints ---------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """policy.json + model.safetensors (the base weights, 4 MB: a tiny checkpoint is
        self-contained) + with an adapter, pytorch_lora_weights.safetensors (diffusers LoRA format)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": self.kind,
            "config": dataclasses.asdict(self.config),
            "lora": self.lora,
            **(extra or {}),
        }
        (path / POLICY_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.base_state_dict().items()}
        save_file(state, str(path / WEIGHTS_FILE))
        os.chmod(path / WEIGHTS_FILE, 0o644)  # safetensors writes 0600; checkpoints ship and are shared
        if self.lora:
            self.save_lora(path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> TinyPixelPolicy:
        path = Path(path)
        meta = json.loads((path / POLICY_FILE).read_text())
        policy = cls(TinyPixelConfig(**meta["config"]))
        if not (path / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"tiny-pixel checkpoint {path} has no {WEIGHTS_FILE}")
        state = {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
        try:
            policy.load_state_dict(state)
        except RuntimeError as exc:  # shape or key mismatch: name the file, not a torch traceback
            raise ValueError(f"{path / WEIGHTS_FILE} does not fit its policy.json config: {exc}") from None
        if meta.get("lora"):
            policy.load_lora(path, meta["lora"])
        return policy.to(device)


def _silence(block: nn.Module) -> None:
    """Zero the three residual writes of a WanTransformerBlock (self-attention, cross-attention and
    feed-forward output projections): the block then returns its input exactly."""
    for linear in (block.attn1.to_out[0], block.attn2.to_out[0], block.ffn.net[2]):
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)


def deepen(policy: TinyPixelPolicy, num_layers: int) -> TinyPixelPolicy:
    """A deeper copy of ``policy`` that computes exactly the same function (block expansion, as in
    LLaMA Pro): ``num_layers - L`` new blocks are spread evenly between the L old ones, each a copy
    of the block before it with its residual output projections zeroed. Gradients reach the zeroed
    projections at once (their inputs are the copied block's activations), so training grows the
    new blocks from the checkpoint's function instead of from noise.

    Used to test whether a checkpoint that stopped improving lacks depth: SFT continues the deeper
    model (``vrlvr sft model.path=CKPT model.deepen_to=N``). Full-weight tiny-pixel policies only."""
    if not isinstance(policy, TinyPixelPolicy):
        raise ValueError(f"deepen works on tiny-pixel policies, got {type(policy).__name__}")
    if policy.lora:
        raise ValueError("deepen needs a policy without a LoRA adapter (merge or drop it first)")
    old = policy.config.num_layers
    if num_layers <= old:
        raise ValueError(f"deepen: num_layers ({num_layers}) must exceed the policy's {old} blocks")
    cfg = dataclasses.replace(policy.config, num_layers=num_layers)
    grown = TinyPixelPolicy(cfg).to(policy.device)
    # everything but the blocks is shared verbatim (embeddings, text encoder, output head)
    state = {k: v for k, v in policy.state_dict().items() if not k.startswith("transformer.blocks.")}
    missing, unexpected = grown.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("transformer.blocks.")]
    if missing or unexpected:  # a layout change: never grow a model that silently drops weights
        raise RuntimeError(
            "deepen: the checkpoint and the grown model disagree outside the blocks: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    blocks: list[nn.Module] = []
    extra = num_layers - old
    for i, block in enumerate(policy.transformer.blocks):
        blocks.append(copy.deepcopy(block))
        # old block i is followed by floor((i+1) e / L) - floor(i e / L) new ones: e spread evenly
        for _ in range((i + 1) * extra // old - i * extra // old):
            new = copy.deepcopy(block)
            _silence(new)
            blocks.append(new)
    grown.transformer.blocks = nn.ModuleList(blocks)
    return grown.train(policy.training)
