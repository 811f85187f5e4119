"""The SFT experiment config: dataclasses with help text (``vrlvr sft --help`` lists every key).

Load with ``load_config(SFTConfig, "configs/maze-tiny-sft.yaml", ["optim.lr=1e-3"])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vrlvr.models.configs import TinyPixelConfig

__all__ = [
    "SFTConfig",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "SamplingConfig",
    "EvalConfig",
    "HeldoutConfig",
]


@dataclass
class ModelConfig:
    kind: Literal["tiny-pixel", "wan"] = field(
        default="tiny-pixel",
        metadata={"help": "backbone: 'tiny-pixel' (built from config) or 'wan' (local folder)"},
    )
    path: str | None = field(
        default=None,
        metadata={"help": "wan: the diffusers-format folder; tiny-pixel: optional checkpoint to start from"},
    )
    tiny: TinyPixelConfig = field(default_factory=TinyPixelConfig)
    lora_rank: int = field(default=0, metadata={"help": "wan: LoRA rank (0 = full fine-tune)"})
    lora_alpha: float | None = field(default=None, metadata={"help": "wan: LoRA alpha (default: the rank)"})
    max_sequence_length: int = field(default=512, metadata={"help": "wan: prompt tokens (Wan uses 512)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute blocks in backward"})


@dataclass
class DataConfig:
    task: str = field(
        default="maze", metadata={"help": "maze, flowfree, sokoban, or a 'pkg.module:Class' task"}
    )
    sizes: list[int] = field(
        default_factory=lambda: [7], metadata={"help": "puzzle sizes, one per batch in turn"}
    )
    num_frames: int = field(default=9, metadata={"help": "video frames (Wan: 4k + 1)"})
    cell_px: int | None = field(
        default=4, metadata={"help": "pixels per grid cell (frame = grid); null: use height/width"}
    )
    height: int | None = field(
        default=None, metadata={"help": "frame height when cell_px is null (e.g. 480)"}
    )
    width: int | None = field(default=None, metadata={"help": "frame width when cell_px is null (e.g. 832)"})
    themes: list[int] = field(default_factory=lambda: [0], metadata={"help": "colour themes to train on"})
    seed: int = field(default=0, metadata={"help": "training puzzles come from seeds seed, seed + 1, ..."})
    dir: str | None = field(
        default=None,
        metadata={
            "help": "train on a `vrlvr data` folder's puzzles instead of generating them (re-rendered)"
        },
    )


@dataclass
class HeldoutConfig:
    seed: int = field(
        default=100000, metadata={"help": "held-out puzzles are drawn from seeds seed, seed + 1, ..."}
    )
    n: int = field(default=200, metadata={"help": "distinct held-out puzzles (split evenly over data.sizes)"})


@dataclass
class OptimConfig:
    steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "videos per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99], metadata={"help": "AdamW betas"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps"})
    decay: Literal["constant", "cosine"] = field(default="cosine", metadata={"help": "after warm-up"})
    grad_clip: float = field(default=1.0, metadata={"help": "max global gradient norm (0 = off)"})
    sigma_sampling: Literal["logit_normal", "uniform"] = field(
        default="logit_normal", metadata={"help": "training noise-level density (before the shift)"}
    )


@dataclass
class SamplingConfig:
    steps: int = field(default=10, metadata={"help": "Euler steps when sampling"})
    shift: float = field(default=1.0, metadata={"help": "schedule shift (training sigmas use it too)"})


@dataclass
class EvalConfig:
    every: int = field(default=0, metadata={"help": "evaluate every N steps (0 = only at the end)"})
    n: int = field(default=32, metadata={"help": "held-out puzzles per periodic evaluation (<= heldout.n)"})
    batch_size: int = field(default=32, metadata={"help": "videos generated at once"})


@dataclass
class SFTConfig:
    out_dir: str = field(
        default="runs/sft", metadata={"help": "run folder: metrics.jsonl, checkpoints/, final/"}
    )
    seed: int = field(default=0, metadata={"help": "seed of initialisation and training noise"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if available), cpu or cuda[:i]"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)"})
    log_every: int = field(default=10, metadata={"help": "write metrics every N steps"})
    checkpoint_every: int = field(default=200, metadata={"help": "full checkpoint every N steps"})
    keep_checkpoints: int = field(default=2, metadata={"help": "full checkpoints kept"})
    max_minutes: float = field(
        default=0.0, metadata={"help": "stop (and save) after this wall time (0 = off)"}
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        if not self.data.sizes:
            raise ValueError("data.sizes must list at least one size")
        if self.data.cell_px is None and (self.data.height is None or self.data.width is None):
            raise ValueError("data.cell_px is null, so data.height and data.width are required")
        if self.data.num_frames < 2:
            raise ValueError(
                f"data.num_frames must be >= 2 (frame 0 is the puzzle), got {self.data.num_frames}"
            )
        if self.optim.steps < 1 or self.optim.batch_size < 1:
            raise ValueError("optim.steps and optim.batch_size must be >= 1")
        if self.keep_checkpoints < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("keep_checkpoints, checkpoint_every and log_every must be >= 1")
        if self.eval.n > self.heldout.n:
            raise ValueError(f"eval.n ({self.eval.n}) must be <= heldout.n ({self.heldout.n})")
        if self.model.kind == "wan" and not self.model.path:
            raise ValueError("model.kind is 'wan': set model.path to a local diffusers-format Wan folder")
