""" "wan": a local diffusers-format Wan folder (Wan2.1-T2V-1.3B, Wan2.2-TI2V-5B, ...).

The folder is what ``WanPipeline.save_pretrained`` writes (and what the hub repos
``Wan-AI/Wan2.x-...-Diffusers`` hold): ``transformer/`` (WanTransformer3DModel), ``vae/``
(AutoencoderKLWan), ``text_encoder/`` (UMT5EncoderModel) and ``tokenizer/``. Everything loads with
``local_files_only=True``: no hub access at run time.

- Latents are the VAE's normalised latents ``(z - latents_mean) / latents_std`` (as the Wan
  pipelines do); the encoder is used in "argmax" mode (the posterior mode). A causal Wan VAE maps
  the first frame alone to exactly latent frame 0, which is the TI2V condition.
- Prompts go through the UMT5 encoder once per distinct prompt and are cached (the encoder is
  frozen); embeddings are trimmed to their token length and zero-padded to
  ``max_sequence_length`` (512 for Wan), exactly as the Wan pipelines do.
- dtype: bf16 for the transformer and text encoder on GPUs, the VAE in float32; float32 on CPUs.
- LoRA through peft via diffusers' adapter API (``transformer.add_adapter(LoraConfig(...))``),
  saved in the diffusers LoRA format (``pytorch_lora_weights.safetensors``, keys
  ``transformer.*``), which ``WanPipeline.load_lora_weights`` reads.

``build_tiny_wan_folder`` writes a tiny random Wan pipeline, built from configs entirely offline
(tokenizer included), for tests and benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vrlvr.models.policy import LORA_WEIGHTS, POLICY_FILE, VideoPolicy

__all__ = ["WanPolicy", "build_tiny_wan_folder", "is_wan_folder", "LORA_WEIGHTS"]
_SUBFOLDERS = ("transformer", "vae", "text_encoder", "tokenizer")


def is_wan_folder(path: str | Path) -> bool:
    return (Path(path) / "model_index.json").is_file() and (Path(path) / "transformer").is_dir()


def _hf_dtype(dtype: torch.dtype) -> dict:
    """transformers >= 4.56 takes ``dtype`` (and warns on ``torch_dtype``); older ones ``torch_dtype``."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class WanPolicy(VideoPolicy):
    kind = "wan"

    def __init__(
        self, transformer, vae, text_encoder, tokenizer, base: str | Path, max_sequence_length: int = 512
    ):
        super().__init__()
        self.transformer = transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.base = str(Path(base).resolve())
        self.max_sequence_length = int(max_sequence_length)
        self.lora: dict | None = None
        self._prompt_cache: dict[str, torch.Tensor] = {}
        for m in (self.vae, self.text_encoder):
            m.requires_grad_(False).eval()
        zc = vae.config.z_dim
        self.register_buffer(
            "latents_mean", torch.tensor(vae.config.latents_mean).view(1, zc, 1, 1, 1), False
        )
        self.register_buffer("latents_std", torch.tensor(vae.config.latents_std).view(1, zc, 1, 1, 1), False)
        self.scale_t = int(getattr(vae.config, "scale_factor_temporal", None) or 4)
        self.scale_s = int(getattr(vae.config, "scale_factor_spatial", None) or 8)

    def train(self, mode: bool = True) -> WanPolicy:
        """Only the transformer trains: the frozen VAE and text encoder stay in eval mode (UMT5's
        dropout would otherwise make the cached prompt embeddings random)."""
        super().train(mode)
        self.vae.eval()
        self.text_encoder.eval()
        return self

    # --- loading -------------------------------------------------------------------------
    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        max_sequence_length: int = 512,
    ) -> WanPolicy:
        """Load the four components of a local diffusers-format Wan folder (no downloads)."""
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        folder = Path(folder)
        missing = [s for s in _SUBFOLDERS if not (folder / s).is_dir()]
        if not folder.is_dir() or missing:
            raise FileNotFoundError(
                f"{folder} is not a diffusers-format Wan folder "
                f"(missing: {', '.join(missing) or 'the folder'}); "
                "expected transformer/, vae/, text_encoder/, tokenizer/ as WanPipeline.save_pretrained writes"
            )
        device = torch.device(device)
        dtype = dtype or _default_dtype(device)
        kw = {"local_files_only": True}
        transformer = WanTransformer3DModel.from_pretrained(
            folder, subfolder="transformer", torch_dtype=dtype, **kw
        )
        vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32, **kw)
        text_encoder = UMT5EncoderModel.from_pretrained(folder / "text_encoder", **_hf_dtype(dtype), **kw)
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", **kw)
        policy = cls(transformer, vae, text_encoder, tokenizer, folder, max_sequence_length)
        return policy.to(device)

    # --- codecs --------------------------------------------------------------------------
    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        if (num_frames - 1) % self.scale_t:
            raise ValueError(f"Wan needs num_frames = {self.scale_t}k + 1, got {num_frames}")
        step = self.scale_s * self.patch_size[1]
        if height % step or width % step:
            raise ValueError(f"Wan needs height and width divisible by {step}, got {height}x{width}")
        f = (num_frames - 1) // self.scale_t + 1
        return self.vae.config.z_dim, f, height // self.scale_s, width // self.scale_s

    @torch.no_grad()
    def encode(self, frames) -> torch.Tensor:
        """uint8 [B, F, H, W, 3] -> normalised latents float32 [B, z, f, h, w]."""
        from vrlvr.models.tiny import frames_to_pixels

        x = frames_to_pixels(frames, self.device)  # [B, 3, F, H, W] in [-1, 1]
        z = self.vae.encode(x).latent_dist.mode()  # [B, z, f, h, w]
        return ((z - self.latents_mean) / self.latents_std).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        from vrlvr.models.tiny import pixels_to_frames

        z = latents.float() * self.latents_std + self.latents_mean
        return pixels_to_frames(self.vae.decode(z).sample)  # [B, F, H, W, 3]

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """[B, max_sequence_length, text_dim]; one encoder call for the prompts not yet cached."""
        new = sorted({p for p in prompts if p not in self._prompt_cache})
        if new:
            tok = self.tokenizer(
                new,
                padding="max_length",
                max_length=self.max_sequence_length,
                truncation=True,
                add_special_tokens=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            dev = self.text_encoder.device
            hidden = self.text_encoder(tok.input_ids.to(dev), tok.attention_mask.to(dev)).last_hidden_state
            for p, h, n in zip(new, hidden, tok.attention_mask.sum(1).tolist()):
                self._prompt_cache[p] = h[: int(n)].detach()  # [L_p, D]
        L = self.max_sequence_length
        rows = [self._prompt_cache[p] for p in prompts]
        return torch.stack([torch.cat([r, r.new_zeros(L - len(r), r.shape[1])]) for r in rows])

    # --- checkpoints ---------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """LoRA: the adapter in the diffusers LoRA format; full fine-tune: transformer/."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": self.kind,
            "base": self.base,
            "lora": self.lora,
            "max_sequence_length": self.max_sequence_length,
            **(extra or {}),
        }
        if self.lora:
            self.save_lora(path)
        else:
            self.transformer.save_pretrained(path / "transformer")
        (path / POLICY_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
        path = Path(path)
        if is_wan_folder(path) and not (path / POLICY_FILE).is_file():
            return cls.from_folder(path, device, dtype)
        meta = json.loads((path / POLICY_FILE).read_text())
        policy = cls.from_folder(meta["base"], device, dtype, meta.get("max_sequence_length", 512))
        if meta.get("lora"):
            policy.load_lora(path, meta["lora"])
        else:
            from diffusers import WanTransformer3DModel

            tr = WanTransformer3DModel.from_pretrained(
                path / "transformer", local_files_only=True, torch_dtype=policy.dtype
            )
            policy.transformer = tr.to(policy.device)
        return policy


def build_tiny_wan_folder(path: str | Path, seed: int = 0, z_dim: int = 4, text_dim: int = 32) -> Path:
    """Write a tiny random Wan pipeline (WanPipeline.save_pretrained layout) to ``path``, offline.

    transformer: 2 layers, 2 heads x 12, patch (1, 2, 2); VAE: base_dim 3, z_dim 4, 8x spatial and
    4x temporal compression; text encoder: UMT5 with d_model = text_dim, 2 layers; tokenizer: a
    byte-level BPE with no merges (one token per UTF-8 byte, ``</s>`` appended, ``<pad>`` = 0)
    built with ``tokenizers`` and wrapped in ``PreTrainedTokenizerFast``.
    """
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from tokenizers import decoders as tk_decoders
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    specials = ["<pad>", "</s>", "<unk>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(specials + sorted(alphabet))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = tk_decoders.ByteLevel()
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )

    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(vocab),
            d_model=text_dim,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=z_dim,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=z_dim,
        out_channels=z_dim,
        text_dim=text_dim,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    path = Path(path)
    pipe.save_pretrained(path)
    return path
