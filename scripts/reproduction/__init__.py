"""The parts of scripts/reproduce.py, one concept per module (the script itself is the command line).

- settings: the constants every part shares (puzzles, samples, smoke overrides, experiments, tasks)
- recipes: what each experiment trains (name, config, overrides), and the plan of them all
- training: running `vrlvr-train` / `vrlvr sft` as processes, reusing finished runs, provenance
- pool: every planned run and evaluation, N processes at a time (--jobs)
- scoring: held-out evaluation of a checkpoint on a run's held-out puzzles, paired across policies
- stats: bootstrap intervals over puzzles and over training seeds
- step_timing: step times of runs timed side by side (table 4), drift check, equal-work ratio
- experiments: the four experiments (table 1, table 4, dense vs sparse, the hack) and their JSON
- report: the Markdown tables of README.md and docs/results.md
- score_command: `--score`, any checkpoint paired against its SFT start, with OUT/scores.json
"""
