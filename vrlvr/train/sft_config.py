"""The SFT experiment config: dataclasses with help text (``vrlvr sft --help`` lists every key).

Load with ``load_config(SFTConfig, "configs/maze-tiny-sft.yaml", ["optim.lr=1e-3"])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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
    deepen_to: int = field(
        default=0,
        metadata={
            "help": "tiny-pixel from model.path: grow the checkpoint to this many blocks, new ones "
            "copies of their predecessor with zeroed outputs (starts as the checkpoint's function; "
            "0 = keep its depth)"
        },
    )
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
    options: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "difficulty options passed to the task's generator, for training and held-out puzzles "
            "alike (e.g. sokoban {boxes: 1, max_moves: 8}, flowfree {colours: 7}, maze "
            "{distribution: classic}); recorded in the checkpoint, so `vrlvr eval` draws the same kind"
        },
    )
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
    # 48: small enough that the default 7x7 mazes keep most of their distinct puzzles for training
    n: int = field(default=48, metadata={"help": "distinct held-out puzzles (split evenly over data.sizes)"})


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
        o = self.optim
        at_least_one = {
            "optim.steps": o.steps,
            "optim.batch_size": o.batch_size,
            "keep_checkpoints": self.keep_checkpoints,
            "checkpoint_every": self.checkpoint_every,
            "log_every": self.log_every,
            "heldout.n": self.heldout.n,
            "eval.n": self.eval.n,
            "eval.batch_size": self.eval.batch_size,
            "sampling.steps": self.sampling.steps,
            "data.cell_px": self.data.cell_px if self.data.cell_px is not None else 1,
            "data.height": self.data.height if self.data.height is not None else 1,
            "data.width": self.data.width if self.data.width is not None else 1,
        }
        for key, value in at_least_one.items():
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        at_least_zero = {
            "optim.warmup_steps": o.warmup_steps,
            "optim.weight_decay": o.weight_decay,
            "optim.grad_clip": o.grad_clip,
            "eval.every": self.eval.every,
            "max_minutes": self.max_minutes,
            "threads": self.threads,
            "model.lora_rank": self.model.lora_rank,
        }
        for key, value in at_least_zero.items():
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        if not o.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {o.lr}")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1) like [0.9, 0.99], got {o.betas}")
        if not self.sampling.shift > 0:
            raise ValueError(f"sampling.shift must be > 0, got {self.sampling.shift}")
        if any(s < 1 for s in self.data.sizes):
            raise ValueError(f"data.sizes must be positive, got {self.data.sizes}")
        if not self.data.themes:
            raise ValueError("data.themes must list at least one theme")
        from vrlvr.tasks.themes import theme_index

        for t in self.data.themes:
            theme_index(t)  # ValueError naming the valid themes
        if self.eval.n > self.heldout.n:
            raise ValueError(f"eval.n ({self.eval.n}) must be <= heldout.n ({self.heldout.n})")
        if self.model.kind == "wan" and not self.model.path:
            raise ValueError("model.kind is 'wan': set model.path to a local diffusers-format Wan folder")
        if self.model.deepen_to < 0:
            raise ValueError(f"model.deepen_to must be >= 0, got {self.model.deepen_to}")
        if self.model.deepen_to and (self.model.kind != "tiny-pixel" or not self.model.path):
            raise ValueError(
                "model.deepen_to grows a tiny-pixel checkpoint: it needs model.kind tiny-pixel and "
                "model.path (the checkpoint to grow)"
            )
