"""Constants shared by every part of the reproduction: held-out puzzles and samples, the smoke
(--quick) and full overrides, the experiments and tasks, table 1's SFT control."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: configs/, results/, docs/, README.md
SAMPLES = 4  # videos per held-out puzzle in the full run (each with its own noise)
PUZZLES, QUICK_PUZZLES = 96, 2  # held-out puzzles every policy is scored on (full run, --quick)
EVAL_SEED = 7  # the noise of the held-out samples (the same draws for every policy: paired)
METRICS = ("success_rate", "loose_success_rate", "precision", "recall", "f1", "mean_reward")
QUICK = [
    "optim.steps=2",
    "grpo.prompts_per_step=2",
    "grpo.group_size=2",
    "grpo.micro_batch=4",
    "sampling.steps=4",
    "grpo.sde_window=[0,2]",
    "eval.n=2",
    "eval.samples_per_puzzle=1",
    "max_minutes=0",
]
#: every full run trains its config's optim.steps whatever the machine's speed (no max_minutes cut),
#: so that runs compared with each other (window half vs all steps) made the same number of updates
FULL = ["max_minutes=0"]
#: the maze RL run of table1 also gives the default-reward curve of the hack experiment
MAZE_EVAL_EVERY = {"quick": ["eval.every=1"], "full": ["eval.every=20"]}
#: updates of each table4 run (the window on the first half vs all sampling steps): enough to see
#: the step time and whether the first half keeps the quality, at a third of the shipped recipe's cost
TABLE4_STEPS = 50
#: experiments whose JSON holds one entry per task: a run with --tasks keeps the other tasks' entries
PER_TASK = ("table1", "reward")
#: the experiments, in the order they run and their tables appear (--only)
EXPERIMENTS = ("table1", "table4", "reward", "hack")
#: the tasks table 1 and the reward experiment can run (--tasks, --seed-tasks, --sft-control)
TASKS = ("maze", "flowfree", "sokoban")
#: table 1's control (--sft-control): configs/<task>-tiny-sft.yaml continued from the shipped SFT
#: checkpoint for about the wall time of table 1's RL run (700 steps x 16 videos: 10 minutes against
#: 11.5 on the 2-core build machine), at a fine-tuning rate, on a fresh stream of training puzzles.
#: RL has to beat this, not only the checkpoint it started from: is its gain more than more compute?
SFT_CONTROL = ["optim.steps=700", "optim.lr=3e-4", "optim.warmup_steps=10", "data.seed=7000000", "eval.n=8"]
SFT_QUICK = ["optim.steps=2", "optim.warmup_steps=1", "eval.n=2", "max_minutes=0"]
