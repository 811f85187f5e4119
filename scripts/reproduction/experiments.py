"""The four experiments: table 1 (SFT vs RL, training seeds, the SFT control), table 4 (Early-Step
Focus), dense vs sparse reward, and the reward-hacking ablation; each returns its JSON entry."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from reproduction import pool, recipes, scoring, stats, step_timing, training
from reproduction.settings import METRICS, PER_TASK, TABLE4_STEPS, TASKS


def rl_run(task: str, args) -> Path:
    """The RL run of configs/<task>-tiny.yaml as shipped (table1; reused by the other experiments)."""
    return training.train(f"{task}-rl", *recipes.rl_recipe(task, args), args)


def kind_run(task: str, kind: str, args) -> Path:
    """The shipped recipe with ``reward.kind`` set to ``kind`` (the shipped run itself when it
    already uses that kind)."""
    return training.train(*recipes.kind_recipe(task, kind, args), args)


def seed_runs(task: str, args) -> list[Path]:
    """Table 1's RL run and, for the ``--seed-tasks``, ``--seeds - 1`` more of the same recipe with the
    next training seeds (``seed`` = the config's + 1, + 2, ...: another LoRA initialisation, other
    puzzle draws and noise): the intervals over puzzles of one run do not show how much a rerun of
    training moves the gain (on maze, more than they say)."""
    return [training.train(*recipe, args) for recipe in recipes.seed_recipes(task, args)]


def exp_table1(args) -> dict:
    """Paper Table 1 per task: the SFT checkpoint vs table 1's RL run on the run's held-out puzzles,
    paired, beside the trivial baselines; with the training seeds and the SFT control where asked."""
    out = {}
    for task in args.tasks:
        runs = seed_runs(task, args)
        run = runs[0]
        start = recipes.start_of(task)
        sft_vals, baselines = scoring.held_out_eval(start, run, args)
        rl_vals, _ = scoring.held_out_eval(run / "final", run, args)
        out[task] = {
            "sft_checkpoint": start,
            "puzzles": len(sft_vals),
            "samples": scoring.samples_per_puzzle(args),
            "recipe": training.config_summary(run),
            "median_step_time_s": statistics.median(step_timing.step_times(run) or [0.0]),
            "sft": stats.bootstrap(sft_vals),
            "rl": stats.bootstrap(rl_vals),
            "gain": stats.bootstrap(rl_vals - sft_vals),
            "baselines": baselines,
            "per_puzzle": {
                "metrics": list(METRICS),
                "sft": scoring.stored(sft_vals),
                "rl": scoring.stored(rl_vals),
            },
            "measured": training.provenance(run),
        }
        seed_vals = [rl_vals]  # per-puzzle values of each training seed, table 1's run first
        if len(runs) > 1:
            keys = [p.key for p in scoring.heldout_set(run, args)[1]]
            for other in runs[1:]:  # the pairing below needs the very same puzzles
                if [p.key for p in scoring.heldout_set(other, args)[1]] != keys:
                    raise SystemExit(f"[reproduce] {other.name} is scored on other puzzles than {run.name}")
            seed_vals += [scoring.held_out_eval(r / "final", r, args)[0] for r in runs[1:]]
            gains = np.stack([v - sft_vals for v in seed_vals])  # [seeds, puzzles, metrics]
            out[task]["seeds"] = {
                "seeds": [int(training.config_summary(r)["seed"]) for r in runs],
                "gain_per_seed": [stats.bootstrap(g) for g in gains],
                "gain": stats.seed_bootstrap(gains),
                "per_puzzle_rl": [scoring.stored(v) for v in seed_vals[1:]],
                "measured": training.provenance(*runs),
            }
        if task in args.sft_control:
            out[task]["sft_control"] = sft_control(task, run, sft_vals, seed_vals, args)
        training.curves(run, args)  # the other seeds' curves stay in their run folders
    return out


def sft_control(task: str, rl_run_dir: Path, sft_vals: np.ndarray, seed_vals: list[np.ndarray], args) -> dict:
    """More SFT for RL's compute (SFT_CONTROL), scored on table 1's puzzles with table 1's sampler and
    paired against the SFT checkpoint and against each RL training seed."""
    from vrlvr.train.data import read_heldout

    run = training.train(*recipes.control_recipe(task, args), args, command="sft")
    # never scored on a puzzle the control trained on: table 1's puzzles must be in its held-out set
    keys = {p.key for p in scoring.heldout_set(rl_run_dir, args)[1]}
    if not keys <= set(read_heldout(run, task)["keys"]):
        raise SystemExit(f"[reproduce] {run.name}: table 1's {task} puzzles are not all in its held-out set")
    vals, _ = scoring.held_out_eval(run / "final", rl_run_dir, args)
    rl_minus = np.stack([v - vals for v in seed_vals])  # [seeds, puzzles, metrics]
    o = scoring.run_config(run).optim
    return {
        "recipe": {"steps": o.steps, "batch_size": o.batch_size, "lr": o.lr, "warmup_steps": o.warmup_steps}
        | {"decay": o.decay},
        "wall_s": training.wall_seconds(run),
        "rl_wall_s": training.wall_seconds(rl_run_dir),
        "more_sft": stats.bootstrap(vals),
        "gain": stats.bootstrap(vals - sft_vals),
        "rl_minus_control": stats.bootstrap(seed_vals[0] - vals),
        "rl_minus_control_over_seeds": stats.seed_bootstrap(rl_minus) if len(seed_vals) > 1 else None,
        "per_puzzle": scoring.stored(vals),
        "measured": training.provenance(run),
    }


def exp_table4(args) -> dict:
    """The window on the first half of the sampling steps vs all of them, everything else as
    shipped except the number of updates (TABLE4_STEPS: the question is the step time and whether
    the first half keeps the quality, not the best policy)."""
    steps = recipes.table4_sampling_steps(args)
    # side by side, a core each: a machine that slows down slows both runs, and only the steps both
    # ran together are timed
    runs = training.train_side_by_side(recipes.table4_recipes(args), args)
    until = step_timing.together_until(*runs.values())
    if until is not None and not all(step_timing.timed_steps(r, until) for r in runs.values()):
        until = None  # no step of one run ended while both ran (--quick's 2 steps): time them all
    t = {k: statistics.median(step_timing.step_times(r, until)) for k, r in runs.items()}
    cost = {k: step_timing.step_cost(r, until) for k, r in runs.items()}
    drift = {k: step_timing.rollout_drift(r, until=until) for k, r in runs.items()}
    if max(drift.values()) > step_timing.DRIFT_LIMIT:
        print(
            f"[reproduce] table4: the machine's speed drifted during the runs (rollout time, slowest "
            f"over fastest fifth: {', '.join(f'{k} {v:.2f}' for k, v in drift.items())}): the step "
            "times are not comparable; rerun table4 on a quiet machine",
            file=sys.stderr,
            flush=True,
        )
    both = cost["first_half"]["contributing"] + cost["all_steps"]["contributing"]
    mean_n = float(np.mean(both)) if both else 0.0
    g = scoring.run_config(runs["all_steps"]).grpo
    every = g.prompts_per_step * g.group_size  # a step's samples: all of them train with a dense reward
    vals = {k: scoring.held_out_eval(r / "final", r, args)[0] for k, r in runs.items()}
    # the shipped window's step time, for scale: table 1's run, when this invocation has it (table1
    # ran, or --reuse finds it); table4 alone does not train a 100-update run for one line
    shipped = (
        rl_run("maze", args) if training.at_hand("maze-rl", *recipes.rl_recipe("maze", args), args) else None
    )
    return {
        "updates": TABLE4_STEPS if not args.quick else None,
        "windows": {"first_half": [0, steps // 2], "all_steps": [0, steps]},
        "median_step_time_s": t,
        "step_time_ratio": t["first_half"] / t["all_steps"],
        # how the two were timed: trained at once with these threads each, on the steps that ended
        # while both ran (None: one after the other, or runs from before the trainer logged the time)
        "side_by_side": {
            "threads": {k: scoring.run_config(r).threads for k, r in runs.items()},
            "timed_updates": {k: len(step_timing.timed_steps(r, until)) for k, r in runs.items()},
            "until": until,
        },
        "phase_median_s": {k: step_timing.phase_times(r, until) for k, r in runs.items()},
        # the same training work in both: the runs' mean contributing samples a step, and all of them
        "step_cost": {k: {m: c[m] for m in ("fixed_s", "per_sample_s")} for k, c in cost.items()},
        "mean_contributing": {k: float(np.mean(c["contributing"] or [0])) for k, c in cost.items()},
        "contributing_range": [min(both or [0]), max(both or [0])],
        "rollout_drift": drift,
        "ratio_at_mean_work": step_timing.matched_ratio(
            runs["first_half"], runs["all_steps"], mean_n, until=until
        ),
        "ratio_all_trained": step_timing.matched_ratio(
            runs["first_half"], runs["all_steps"], float(every), until=until
        ),
        "goal_ratio": 0.6,
        "first_half": stats.bootstrap(vals["first_half"]),
        "all_steps": stats.bootstrap(vals["all_steps"]),
        "first_half_minus_all": stats.bootstrap(vals["first_half"] - vals["all_steps"]),
        **(
            {
                "shipped": {
                    "sde_window": training.config_summary(shipped)["sde_window"],
                    "median_step_time_s": statistics.median(step_timing.step_times(shipped)),
                }
            }
            if shipped
            else {}
        ),
        "measured": training.provenance(*runs.values(), *([shipped] if shipped else [])),
    }


def exp_reward(args) -> dict:
    """Dense vs sparse reward (maze, flowfree): the shipped recipe trained with each, both paired
    against the SFT checkpoint on the same held-out puzzles."""
    out = {}
    for task in [t for t in ("maze", "flowfree") if t in args.tasks]:
        runs = {kind: kind_run(task, kind, args) for kind in ("dense", "sparse")}
        shipped = rl_run(task, args)
        sft_vals, _ = scoring.held_out_eval(recipes.start_of(task), shipped, args)
        vals = {kind: scoring.held_out_eval(r / "final", r, args)[0] for kind, r in runs.items()}
        out[task] = {
            "sft_checkpoint": recipes.start_of(task),
            "shipped": recipes.config_of(task).get("reward", {}).get("kind", "dense"),
            "sft": stats.bootstrap(sft_vals),
            **{kind: stats.bootstrap(v) for kind, v in vals.items()},
            **{f"{kind}_gain": stats.bootstrap(v - sft_vals) for kind, v in vals.items()},
            "sparse_minus_dense": stats.bootstrap(vals["sparse"] - vals["dense"]),
            "per_puzzle": {"metrics": list(METRICS), **{kind: scoring.stored(v) for kind, v in vals.items()}},
            "measured": training.provenance(*runs.values(), shipped),
        }
        for r in runs.values():
            training.curves(r, args)
    return out


def exp_hack(args) -> dict:
    """The paper's reward preset vs the project's default, both dense (the sparse reward pays no
    partial credit, so there is nothing to flood) and both with the KL off."""
    from vrlvr.train.logger import read_metrics

    runs = {
        "default": kind_run("maze", "dense", args),
        "paper_no_kl": training.train(*recipes.hack_recipe(args), args),
    }
    out = {}
    for name, run in runs.items():
        evals = [r for r in read_metrics(run / "metrics.jsonl") if "eval" in r]
        out[name] = {
            "step": [e["step"] for e in evals],
            "success_rate": [e["eval"]["success_rate"] for e in evals],
            "loose_success_rate": [e["eval"]["loose_success_rate"] for e in evals],
            "recipe": training.config_summary(run),
            "measured": training.provenance(run),
        }
        training.curves(run, args)
    return out


def run_experiments(
    todo: list[str], args, pooled: bool, what: str, timing_path: Path, t_start: float
) -> dict:
    """Each experiment in ``todo`` (after the pool with --jobs), its JSON written and its wall time
    kept in OUT/seconds.json -> {experiment: its results}."""
    runners = {"table1": exp_table1, "table4": exp_table4, "reward": exp_reward, "hack": exp_hack}
    results = {}
    if pooled:
        pool.train_planned(todo, args)
        # the wall time of the runs and their evaluations (and below, of the whole invocation),
        # unless a run was reused: then it says nothing about what training them costs
        if not training.REUSED:
            timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
            timing[f"runs and evaluations of {what}"] = round(time.time() - t_start, 1)
            timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    for name in todo:
        if args.tables_only:
            path = Path(args.out) / f"{name}.json"
            if path.is_file():
                results[name] = json.loads(path.read_text())
            continue
        t0, reused_before = time.time(), len(training.REUSED)
        results[name] = runners[name](args)
        path = Path(args.out) / f"{name}.json"
        if name in PER_TASK and path.is_file():
            # a rerun of some tasks keeps the other tasks' entries (each says when it was measured)
            old = json.loads(path.read_text())
            results[name] = {**old, **results[name]}  # the old order, the new entries
        (Path(args.out) / f"{name}.json").write_text(json.dumps(results[name], indent=2) + "\n")
        # wall time per experiment, kept beside the results (the README quotes it); an experiment
        # that reused a run did not train it, so its time says nothing about the cost: not kept
        if len(training.REUSED) > reused_before and not pooled:
            continue
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        # a rerun of some tasks times those tasks only: kept under its own key, beside the full run's;
        # after the pool (--jobs) an experiment's time is its tables from the pool's evaluations: its
        # key says "scoring"
        partial = name in PER_TASK and set(args.tasks) != set(TASKS)
        key = f"{name} ({', '.join(args.tasks)})" if partial else name
        timing[f"{key}, scoring" if pooled else key] = round(time.time() - t0, 1)
        timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    if pooled and not training.REUSED:
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        timing[f"all of {what}"] = round(time.time() - t_start, 1)
        timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    return results
