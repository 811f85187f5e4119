"""The SDE-GRPO experiment config: dataclasses with help text (``vrlvr-train --help`` lists every key).

Load with ``load_config(GRPOConfig, "configs/maze-tiny.yaml", ["grpo.beta=0"])``. The sections
that mean the same as in SFT reuse the SFT's classes (held-out set, evaluation) or extend them
(data: a list of tasks; sampling: the SDE's noise level and mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vrlvr.models.shipped import shipped_names
from vrlvr.train.sft_config import DataConfig, EvalConfig, HeldoutConfig, SamplingConfig

__all__ = [
    "GRPOConfig",
    "RLModelConfig",
    "LoraSettings",
    "RLDataConfig",
    "RLOptimConfig",
    "RLSamplingConfig",
    "GRPOSettings",
    "RewardSettings",
    "RLEvalConfig",
    "FROZEN_ON_RESUME",
]

#: config keys a resumed run may not change: they shape the model, the task or the data, or (the
#: optimizer's settings) live in the restored optimizer and scheduler state, where a new value would
#: be silently ignored. optim.steps, eval.*, max_minutes, checkpointing and logging may change.
FROZEN_ON_RESUME = (
    "seed",
    "model",
    "lora",
    "data",
    "heldout",
    "sampling",
    "grpo",
    "reward",
    "optim.lr",
    "optim.weight_decay",
    "optim.betas",
    "optim.eps",
    "optim.warmup_steps",
    "optim.decay",
    "optim.grad_clip",
)


@dataclass
class RLModelConfig:
    init: str = field(
        default="maze-tiny",
        metadata={
            "help": f"the policy to start from: a shipped name ({shipped_names()}), a run folder (OUT or "
            "OUT/final of `vrlvr sft`/`vrlvr-train`) or a local diffusers-format Wan folder "
            "(Wan2.2-TI2V-5B-Diffusers)"
        },
    )
    max_sequence_length: int = field(default=512, metadata={"help": "wan: prompt tokens (Wan uses 512)"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute transformer blocks in backward (Wan on GPUs: on)"}
    )


@dataclass
class LoraSettings:
    rank: int = field(
        default=8,
        metadata={
            "help": "LoRA rank; 0 = full fine-tune (fp32 master weights; the KL reference is then a "
            "frozen copy of the initial model: twice the weights in memory)"
        },
    )
    alpha: float | None = field(default=None, metadata={"help": "LoRA alpha (default: the rank)"})
    targets: list[str] = field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"],
        metadata={"help": "transformer modules that get adapters (attention and FFN projections)"},
    )


@dataclass
class RLDataConfig(DataConfig):
    task: list[str] | str = field(  # type: ignore[assignment]
        default="maze",
        metadata={
            "help": "task, or a list of tasks for a mixed batch (each sample is scored by its own "
            "task's verifier; puzzle i of a step takes task i mod len)"
        },
    )
    sizes_by_task: dict[str, list[int]] = field(
        default_factory=dict,
        metadata={"help": "per-task puzzle sizes for a mixed batch, e.g. {maze: [7], sokoban: [6]}"},
    )

    options_by_task: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "per-task generator options for a mixed batch, e.g. {sokoban: {boxes: 1}}"},
    )
    pool: int = field(
        default=0,
        metadata={
            "help": "train on the seeds data.seed .. data.seed + pool - 1 only, cycling (0: an endless "
            "stream of new puzzles). A sanity check, not a recipe: can RL raise success on a small "
            "fixed set of puzzles it sees again and again?"
        },
    )

    @property
    def tasks(self) -> list[str]:
        """data.task as a list (one task or several)."""
        return [self.task] if isinstance(self.task, str) else list(self.task)

    def sizes_for(self, task: str) -> list[int]:
        return list(self.sizes_by_task.get(task, self.sizes))

    def options_for(self, task: str) -> dict[str, Any]:
        return dict(self.options_by_task.get(task, self.options))


@dataclass
class RLOptimConfig:
    steps: int = field(default=100, metadata={"help": "GRPO steps (one rollout batch + update each)"})
    lr: float = field(default=1e-4, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata={"help": "AdamW betas"})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    decay: Literal["constant", "cosine"] = field(default="constant", metadata={"help": "after warm-up"})
    grad_clip: float = field(default=1.0, metadata={"help": "max global gradient norm (0 = off)"})


@dataclass
class RLSamplingConfig(SamplingConfig):
    eta: float = field(default=0.7, metadata={"help": "SDE noise level (Flow-GRPO's eta)"})
    mode: Literal["sde", "dance", "cps"] = field(
        default="sde", metadata={"help": "SDE: Flow-GRPO 'sde', DanceGRPO 'dance', or 'cps'"}
    )


@dataclass
class GRPOSettings:
    prompts_per_step: int = field(default=4, metadata={"help": "puzzles per step (B), over all processes"})
    group_size: int = field(default=8, metadata={"help": "rollouts per puzzle (G >= 2)"})
    sde_window: list[int] | None = field(
        default=None,
        metadata={
            "help": "[start, end) of the sampling steps that get noise, log-probs and gradients "
            "(Early-Step Focus); null = the first half, [0, ceil(T/2))"
        },
    )
    clip_range: float = field(default=0.2, metadata={"help": "PPO ratio clip epsilon"})
    adv_clip: float = field(default=5.0, metadata={"help": "advantages are clipped to +-adv_clip"})
    beta: float = field(
        default=0.04,
        metadata={
            "help": "KL weight (KL to the policy with adapters off; the paper's 0.04). 0: the KL stays "
            "out of the loss and is only logged, from the first window step (configs/maze-tiny.yaml; the awm "
            "recipes of configs/flowfree-tiny.yaml and sokoban-tiny.yaml use 5)"
        },
    )
    resample_rounds: int = field(
        default=0,
        metadata={
            "help": "dynamic sampling (DAPO): while fewer than prompts_per_step groups of a step vary in "
            "reward, draw and roll out another prompts_per_step puzzles, up to this many extra rounds "
            "(0: off). Costs rollouts, and every round's rollouts are held until the update (memory); "
            "under a sparse reward most groups otherwise carry no signal"
        },
    )
    shared_start: bool = field(
        default=False,
        metadata={
            "help": "the G rollouts of a puzzle start from the same initial noise (DanceGRPO) and differ "
            "only by the SDE noise of the window: the group's rewards then rank the sampled actions, "
            "whose log-probs are trained, rather than starting points no update can credit"
        },
    )
    noise_block: int = field(
        default=1,
        metadata={
            "help": "SDE noise drawn once per noise_block x noise_block latent pixels (per channel and "
            "frame), spread over the block with the std per-element noise has in that direction; log-probs "
            "and the KL are those of the block coefficients (vrlvr.train.exploration). 1: Flow-GRPO's "
            "per-element noise; data.cell_px on a tiny-pixel model: one draw per puzzle cell (measured: "
            "no gain, README)"
        },
    )
    loss: Literal["ppo", "awm"] = field(
        default="ppo",
        metadata={
            "help": "ppo: Flow-GRPO's clipped ratio of the SDE log-probs of the window steps (the paper's). "
            "awm: advantage-weighted flow matching (Xue et al. 2025): each contributing rollout's final "
            "latent x0 is re-noised at the window steps' sigmas with fresh noise e, x_s = (1 - s) x0 + s e, "
            "and the loss is advantage x |v_theta(x_s) - (e - x0)|^2 (mean over elements): the "
            "pretraining loss weighted by the reward, with clean targets instead of the SDE step's noisy "
            "x_k+1; it also credits the initial noise, which the SDE log-probs cannot. Measured on the "
            "4-block tiny models: better F1 on maze, no gain on flowfree, sokoban comes apart (README). "
            "beta > 0 adds the step KL to the adapters-off model at the same x_s; beta=5 (about a tenth of "
            "a unit-advantage term on the tiny schedule) keeps the frames and, from the 8-block starts, is "
            "the shipped flowfree and sokoban recipe (their only gains above 0)"
        },
    )
    awm_negative: float = field(
        default=1.0,
        metadata={
            "help": "grpo.loss=awm only: weight of the below-average rollouts' term (negative advantages), "
            "in [0, 1]. 1: plain AWM, which pushes v_theta away from failed samples without bound (measured: "
            "frames blur and success collapses on sokoban and on one of two 8-block maze seeds); 0: only "
            "above-average rollouts are regressed on, weighted by their advantage, a loss bounded below "
            "(measured: on that maze seed the frames blurred sooner, README)"
        },
    )
    inner_epochs: int = field(default=1, metadata={"help": "optimisation passes over each rollout batch"})
    micro_batch: int = field(
        default=8, metadata={"help": "samples per forward/backward (bounds memory; rollouts too)"}
    )
    max_nonfinite: int = field(
        default=3, metadata={"help": "consecutive non-finite steps (skipped) before the run stops"}
    )


@dataclass
class RewardSettings:
    kind: Literal["dense", "sparse"] = field(
        default="dense", metadata={"help": "dense: the verifier's reward; sparse: success as 0/1"}
    )
    preset: Literal["default", "paper"] = field(
        default="default",
        metadata={"help": "reward weights: the project's hack-resistant defaults or the paper's"},
    )
    maze: dict = field(default_factory=dict, metadata={"help": "maze reward config overrides"})
    flowfree: dict = field(default_factory=dict, metadata={"help": "flowfree reward config overrides"})
    sokoban: dict = field(default_factory=dict, metadata={"help": "sokoban reward config overrides"})


@dataclass
class RLEvalConfig(EvalConfig):
    n: int = field(
        default=48, metadata={"help": "held-out puzzles per evaluation (<= heldout.n; 0 = no evaluation)"}
    )
    batch_size: int = field(default=48, metadata={"help": "videos generated at once"})
    every: int = field(default=0, metadata={"help": "held-out evaluation every N steps (0 = start and end)"})
    samples_per_puzzle: int = field(
        default=1, metadata={"help": "videos per held-out puzzle (different noise), averaged"}
    )


@dataclass
class GRPOConfig:
    out_dir: str = field(
        default="runs/grpo", metadata={"help": "run folder: metrics.jsonl, checkpoints/, final/"}
    )
    seed: int = field(default=0, metadata={"help": "seed of rollout noise and puzzle order"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if available), cpu or cuda[:i]"})
    threads: int = field(
        default=0, metadata={"help": "torch CPU threads per process (0 = cores / processes on this node)"}
    )
    log_every: int = field(
        default=1, metadata={"help": "with --no-progress, print a summary line every N steps"}
    )
    checkpoint_every: int = field(default=20, metadata={"help": "full checkpoint every N steps"})
    keep_checkpoints: int = field(default=2, metadata={"help": "full checkpoints kept"})
    max_minutes: float = field(
        default=0.0, metadata={"help": "stop (and save) after this wall time (0 = off)"}
    )
    sample_every: int = field(
        default=0, metadata={"help": "write a sample video (generated | truth, MP4) every N steps (0 = off)"}
    )
    model: RLModelConfig = field(default_factory=RLModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: RLDataConfig = field(default_factory=RLDataConfig)
    heldout: HeldoutConfig = field(default_factory=lambda: HeldoutConfig(n=48))
    optim: RLOptimConfig = field(default_factory=RLOptimConfig)
    sampling: RLSamplingConfig = field(default_factory=RLSamplingConfig)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    eval: RLEvalConfig = field(default_factory=RLEvalConfig)

    def window(self) -> tuple[int, int]:
        """[start, end) of the SDE steps (Early-Step Focus)."""
        T = self.sampling.steps
        if self.grpo.sde_window is None:
            return 0, (T + 1) // 2
        start, end = self.grpo.sde_window
        return int(start), int(end)

    def validate(self) -> None:
        d, g, s, o = self.data, self.grpo, self.sampling, self.optim
        if not d.tasks:
            raise ValueError("data.task must name at least one task")
        if len(set(d.tasks)) != len(d.tasks):
            raise ValueError(f"data.task lists a task twice: {d.tasks}")
        for t in d.tasks:
            if not d.sizes_for(t):
                raise ValueError(f"data.sizes (or data.sizes_by_task.{t}) must list at least one size")
        for key in ("sizes_by_task", "options_by_task"):
            unknown = sorted(set(getattr(d, key)) - set(d.tasks))
            if unknown:
                raise ValueError(f"data.{key} names {unknown}, which are not in data.task {d.tasks}")
        if d.dir is not None:
            raise ValueError(
                "data.dir is an SFT setting: vrlvr-train generates its puzzles (data.task, data.sizes, "
                "data.seed); remove data.dir"
            )
        if d.cell_px is None and (d.height is None or d.width is None):
            raise ValueError("data.cell_px is null, so data.height and data.width are required")
        if d.num_frames < 2:
            raise ValueError(f"data.num_frames must be >= 2 (frame 0 is the puzzle), got {d.num_frames}")
        if g.group_size < 2:
            raise ValueError(
                f"grpo.group_size must be >= 2 (advantages are normalised within a group; a group of "
                f"{g.group_size} has no variance), got {g.group_size}"
            )
        if self.data.pool < 0:
            raise ValueError(f"data.pool must be >= 0 (0: an endless stream), got {self.data.pool}")
        if isinstance(g.noise_block, bool) or not isinstance(g.noise_block, int) or g.noise_block < 1:
            raise ValueError(
                f"grpo.noise_block must be an integer >= 1 (1: per-element noise), got {g.noise_block!r}"
            )
        if g.resample_rounds < 0:
            raise ValueError(f"grpo.resample_rounds must be >= 0 (0: off), got {g.resample_rounds}")
        if g.prompts_per_step < 1 or g.micro_batch < 1 or g.inner_epochs < 1:
            raise ValueError("grpo.prompts_per_step, grpo.micro_batch and grpo.inner_epochs must be >= 1")
        if s.steps < 1:
            raise ValueError(f"sampling.steps must be >= 1, got {s.steps}")
        if g.sde_window is not None and len(g.sde_window) != 2:
            raise ValueError(f"grpo.sde_window must be [start, end), got {g.sde_window}")
        start, end = self.window()
        if not 0 <= start < end <= s.steps:
            raise ValueError(
                f"grpo.sde_window [{start}, {end}) must be a non-empty range inside [0, sampling.steps="
                f"{s.steps})"
            )
        if s.mode == "cps" and end == s.steps:
            raise ValueError(
                "grpo.sde_window: with sampling.mode=cps the last step (to sigma 0) has no noise; end the "
                f"window before {s.steps}"
            )
        for key, val in (("sampling.eta", s.eta), ("grpo.clip_range", g.clip_range), ("grpo.beta", g.beta)):
            if val < 0:
                raise ValueError(f"{key} must be >= 0, got {val}")
        if not 0.0 <= g.awm_negative <= 1.0:
            raise ValueError(f"grpo.awm_negative must be in [0, 1], got {g.awm_negative}")
        if g.loss != "awm" and g.awm_negative != 1.0:
            raise ValueError(
                f"grpo.awm_negative weighs grpo.loss=awm's negative advantages; grpo.loss is {g.loss!r}"
            )
        if s.eta == 0:
            raise ValueError("sampling.eta must be > 0: without noise the rollouts of a group are identical")
        if g.adv_clip <= 0:
            raise ValueError(f"grpo.adv_clip must be > 0, got {g.adv_clip}")
        if o.steps < 1:
            raise ValueError(f"optim.steps must be >= 1, got {o.steps}")
        if o.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {o.lr}")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {o.betas}")
        if self.lora.rank < 0:
            raise ValueError(f"lora.rank must be >= 0 (0 = full fine-tune), got {self.lora.rank}")
        if self.keep_checkpoints < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("keep_checkpoints, checkpoint_every and log_every must be >= 1")
        if self.eval.n > self.heldout.n:
            raise ValueError(f"eval.n ({self.eval.n}) must be <= heldout.n ({self.heldout.n})")
        if self.eval.samples_per_puzzle < 1 or self.eval.batch_size < 1:
            raise ValueError("eval.samples_per_puzzle and eval.batch_size must be >= 1")
        if g.max_nonfinite < 1:
            raise ValueError(f"grpo.max_nonfinite must be >= 1, got {g.max_nonfinite}")
        if self.max_minutes < 0 or self.sample_every < 0:
            raise ValueError("max_minutes and sample_every must be >= 0")
