"""Model configs that must import without torch (the CLI builds its --help from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TinyPixelConfig"]


@dataclass
class TinyPixelConfig:
    num_layers: int = field(default=4, metadata={"help": "transformer blocks"})
    num_heads: int = field(default=4, metadata={"help": "attention heads"})
    head_dim: int = field(default=32, metadata={"help": "channels per head (model width = heads x head_dim)"})
    ffn_dim: int = field(default=256, metadata={"help": "feed-forward hidden width"})
    text_dim: int = field(default=64, metadata={"help": "width of the byte-level prompt embedding"})
    freq_dim: int = field(default=256, metadata={"help": "sinusoidal timestep embedding width"})
    patch: int = field(default=4, metadata={"help": "spatial patch size in pixels (patch (1, p, p))"})
    concat_first_frame: bool = field(
        default=True, metadata={"help": "also feed the first frame on extra channels to every frame"}
    )
    max_prompt_bytes: int = field(
        default=128,
        metadata={"help": "prompts are truncated to this many bytes (the first hold task and size)"},
    )

    def validate(self) -> None:
        for name in ("num_layers", "num_heads", "head_dim", "ffn_dim", "text_dim", "freq_dim", "patch"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.tiny.{name} must be >= 1, got {getattr(self, name)}")
