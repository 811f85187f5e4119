"""Reproduce the VideoRLVR paper's findings at CPU scale, from the shipped tiny checkpoints.

    python scripts/reproduce.py [--quick] [--out results] [--only table1 table4 reward hack]

Experiments (every number on held-out puzzles, canonical keys never trained on in SFT or RL, with
several samples per puzzle and 95% bootstrap intervals over puzzles, beside the trivial baselines):

- ``table1`` (paper Table 1): the SFT checkpoint vs the RL policy that `vrlvr-train` makes from it
  with configs/<task>-tiny.yaml, for maze, flowfree and sokoban: success, loose success,
  precision, recall, F1, reward, and the paired gain RL - SFT with its interval;
- ``table4`` (paper Table 4, maze): the SDE window on the first half of the steps vs all steps:
  median step time ratio and final success;
- ``reward`` (maze, flowfree): dense reward vs sparse (success as 0/1);
- ``hack`` (maze): the paper's reward preset with the KL term off vs the project's default:
  loose vs exact success over training.

Writes OUT/<experiment>.json, OUT/runs/<run>/ (the vrlvr-train run folders), docs/results.md (the
tables) and docs/curves_<run>.png (reward, exact and loose success, KL over steps), and replaces the
block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in README.md. ``--quick``
runs every experiment with 1-2 steps and a handful of puzzles: a smoke test of the pipeline, not
a result (its tables say so).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 4  # videos per held-out puzzle in the full run (each with its own noise)
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
MAZE_EVAL_EVERY = {"quick": ["eval.every=1"], "full": ["eval.every=10"]}


def train(name: str, config: Path, overrides: list[str], args) -> Path:
    """One `vrlvr-train` run (a subprocess: its own memory, its own threads) -> its run folder."""
    out = Path(args.out).resolve() / "runs" / name
    cmd = [
        sys.executable,
        "-m",
        "vrlvr.cli",
        "train",
        "--config",
        str(config),
        f"out_dir={out}",
        "--overwrite",
    ]
    cmd += ["--no-progress", *(QUICK if args.quick else FULL), *overrides]
    print(f"[reproduce] {name}: {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
    t0 = time.time()
    # cwd away from the checkout: `python -m` puts the working directory on sys.path, and the source
    # tree's vrlvr (no compiled modules unless built in place) would shadow the installed one
    res = subprocess.run(cmd, cwd=Path(args.out).resolve(), text=True, capture_output=True)
    if res.returncode != 0:
        raise SystemExit(f"[reproduce] run {name} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    print(f"[reproduce] {name}: done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def per_puzzle(policy, task, puzzles, video, steps, shift, samples: int, seed: int) -> np.ndarray:
    """float [n_puzzles, len(METRICS)]: each metric averaged over ``samples`` videos per puzzle."""
    from vrlvr.train.evaluate import evaluate, loose_success

    rows = np.zeros((samples, len(puzzles), len(METRICS)))
    for j in range(samples):
        _, recs = evaluate(
            policy, task, puzzles, video, steps, shift, 48, seed=seed + 1_000_003 * j, progress=False
        )
        for i, r in enumerate(recs):
            v = r["verdict"]
            vals = (float(v.success), loose_success(v), v.precision, v.recall, v.f1, float(v.reward))
            rows[j, i] = [np.nan if x is None else x for x in vals]
    return np.nanmean(rows, axis=0)


def bootstrap(values: np.ndarray, reps: int = 2000, seed: int = 0) -> dict:
    """Mean and 95% percentile interval over puzzles (rows) for each metric column."""
    rng = np.random.default_rng(seed)
    n = len(values)
    idx = rng.integers(0, n, size=(reps, n))
    means = np.nanmean(values[idx], axis=1)  # [reps, metrics]
    lo, hi = np.nanpercentile(means, [2.5, 97.5], axis=0)
    mean = np.nanmean(values, axis=0)
    return {m: {"mean": float(mean[k]), "ci95": [float(lo[k]), float(hi[k])]} for k, m in enumerate(METRICS)}


def held_out_eval(checkpoint: Path | str, run: Path, args) -> tuple[np.ndarray, dict]:
    """Per-puzzle metrics of a checkpoint on the run's held-out evaluation puzzles (the same puzzles
    for the SFT checkpoint and the RL policy), plus the baselines on them. Memoised per invocation:
    table4 and the reward experiment reuse table1's evaluation of the same RL policy."""
    memo = args.__dict__.setdefault("evals", {})
    key = (str(checkpoint), str(run))
    if key not in memo:
        memo[key] = _held_out_eval(checkpoint, run, args)
    return memo[key]


def _held_out_eval(checkpoint: Path | str, run: Path, args) -> tuple[np.ndarray, dict]:
    import yaml

    from vrlvr import tasks
    from vrlvr.config import build_config
    from vrlvr.models import load_policy
    from vrlvr.train.data import VideoSpec, eval_puzzles, read_heldout
    from vrlvr.train.evaluate import evaluate_baselines
    from vrlvr.train.grpo_config import GRPOConfig

    cfg = build_config(GRPOConfig, yaml.safe_load((run / "config.yaml").read_text()))
    name = cfg.data.tasks[0]
    task = tasks.get(name)
    allowed = set(read_heldout(run, name)["keys"])
    n = cfg.eval.n if args.quick else max(cfg.eval.n, 96)
    puzzles, _ = eval_puzzles(task, cfg.data.sizes_for(name), n, cfg.heldout.seed, allowed=allowed)
    video = VideoSpec(cfg.data.num_frames, cfg.data.cell_px, cfg.data.height, cfg.data.width)
    policy = load_policy(checkpoint).eval()
    samples = 1 if args.quick else SAMPLES
    vals = per_puzzle(policy, task, puzzles, video, cfg.sampling.steps, cfg.sampling.shift, samples, 7)
    return vals, evaluate_baselines(task, puzzles, video)


def curves(run: Path, args) -> None:
    """The run's curves as curves_<run>.png in docs/ (or in OUT with --no-readme)."""
    from vrlvr.train.logger import plot_curves

    folder = Path(args.out) if args.no_readme else ROOT / "docs"
    plot_curves(run / "metrics.jsonl", folder / f"curves_{run.name}.png")


def step_times(run: Path) -> list[float]:
    from vrlvr.train.logger import read_metrics

    return [r["step_time_s"] for r in read_metrics(run / "metrics.jsonl") if "step_time_s" in r][1:]


def rl_run(task: str, args) -> Path:
    """The RL run of configs/<task>-tiny.yaml (made once, reused by table1, table4, reward, hack)."""
    made = args.__dict__.setdefault("rl_runs", {})  # per invocation: a rerun never reuses old runs
    if task not in made:
        extra = MAZE_EVAL_EVERY["quick" if args.quick else "full"] if task == "maze" else []
        made[task] = train(f"{task}-rl", ROOT / "configs" / f"{task}-tiny.yaml", extra, args)
    return made[task]


def exp_table1(args) -> dict:
    out = {}
    for task in args.tasks:
        run = rl_run(task, args)
        sft_vals, baselines = held_out_eval(f"{task}-tiny", run, args)
        rl_vals, _ = held_out_eval(run / "final", run, args)
        gain = bootstrap(rl_vals - sft_vals)
        out[task] = {
            "puzzles": len(sft_vals),
            "samples": 1 if args.quick else SAMPLES,
            "sft": bootstrap(sft_vals),
            "rl": bootstrap(rl_vals),
            "gain": gain,
            "baselines": baselines,
        }
        curves(run, args)
    return out


def exp_table4(args) -> dict:
    half = rl_run("maze", args)
    steps = 4 if args.quick else 10
    full = train(
        "maze-rl-all-steps", ROOT / "configs" / "maze-tiny.yaml", [f"grpo.sde_window=[0,{steps}]"], args
    )
    th, tf = step_times(half), step_times(full)
    h_vals, _ = held_out_eval(half / "final", half, args)
    f_vals, _ = held_out_eval(full / "final", full, args)
    return {
        "median_step_time_s": {"first_half": statistics.median(th), "all_steps": statistics.median(tf)},
        "step_time_ratio": statistics.median(th) / statistics.median(tf),
        "goal_ratio": 0.6,
        "first_half": bootstrap(h_vals),
        "all_steps": bootstrap(f_vals),
    }


def exp_reward(args) -> dict:
    out = {}
    for task in ("maze", "flowfree"):
        dense = rl_run(task, args)
        sparse = train(
            f"{task}-rl-sparse", ROOT / "configs" / f"{task}-tiny.yaml", ["reward.kind=sparse"], args
        )
        out[task] = {
            "dense": bootstrap(held_out_eval(dense / "final", dense, args)[0]),
            "sparse": bootstrap(held_out_eval(sparse / "final", sparse, args)[0]),
        }
    return out


def exp_hack(args) -> dict:
    from vrlvr.train.logger import read_metrics

    every = MAZE_EVAL_EVERY["quick" if args.quick else "full"]
    runs = {
        "default": rl_run("maze", args),
        "paper_no_kl": train(
            "maze-rl-paper-nokl",
            ROOT / "configs" / "maze-tiny.yaml",
            ["reward.preset=paper", "grpo.beta=0", *every],
            args,
        ),
    }
    out = {}
    for name, run in runs.items():
        evals = [r for r in read_metrics(run / "metrics.jsonl") if "eval" in r]
        out[name] = {
            "step": [e["step"] for e in evals],
            "success_rate": [e["eval"]["success_rate"] for e in evals],
            "loose_success_rate": [e["eval"]["loose_success_rate"] for e in evals],
        }
        curves(run, args)
    return out


def fmt(ci: dict, key: str, scale: float = 100.0) -> str:
    m = ci[key]
    return f"{scale * m['mean']:.1f} [{scale * m['ci95'][0]:.1f}, {scale * m['ci95'][1]:.1f}]"


def tables(results: dict, quick: bool) -> str:
    lines = ["# Results (written by scripts/reproduce.py)", ""]
    if quick:
        lines += ["**--quick smoke run: 2 steps and a handful of puzzles; these numbers mean nothing.**", ""]
    if "table1" in results:
        lines += [
            "## SFT vs RL on held-out puzzles (%, mean [95% bootstrap CI over puzzles])",
            "",
            "| task | puzzles x samples | SFT success | RL success | gain | SFT F1 | RL F1 "
            "| SFT reward | RL reward | gain | best baseline: success, F1, reward |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for task, r in results["table1"].items():
            cells = [fmt(r[k], "success_rate") for k in ("sft", "rl", "gain")]
            cells += [fmt(r[k], "f1") for k in ("sft", "rl")]
            cells += [fmt(r[k], "mean_reward") for k in ("sft", "rl", "gain")]
            base = r["baselines"]
            best = max(base, key=lambda b: (base[b]["mean_reward"], base[b]["f1"])) if base else None
            bcell = (
                f"{best}: {100 * base[best]['success_rate']:.1f}, {100 * base[best]['f1']:.1f}, "
                f"{100 * base[best]['mean_reward']:.1f}"
                if best
                else "-"
            )
            lines.append(
                f"| {task} | {r['puzzles']} x {r.get('samples', 1)} | " + " | ".join(cells) + f" | {bcell} |"
            )
        lines.append("")
    if "table4" in results:
        t = results["table4"]
        lines += [
            "## Early-Step Focus (maze)",
            "",
            f"Median step time, window on the first half / all steps: {t['step_time_ratio']:.2f} "
            f"(goal <= 0.6); final success {fmt(t['first_half'], 'success_rate')} vs "
            f"{fmt(t['all_steps'], 'success_rate')}.",
            "",
        ]
    if "reward" in results:
        lines += [
            "## Dense vs sparse reward (success %)",
            "",
            "| task | dense | sparse |",
            "| --- | --- | --- |",
        ]
        for task, r in results["reward"].items():
            lines.append(
                f"| {task} | {fmt(r['dense'], 'success_rate')} | {fmt(r['sparse'], 'success_rate')} |"
            )
        lines.append("")
    if "hack" in results:
        lines += ["## Reward hacking (maze): held-out exact / loose success over training", ""]
        for name, r in results["hack"].items():
            pairs = ", ".join(
                f"step {s}: {100 * e:.0f}/{100 * lo:.0f}"
                for s, e, lo in zip(r["step"], r["success_rate"], r["loose_success_rate"])
            )
            lines.append(f"- {name}: {pairs}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 steps, a few puzzles (minutes)")
    ap.add_argument("--out", default=str(ROOT / "results"), help="results folder (runs/ inside)")
    ap.add_argument(
        "--only", nargs="+", choices=["table1", "table4", "reward", "hack"], help="experiments to run"
    )
    ap.add_argument("--tasks", nargs="+", default=["maze", "flowfree", "sokoban"], help="table1's tasks")
    ap.add_argument("--no-readme", action="store_true", help="do not touch README.md and docs/")
    ap.add_argument(
        "--tables-only",
        action="store_true",
        help="run nothing: rebuild the tables (docs/results.md, README) from OUT/<experiment>.json",
    )
    args = ap.parse_args(argv)
    args.out = str(Path(args.out).resolve())  # runs are subprocesses with another working directory
    Path(args.out).mkdir(parents=True, exist_ok=True)
    todo = args.only or ["table1", "table4", "reward", "hack"]
    runners = {"table1": exp_table1, "table4": exp_table4, "reward": exp_reward, "hack": exp_hack}
    results = {}
    for name in todo:
        if args.tables_only:
            path = Path(args.out) / f"{name}.json"
            if path.is_file():
                results[name] = json.loads(path.read_text())
            continue
        t0 = time.time()
        results[name] = runners[name](args)
        (Path(args.out) / f"{name}.json").write_text(json.dumps(results[name], indent=2) + "\n")
        # wall time per experiment, kept beside the results (the README quotes it)
        timing_path = Path(args.out) / "seconds.json"
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        timing[name] = round(time.time() - t0, 1)
        timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    text = tables(results, args.quick)
    (Path(args.out) / "results.md").write_text(text + "\n")
    if not args.no_readme:
        (ROOT / "docs" / "results.md").write_text(text + "\n")
        readme = ROOT / "README.md"
        s = readme.read_text()
        a, b = "<!-- results:start -->", "<!-- results:end -->"
        if a in s and b in s:
            s = s[: s.index(a) + len(a)] + "\n" + text.split("\n", 2)[2] + "\n" + s[s.index(b) :]
            readme.write_text(s)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
