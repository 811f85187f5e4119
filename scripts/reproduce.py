"""Reproduce the VideoRLVR paper's findings at CPU scale, from the shipped tiny checkpoints.

    python scripts/reproduce.py [--quick] [--out results] [--only table1 table4 reward hack]
                                [--seeds 3] [--jobs N]
    python scripts/reproduce.py --score runs/NAME/final [runs/NAME/checkpoints/step_N ...] [--rollout-sampler]

Experiments (every number on held-out puzzles, canonical keys never trained on in SFT or RL, with
several samples per puzzle and 95% bootstrap intervals over puzzles, beside the trivial baselines):

- ``table1`` (paper Table 1): the SFT checkpoint configs/<task>-tiny.yaml starts from (its
  model.init: maze-tiny, flowfree-deep8, sokoban-deep8) vs the RL policy that `vrlvr-train` makes
  from it with that config, for maze, flowfree and sokoban: success, loose success,
  precision, recall, F1, reward, and the paired gain RL - SFT with its interval, and the
  puzzle's share of whether a video succeeds (puzzle_share_ci: does the policy solve some
  puzzles, or every puzzle at the same odds?); for the
  ``--seed-tasks`` (maze) the recipe is trained with ``--seeds`` (3) training seeds and the gain is
  also given per seed and over seeds, with an interval over seeds and puzzles; for the
  ``--sft-control`` tasks (maze) a control: more SFT from the same checkpoint for about the RL
  run's wall time (SFT_CONTROL), paired against the checkpoint and against RL;
- ``table4`` (paper Table 4, maze): the SDE window on the first half of the sampling steps vs all
  of them, otherwise the shipped recipe with TABLE4_STEPS updates each, the two runs trained side
  by side on half the cores each and timed while both ran: median step time ratio,
  final success and their paired difference (and, for scale, the median step of table 1's run with
  the shipped window when this invocation has that run: table1 ran too, or --reuse found it);
- ``reward`` (maze, flowfree): dense reward vs sparse (success as 0/1), each paired against SFT;
- ``hack`` (maze): the paper's reward preset vs the project's default, both dense and with the KL
  term off: loose vs exact success over training.

Runs are shared between experiments (the shipped maze recipe is table1's run; its dense twin
serves the reward and hack experiments). With ``--jobs`` N > 1 (the default: one per core) every
run the chosen experiments need is trained first, N at a time with an equal share of the cores
(table4's pair first and alone), and every policy they score is evaluated in the same pool as soon
as its runs are made (one process each); the experiments then build their tables from those
evaluations. ``--jobs 1`` trains one run at a time, when its experiment needs it, with its
config's threads, and evaluates in the script's own process. Per-puzzle values are kept in the
JSON, so any two policies scored on the same puzzles can be compared later with a paired interval;
each entry says when and from which commit it was measured, and ``--tasks`` reruns some tasks while
keeping the others' entries of table1.json and reward.json.

Writes OUT/<experiment>.json, OUT/runs/<run>/ (the vrlvr-train and vrlvr sft run folders),
docs/results.md (the tables) and docs/curves_<run>.png (reward, exact and loose success, KL over
steps), and replaces the block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
README.md. ``--quick`` runs every experiment with 1-2 steps and a handful of puzzles: a smoke test
of the pipeline, not a result (its tables say so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
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


def train(name: str, config: Path, overrides: list[str], args, command: str = "train") -> Path:
    """One `vrlvr-train` run (``command`` "sft": one `vrlvr sft` run; a subprocess: its own memory,
    its own threads) -> its run folder.

    Memoised per invocation by run name: table1, table4, reward and hack share runs (a rerun of the
    script never reuses the runs of an earlier one). One name always means the same overrides."""
    return train_side_by_side({name: (name, config, overrides)}, args, command)[name]


def train_side_by_side(
    runs: dict[str, tuple[str, Path, list[str]]], args, command: str = "train"
) -> dict[str, Path]:
    """``runs``: {key: (name, config, overrides)} -> {key: run folder}. The runs that are not at hand
    (made by this invocation, or --reuse) train at the same time, one process each with an equal
    share of the CPU cores (``threads=cores // n``; one run alone keeps its config's threads):
    whatever the machine does to its speed meanwhile (another job, a throttled CPU) it does to all
    of them, so their step times compare (table4)."""
    out, todo = {}, {}
    for key, (name, config, overrides) in runs.items():
        out[key], cmd = prepare(name, config, overrides, args, command)
        if cmd is not None:
            todo[key] = (name, overrides, cmd)
    threads = max(1, cores() // len(todo)) if len(todo) > 1 else None
    started = {key: launch(name, cmd, threads, args) for key, (name, _, cmd) in todo.items()}
    failed = [landed(todo[key][0], todo[key][1], out[key], job, args) for key, job in started.items()]
    if any(failed):
        raise SystemExit("\n".join(f for f in failed if f))
    return out


def prepare(name: str, config: Path, overrides: list[str], args, command: str = "train"):
    """(run folder, command line that trains it) for run ``name``; the command is None when the run is
    at hand: made by this invocation (one name always means the same overrides), or --reuse found it
    finished with exactly this config."""
    made = args.__dict__.setdefault("runs_made", {})
    if name in made:
        if made[name][1] != overrides:
            raise RuntimeError(f"run {name} requested with {overrides}, made with {made[name][1]}")
        return made[name][0], None
    folder = Path(args.out).resolve() / "runs" / name
    run_overrides = full_overrides(overrides, args, command)
    if args.reuse and reusable(folder, config, run_overrides, command):
        print(f"[reproduce] {name}: reusing {folder} (finished, same config)", file=sys.stderr, flush=True)
        REUSED[folder] = time.strftime("%Y-%m-%d", time.localtime((folder / "metrics.jsonl").stat().st_mtime))
        made[name] = (folder, list(overrides))
        return folder, None
    cmd = [sys.executable, "-m", "vrlvr.cli", command, "--config", str(config), f"out_dir={folder}"]
    return folder, [*cmd, "--overwrite", "--no-progress", *run_overrides]


def launch(name: str, cmd: list[str], threads: int | None, args):
    """Start one run's process (``threads``: its CPU threads; None keeps its config's) -> the job."""
    share = [f"threads={threads}"] if threads else []
    print(f"[reproduce] {name}: {' '.join(cmd[3:] + share)}", file=sys.stderr, flush=True)
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: runs side by side would fill one and stall
    # cwd away from the checkout: `python -m` puts the working directory on sys.path, and the
    # source tree's vrlvr (no compiled modules unless built in place) would shadow the installed one
    proc = subprocess.Popen(cmd + share, cwd=Path(args.out).resolve(), text=True, stdout=log, stderr=log)
    return proc, log, time.time()


def failure_of(job, what: str) -> str | None:
    """Wait for a launched process (a run's, an evaluation's) -> None, or the failure's message
    naming ``what`` with its log's end."""
    proc, log, _ = job
    code = proc.wait()
    log.seek(0)
    return f"[reproduce] {what} failed (exit {code}):\n{log.read()[-3000:]}" if code != 0 else None


def landed(name: str, overrides: list[str], folder: Path, job, args) -> str | None:
    """Wait for a launched run; record it as made -> None, or the failure's message (its log's end)."""
    failure = failure_of(job, f"run {name}")
    if failure:
        return failure
    t0 = job[2]
    print(f"[reproduce] {name}: done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    args.__dict__.setdefault("runs_made", {})[name] = (folder, list(overrides))
    return None


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def full_overrides(overrides: list[str], args, command: str = "train") -> list[str]:
    """What a run of ``train`` is given: the full or --quick settings, then the experiment's own."""
    quick = SFT_QUICK if command == "sft" else QUICK
    return [*(quick if args.quick else FULL), *overrides]


def at_hand(name: str, config: Path, overrides: list[str], args) -> bool:
    """Whether run ``name`` costs nothing here: made by this invocation, or (--reuse) finished in
    OUT/runs/ with exactly this config."""
    if name in args.__dict__.get("runs_made", {}):
        return True
    out = Path(args.out).resolve() / "runs" / name
    return bool(args.reuse) and reusable(out, config, full_overrides(overrides, args))


#: run folders taken as they were (--reuse) -> the date they finished training; entries measured
#: from them say so
REUSED: dict[Path, str] = {}
#: keys that do not change what a run computes (where it is written, CPU threads, logging)
REUSE_IGNORED = ("out_dir", "threads", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints")


def reusable(out: Path, config: Path, overrides: list[str], command: str = "train") -> bool:
    """--reuse: the run folder ``out`` holds a finished run (final/ and every update logged) of exactly
    ``config`` + ``overrides`` (keys in REUSE_IGNORED aside), so training it again would redo it.
    The comparison is the trainer's own for --resume (``frozen_changes``: a key added since the run
    was written counts as no change while it keeps its default). ``command``: "train" (vrlvr-train)
    or "sft" (vrlvr sft)."""
    import yaml

    from vrlvr.config import build_config
    from vrlvr.train.grpo_config import GRPOConfig
    from vrlvr.train.logger import read_metrics
    from vrlvr.train.run_dir import frozen_changes
    from vrlvr.train.sft_config import SFTConfig

    if not (out / "final" / "policy.json").is_file() or not (out / "config.yaml").is_file():
        return False
    want = build_config(SFTConfig if command == "sft" else GRPOConfig, config, overrides)
    _, changes = frozen_changes(yaml.safe_load((out / "config.yaml").read_text()), want, ())
    if any(key.split(".")[0] not in REUSE_IGNORED for key in changes):
        return False
    logged = "loss" if command == "sft" else "step_time_s"  # the rows an update writes
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if logged in r]
    return bool(steps) and max(steps) >= want.optim.steps


def config_of(task: str) -> dict:
    """configs/<task>-tiny.yaml as a dict (what the shipped recipe sets)."""
    import yaml

    return yaml.safe_load((ROOT / "configs" / f"{task}-tiny.yaml").read_text())


def start_of(task: str) -> str:
    """The SFT checkpoint configs/<task>-tiny.yaml starts RL from (its model.init, as the trainer
    resolves the config: a shipped name such as sokoban-deep8, or a folder): table 1's SFT column, the
    reward experiment's and the control's start."""
    from vrlvr.config import load_config
    from vrlvr.train.grpo_config import GRPOConfig

    return load_config(GRPOConfig, ROOT / "configs" / f"{task}-tiny.yaml").model.init


def provenance(*runs: Path) -> dict:
    """When and from which commit a result was measured (kept beside it in the JSON), and which of
    its ``runs`` were reused (--reuse) rather than trained by this invocation, with their dates."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    out = {"date": time.strftime("%Y-%m-%d"), "commit": (commit or "unknown") + ("+dirty" if dirty else "")}
    reused = {r.name: REUSED[r] for r in runs if r in REUSED}
    if reused:
        out["reused_runs"] = reused
    return out


def per_puzzle(policy, task, puzzles, video, steps, shift, samples: int, seed: int, sde=None) -> np.ndarray:
    """float [n_puzzles, len(METRICS)]: each metric averaged over ``samples`` videos per puzzle
    (Euler sampling, or ``sde``: a vrlvr.models.sampling.SdeWindow)."""
    from vrlvr.train.evaluate import evaluate_samples, loose_success

    rows = np.zeros((samples, len(puzzles), len(METRICS)))
    records = evaluate_samples(
        policy, task, puzzles, video, steps, shift, 48, samples, seed=seed, progress=False, sde=sde
    )
    for j, recs in enumerate(records):
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


def samples_per_puzzle(args) -> int:
    """Videos per held-out puzzle every policy is scored with: SAMPLES, one with --quick."""
    return 1 if getattr(args, "quick", False) else SAMPLES


def puzzle_share_ci(success: np.ndarray, samples: int, reps: int = 2000, seed: int = 0) -> dict | None:
    """vrlvr.train.evaluate.puzzle_share (does the policy solve some puzzles reliably, or every
    puzzle at the same odds?) with a 95% percentile interval over puzzles (resamples where it is
    undefined are left out); None when it is undefined on the puzzles themselves."""
    from vrlvr.train.evaluate import puzzle_share

    s = np.asarray(success, dtype=float)
    point = puzzle_share(s, samples)
    if point is None:
        return None
    rng = np.random.default_rng(seed)
    draws = [puzzle_share(s[rng.integers(0, len(s), len(s))], samples) for _ in range(reps)]
    draws = [d for d in draws if d is not None]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"mean": point, "ci95": [float(lo), float(hi)]}


def fmt_share(ci: dict | None) -> str:
    """A puzzle_share_ci as a table cell."""
    return f"{ci['mean']:.2f} [{ci['ci95'][0]:.2f}, {ci['ci95'][1]:.2f}]" if ci else "- (undefined)"


def stored(values: np.ndarray) -> list:
    """Per-puzzle values for the JSON (rows: puzzles, columns: METRICS; None for undefined), so
    that any two policies scored on the same puzzles can be compared later with a paired interval."""
    return [[None if np.isnan(x) else round(float(x), 4) for x in row] for row in values]


def held_out_eval(checkpoint: Path | str, run: Path, args) -> tuple[np.ndarray, dict]:
    """Per-puzzle metrics of a checkpoint on the run's held-out evaluation puzzles (the same puzzles
    for the SFT checkpoint and every RL policy of a task: the held-out set depends only on the
    config's heldout seed), plus the baselines on them. Memoised per invocation on what decides the
    numbers (the checkpoint, the puzzles, the video, the sampler): table4 and the reward experiment
    reuse table1's evaluation of the same policy, and a start shared by several ``--score`` runs is
    evaluated once."""
    memo = args.__dict__.setdefault("evals", {})
    task, puzzles, video, cfg = heldout_set(run, args)
    sampler = eval_sampler(cfg, args)
    where = Path(checkpoint)
    name = str(where.resolve()) if where.exists() else str(checkpoint)  # a path, or a shipped name
    key = (name, task.name, tuple(p.key for p in puzzles), video, sampler)
    if key not in memo:
        memo[key] = _held_out_eval(checkpoint, run, args)
    return memo[key]


def eval_sampler(cfg, args) -> tuple:
    """What of a run's config decides how its held-out videos are sampled: Euler steps and shift, and
    with --rollout-sampler also its SDE window, eta and mode (the evaluation memo's and the score
    cache's key)."""
    sampler = (cfg.sampling.steps, cfg.sampling.shift)
    if getattr(args, "rollout_sampler", False):
        sampler += (tuple(cfg.window()), cfg.sampling.eta, cfg.sampling.mode)
    return sampler


def is_sft_run(run: Path) -> bool:
    """Whether a run folder is a `vrlvr sft` run (its config has no grpo section) rather than a
    `vrlvr-train` run."""
    import yaml

    return "grpo" not in yaml.safe_load((run / "config.yaml").read_text())


def run_config(run: Path):
    """The resolved config of a `vrlvr-train` run (GRPOConfig) or a `vrlvr sft` run (SFTConfig)."""
    import yaml

    from vrlvr.config import build_config
    from vrlvr.train.grpo_config import GRPOConfig
    from vrlvr.train.sft_config import SFTConfig

    kind = SFTConfig if is_sft_run(run) else GRPOConfig
    return build_config(kind, yaml.safe_load((run / "config.yaml").read_text()))


def heldout_set(run: Path, args):
    """(task, puzzles, video, config) a run's policies are scored on: the first PUZZLES of the run's
    held-out puzzles. They depend only on the config's heldout seed and data and the starting
    checkpoint's held-out keys (not on the run's own eval settings), so every run of a task (any
    training seed, any recipe) is scored on the same puzzles as its SFT checkpoint."""
    from vrlvr.train.data import HELDOUT_FILE

    # memoised per invocation: generating the puzzles is the slow part, and the score table, the
    # evaluation memo and --against ask for the same run's set several times. Keyed on the files the
    # set is read from, so a run trained again under the same name is read again.
    memo = args.__dict__.setdefault("heldout_sets", {})
    key = (str(Path(run).resolve()), bool(args.quick)) + tuple(
        (Path(run) / f).read_text() if (Path(run) / f).is_file() else None
        for f in ("config.yaml", HELDOUT_FILE)
    )
    if key not in memo:
        memo[key] = _heldout_set(run, args)
    return memo[key]


def _heldout_set(run: Path, args):
    from vrlvr import tasks
    from vrlvr.train.data import VideoSpec, eval_puzzles, read_heldout

    cfg = run_config(run)
    if not hasattr(cfg, "grpo"):  # a `vrlvr sft` run: one task, its sizes and options
        name, sizes, options = cfg.data.task, cfg.data.sizes, cfg.data.options
    else:
        name = cfg.data.tasks[0]
        sizes, options = cfg.data.sizes_for(name), cfg.data.options_for(name)
    task = tasks.get(name)
    allowed = set(read_heldout(run, name)["keys"])
    n = QUICK_PUZZLES if args.quick else PUZZLES
    puzzles, _ = eval_puzzles(task, sizes, n, cfg.heldout.seed, allowed=allowed, options=options)
    video = VideoSpec(cfg.data.num_frames, cfg.data.cell_px, cfg.data.height, cfg.data.width)
    return task, puzzles, video, cfg


def _held_out_eval(checkpoint: Path | str, run: Path, args) -> tuple[np.ndarray, dict]:
    from vrlvr.train.evaluate import evaluate_baselines

    task, puzzles, video, _ = heldout_set(run, args)
    vals = prescored(checkpoint, run, args)  # evaluated by the pool (--jobs), or None
    if vals is None:
        vals = evaluated(checkpoint, run, args)
    return vals, evaluate_baselines(task, puzzles, video)


def evaluated(checkpoint: Path | str, run: Path, args) -> np.ndarray:
    """float [puzzles, len(METRICS)]: the checkpoint sampled on the run's held-out puzzles
    (samples_per_puzzle videos each, EVAL_SEED's noise), each metric averaged per puzzle."""
    from vrlvr.models import load_policy

    task, puzzles, video, cfg = heldout_set(run, args)
    policy = load_policy(checkpoint).eval()
    samples = samples_per_puzzle(args)
    sde = None
    if getattr(args, "rollout_sampler", False):  # the run's own rollout sampler (--score only)
        from vrlvr.models.sampling import SdeWindow

        sde = SdeWindow(*cfg.window(), cfg.sampling.eta, cfg.sampling.mode)
    return per_puzzle(
        policy, task, puzzles, video, cfg.sampling.steps, cfg.sampling.shift, samples, EVAL_SEED, sde
    )


def prescored(checkpoint: Path | str, run: Path, args) -> np.ndarray | None:
    """The per-puzzle values the pool's evaluation process wrote for this checkpoint on this run's
    puzzles (``--jobs``: the experiments then only read them), or None. The file is named by
    score_key, so it holds exactly the evaluation asked for; it lives for this invocation only."""
    folder = args.__dict__.get("prescored")
    if not folder:
        return None
    path = Path(folder) / f"{score_key(checkpoint, run, args)}.json"
    if not path.is_file():
        return None
    return np.array(json.loads(path.read_text())["values"], dtype=float)  # None (undefined) -> nan


def curves(run: Path, args) -> None:
    """The run's curves as curves_<run>.png in docs/ (or in OUT with --no-readme)."""
    from vrlvr.train.logger import plot_curves

    folder = Path(args.out) if args.no_readme else ROOT / "docs"
    plot_curves(run / "metrics.jsonl", folder / f"curves_{run.name}.png")


def timed_steps(run: Path, until: float | None = None) -> list[dict]:
    """A run's update rows (those with a step time), without the first: a warm-up (allocations,
    first-call compilation) that no median of the timings below should see. ``until`` (seconds
    since the epoch): only the updates that ended by then (runs side by side: while all of them
    ran; rows from before the trainer logged ``wall_time`` are all kept)."""
    from vrlvr.train.logger import read_metrics

    rows = [r for r in read_metrics(run / "metrics.jsonl") if "step_time_s" in r][1:]
    return [r for r in rows if until is None or r.get("wall_time", until) <= until]


def together_until(*runs: Path) -> float | None:
    """When the first of ``runs`` (trained side by side) logged its last update: past it, the
    others ran with the machine to themselves, and their steps no longer compare. None when a run
    has no ``wall_time`` (made before the trainer logged it)."""
    from vrlvr.train.logger import read_metrics

    ends = []
    for run in runs:
        times = [r.get("wall_time") for r in read_metrics(run / "metrics.jsonl") if "step_time_s" in r]
        if not times or any(t is None for t in times):
            return None
        ends.append(max(times))
    return min(ends) if ends else None


def step_times(run: Path, until: float | None = None) -> list[float]:
    return [r["step_time_s"] for r in timed_steps(run, until)]


def phase_times(run: Path, until: float | None = None) -> dict:
    """Median seconds per step of each phase: rollouts (sampling every step of every video; the
    window's steps with the adapter as the update runs it, the others with it folded into the base
    weights, a little cheaper), verify, and the update (forward + backward on the window's steps)."""
    rows = timed_steps(run, until)
    keys = {"rollout": "rollout_time_s", "verify": "verify_time_s", "update": "train_time_s"}
    return {k: statistics.median(r.get(m, 0.0) for r in rows) if rows else 0.0 for k, m in keys.items()}


def step_cost(run: Path, until: float | None = None) -> dict:
    """A run's step time split into what every step pays and what grows with the training it does:
    ``fixed_s`` the rollouts and verification (every sampling step of every video, whatever the
    window but for the adapter folded outside it),
    ``per_sample_s`` the update's time per contributing sample (a forward and backward per
    window step). A sparse-reward step trains only the groups that vary, 0 to all of them from one
    step to the next, so a run's median step follows how many varied in it as much as its window;
    ``fixed_s + per_sample_s * n`` compares two windows at the same training work n. Medians over the
    steps after the first; ``contributing`` each step's contributing samples."""
    rows = timed_steps(run, until)
    return _step_cost(rows) | {"contributing": [int(r.get("contributing", 0)) for r in rows]}


def _step_cost(rows: list[dict]) -> dict:
    fixed = [r.get("rollout_time_s", 0.0) + r.get("verify_time_s", 0.0) for r in rows]
    trained = [r for r in rows if r.get("contributing") and "train_time_s" in r]
    per = [r["train_time_s"] / r["contributing"] for r in trained]
    return {
        "fixed_s": statistics.median(fixed) if fixed else 0.0,
        "per_sample_s": statistics.median(per) if per else 0.0,
    }


#: table4's step times are compared only if neither run's rollouts (the same work every step: B x G
#: videos, every sampling step) took this much longer in one fifth of the run than in another; past
#: it, the machine's speed drifted under the run (another job, a throttled CPU) and the tables say so
DRIFT_LIMIT = 1.2


def rollout_drift(run: Path, parts: int = 5, until: float | None = None) -> float:
    """Slowest over fastest median rollout time of ``parts`` consecutive stretches of a run's steps
    (after the first): about 1 on a steady machine, whatever the window or the reward, since every
    step (every round of dynamic sampling) rolls out the same number of videos over every sampling
    step."""
    rows = [r for r in timed_steps(run, until) if "rollout_time_s" in r]
    times = [r["rollout_time_s"] / max(r.get("rounds", 1), 1) for r in rows]  # dynamic sampling: per round
    parts = min(parts, len(times))
    if parts < 2:
        return 1.0
    meds = [statistics.median(chunk) for chunk in np.array_split(np.array(times), parts)]
    return float(max(meds) / max(min(meds), 1e-9))


def matched_ratio(
    a: Path, b: Path, n: float, reps: int = 2000, seed: int = 0, until: float | None = None
) -> dict:
    """(fixed + per_sample * n) of run ``a`` over run ``b``: their step time ratio at the same training
    work, n contributing samples a step, with a 95% interval from resampling each run's steps."""
    rows = [timed_steps(a, until), timed_steps(b, until)]

    def ratio(ra, rb) -> float:
        ca, cb = _step_cost(ra), _step_cost(rb)
        return (ca["fixed_s"] + ca["per_sample_s"] * n) / max(cb["fixed_s"] + cb["per_sample_s"] * n, 1e-9)

    rng = np.random.default_rng(seed)
    boot = [
        ratio(
            [rows[0][i] for i in rng.integers(0, len(rows[0]), len(rows[0]))],
            [rows[1][i] for i in rng.integers(0, len(rows[1]), len(rows[1]))],
        )
        for _ in range(reps if rows[0] and rows[1] else 0)
    ]
    est = ratio(rows[0], rows[1])
    ci = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if boot else [est, est]
    return {"samples": n, "ratio": est, "ci95": ci}


def maze_every(args) -> list[str]:
    return MAZE_EVAL_EVERY["quick" if args.quick else "full"]


def rl_run(task: str, args) -> Path:
    """The RL run of configs/<task>-tiny.yaml as shipped (table1; reused by the other experiments)."""
    return train(f"{task}-rl", *rl_recipe(task, args), args)


def rl_recipe(task: str, args) -> tuple[Path, list[str]]:
    """(config, overrides) of ``rl_run``."""
    return ROOT / "configs" / f"{task}-tiny.yaml", maze_every(args) if task == "maze" else []


def kind_run(task: str, kind: str, args) -> Path:
    """The shipped recipe with ``reward.kind`` set to ``kind`` (the shipped run itself when it
    already uses that kind)."""
    return train(*kind_recipe(task, kind, args), args)


def kind_recipe(task: str, kind: str, args) -> tuple[str, Path, list[str]]:
    """(name, config, overrides) of ``kind_run``."""
    if config_of(task).get("reward", {}).get("kind", "dense") == kind:
        return (f"{task}-rl", *rl_recipe(task, args))
    extra = maze_every(args) if task == "maze" else []
    return f"{task}-rl-{kind}", ROOT / "configs" / f"{task}-tiny.yaml", [f"reward.kind={kind}", *extra]


def seed_runs(task: str, args) -> list[Path]:
    """Table 1's RL run and, for the ``--seed-tasks``, ``--seeds - 1`` more of the same recipe with the
    next training seeds (``seed`` = the config's + 1, + 2, ...: another LoRA initialisation, other
    puzzle draws and noise): the intervals over puzzles of one run do not show how much a rerun of
    training moves the gain (on maze, more than they say)."""
    return [train(*recipe, args) for recipe in seed_recipes(task, args)]


def seed_recipes(task: str, args) -> list[tuple[str, Path, list[str]]]:
    """(name, config, overrides) of each of ``seed_runs``, table 1's run first."""
    base = int(config_of(task).get("seed", 0))
    recipes = [(f"{task}-rl", *rl_recipe(task, args))]
    for k in range(1, args.seeds if task in args.seed_tasks else 1):
        config = ROOT / "configs" / f"{task}-tiny.yaml"
        # eval.n=0: the trainer's own before/after evaluation would only repeat the scoring below
        recipes.append((f"{task}-rl-seed{base + k}", config, [f"seed={base + k}", "eval.n=0"]))
    return recipes


def seed_bootstrap(gains: np.ndarray, reps: int = 2000, seed: int = 0) -> dict:
    """gains [seeds, puzzles, metrics] (each training seed's paired gain on the same puzzles) -> the
    mean over seeds and puzzles and its 95% interval from a two-way bootstrap that resamples the
    training seeds and the puzzles (a crossed design: every seed is scored on every puzzle). The
    interval counts both spreads: what a rerun of training gives, and which puzzles were drawn."""
    rng = np.random.default_rng(seed)
    S, P = gains.shape[:2]
    si = rng.integers(0, S, size=(reps, S))
    pi = rng.integers(0, P, size=(reps, P))
    means = np.nanmean(gains[si[:, :, None], pi[:, None, :]], axis=(1, 2))  # [reps, metrics]
    lo, hi = np.nanpercentile(means, [2.5, 97.5], axis=0)
    mean = np.nanmean(gains, axis=(0, 1))
    return {m: {"mean": float(mean[k]), "ci95": [float(lo[k]), float(hi[k])]} for k, m in enumerate(METRICS)}


def exp_table1(args) -> dict:
    out = {}
    for task in args.tasks:
        runs = seed_runs(task, args)
        run = runs[0]
        start = start_of(task)
        sft_vals, baselines = held_out_eval(start, run, args)
        rl_vals, _ = held_out_eval(run / "final", run, args)
        out[task] = {
            "sft_checkpoint": start,
            "puzzles": len(sft_vals),
            "samples": samples_per_puzzle(args),
            "recipe": config_summary(run),
            "median_step_time_s": statistics.median(step_times(run) or [0.0]),
            "sft": bootstrap(sft_vals),
            "rl": bootstrap(rl_vals),
            "gain": bootstrap(rl_vals - sft_vals),
            "baselines": baselines,
            "per_puzzle": {"metrics": list(METRICS), "sft": stored(sft_vals), "rl": stored(rl_vals)},
            "measured": provenance(run),
        }
        seed_vals = [rl_vals]  # per-puzzle values of each training seed, table 1's run first
        if len(runs) > 1:
            keys = [p.key for p in heldout_set(run, args)[1]]
            for other in runs[1:]:  # the pairing below needs the very same puzzles
                if [p.key for p in heldout_set(other, args)[1]] != keys:
                    raise SystemExit(f"[reproduce] {other.name} is scored on other puzzles than {run.name}")
            seed_vals += [held_out_eval(r / "final", r, args)[0] for r in runs[1:]]
            gains = np.stack([v - sft_vals for v in seed_vals])  # [seeds, puzzles, metrics]
            out[task]["seeds"] = {
                "seeds": [int(config_summary(r)["seed"]) for r in runs],
                "gain_per_seed": [bootstrap(g) for g in gains],
                "gain": seed_bootstrap(gains),
                "per_puzzle_rl": [stored(v) for v in seed_vals[1:]],
                "measured": provenance(*runs),
            }
        if task in args.sft_control:
            out[task]["sft_control"] = sft_control(task, run, sft_vals, seed_vals, args)
        curves(run, args)  # the other seeds' curves stay in their run folders
    return out


def sft_control(task: str, rl_run_dir: Path, sft_vals: np.ndarray, seed_vals: list[np.ndarray], args) -> dict:
    """More SFT for RL's compute (SFT_CONTROL), scored on table 1's puzzles with table 1's sampler and
    paired against the SFT checkpoint and against each RL training seed."""
    from vrlvr.train.data import read_heldout

    run = train(*control_recipe(task, args), args, command="sft")
    # never scored on a puzzle the control trained on: table 1's puzzles must be in its held-out set
    keys = {p.key for p in heldout_set(rl_run_dir, args)[1]}
    if not keys <= set(read_heldout(run, task)["keys"]):
        raise SystemExit(f"[reproduce] {run.name}: table 1's {task} puzzles are not all in its held-out set")
    vals, _ = held_out_eval(run / "final", rl_run_dir, args)
    rl_minus = np.stack([v - vals for v in seed_vals])  # [seeds, puzzles, metrics]
    o = run_config(run).optim
    return {
        "recipe": {"steps": o.steps, "batch_size": o.batch_size, "lr": o.lr, "warmup_steps": o.warmup_steps}
        | {"decay": o.decay},
        "wall_s": wall_seconds(run),
        "rl_wall_s": wall_seconds(rl_run_dir),
        "more_sft": bootstrap(vals),
        "gain": bootstrap(vals - sft_vals),
        "rl_minus_control": bootstrap(seed_vals[0] - vals),
        "rl_minus_control_over_seeds": seed_bootstrap(rl_minus) if len(seed_vals) > 1 else None,
        "per_puzzle": stored(vals),
        "measured": provenance(run),
    }


def control_recipe(task: str, args) -> tuple[str, Path, list[str]]:
    """(name, config, overrides) of the control's `vrlvr sft` run."""
    overrides = [f"model.path={start_of(task)}", *([] if args.quick else SFT_CONTROL)]
    return f"{task}-sft-more", ROOT / "configs" / f"{task}-tiny-sft.yaml", overrides


def wall_seconds(run: Path) -> float | None:
    """A run's wall time as it logged it (its last elapsed_s; an RL run's includes its evaluations)."""
    from vrlvr.train.logger import read_metrics

    rows = [r for r in read_metrics(run / "metrics.jsonl") if "elapsed_s" in r]
    return round(rows[-1]["elapsed_s"], 1) if rows else None


def config_summary(run: Path) -> dict:
    """The recipe knobs a reader compares runs by, read from the run's own config.yaml."""
    import yaml

    c = yaml.safe_load((run / "config.yaml").read_text())
    g, r, o = c.get("grpo", {}), c.get("reward", {}), c.get("optim", {})
    return {
        "steps": o.get("steps"),
        "lr": o.get("lr"),
        "reward": f"{r.get('kind', 'dense')}/{r.get('preset', 'default')}",
        "prompts_x_group": f"{g.get('prompts_per_step')}x{g.get('group_size')}",
        "sde_window": g.get("sde_window"),
        "loss": g.get("loss", "ppo"),
        "beta": g.get("beta"),
        "seed": c.get("seed", 0),
    }


def exp_table4(args) -> dict:
    """The window on the first half of the sampling steps vs all of them, everything else as
    shipped except the number of updates (TABLE4_STEPS: the question is the step time and whether
    the first half keeps the quality, not the best policy)."""
    steps = table4_sampling_steps(args)
    # side by side, a core each: a machine that slows down slows both runs, and only the steps both
    # ran together are timed
    runs = train_side_by_side(table4_recipes(args), args)
    until = together_until(*runs.values())
    if until is not None and not all(timed_steps(r, until) for r in runs.values()):
        until = None  # no step of one run ended while both ran (--quick's 2 steps): time them all
    t = {k: statistics.median(step_times(r, until)) for k, r in runs.items()}
    cost = {k: step_cost(r, until) for k, r in runs.items()}
    drift = {k: rollout_drift(r, until=until) for k, r in runs.items()}
    if max(drift.values()) > DRIFT_LIMIT:
        print(
            f"[reproduce] table4: the machine's speed drifted during the runs (rollout time, slowest "
            f"over fastest fifth: {', '.join(f'{k} {v:.2f}' for k, v in drift.items())}): the step "
            "times are not comparable; rerun table4 on a quiet machine",
            file=sys.stderr,
            flush=True,
        )
    both = cost["first_half"]["contributing"] + cost["all_steps"]["contributing"]
    mean_n = float(np.mean(both)) if both else 0.0
    g = run_config(runs["all_steps"]).grpo
    every = g.prompts_per_step * g.group_size  # a step's samples: all of them train with a dense reward
    vals = {k: held_out_eval(r / "final", r, args)[0] for k, r in runs.items()}
    # the shipped window's step time, for scale: table 1's run, when this invocation has it (table1
    # ran, or --reuse finds it); table4 alone does not train a 100-update run for one line
    shipped = rl_run("maze", args) if at_hand("maze-rl", *rl_recipe("maze", args), args) else None
    return {
        "updates": TABLE4_STEPS if not args.quick else None,
        "windows": {"first_half": [0, steps // 2], "all_steps": [0, steps]},
        "median_step_time_s": t,
        "step_time_ratio": t["first_half"] / t["all_steps"],
        # how the two were timed: trained at once with these threads each, on the steps that ended
        # while both ran (None: one after the other, or runs from before the trainer logged the time)
        "side_by_side": {
            "threads": {k: run_config(r).threads for k, r in runs.items()},
            "timed_updates": {k: len(timed_steps(r, until)) for k, r in runs.items()},
            "until": until,
        },
        "phase_median_s": {k: phase_times(r, until) for k, r in runs.items()},
        # the same training work in both: the runs' mean contributing samples a step, and all of them
        "step_cost": {k: {m: c[m] for m in ("fixed_s", "per_sample_s")} for k, c in cost.items()},
        "mean_contributing": {k: float(np.mean(c["contributing"] or [0])) for k, c in cost.items()},
        "contributing_range": [min(both or [0]), max(both or [0])],
        "rollout_drift": drift,
        "ratio_at_mean_work": matched_ratio(runs["first_half"], runs["all_steps"], mean_n, until=until),
        "ratio_all_trained": matched_ratio(runs["first_half"], runs["all_steps"], float(every), until=until),
        "goal_ratio": 0.6,
        "first_half": bootstrap(vals["first_half"]),
        "all_steps": bootstrap(vals["all_steps"]),
        "first_half_minus_all": bootstrap(vals["first_half"] - vals["all_steps"]),
        **(
            {
                "shipped": {
                    "sde_window": config_summary(shipped)["sde_window"],
                    "median_step_time_s": statistics.median(step_times(shipped)),
                }
            }
            if shipped
            else {}
        ),
        "measured": provenance(*runs.values(), *([shipped] if shipped else [])),
    }


def table4_sampling_steps(args) -> int:
    """Sampling steps of table4's runs: all steps = the window [0, steps), the first half [0, steps // 2)."""
    return config_of("maze")["sampling"]["steps"] if not args.quick else 4


def table4_recipes(args) -> dict[str, tuple[str, Path, list[str]]]:
    """{window: (name, config, overrides)} of table4's two runs."""
    steps = table4_sampling_steps(args)
    n_updates = [] if args.quick else [f"optim.steps={TABLE4_STEPS}"]
    config = ROOT / "configs" / "maze-tiny.yaml"
    return {
        "first_half": ("maze-esf-first-half", config, [f"grpo.sde_window=[0,{steps // 2}]", *n_updates]),
        "all_steps": ("maze-esf-all-steps", config, [f"grpo.sde_window=[0,{steps}]", *n_updates]),
    }


def exp_reward(args) -> dict:
    out = {}
    for task in [t for t in ("maze", "flowfree") if t in args.tasks]:
        runs = {kind: kind_run(task, kind, args) for kind in ("dense", "sparse")}
        shipped = rl_run(task, args)
        sft_vals, _ = held_out_eval(start_of(task), shipped, args)
        vals = {kind: held_out_eval(r / "final", r, args)[0] for kind, r in runs.items()}
        out[task] = {
            "sft_checkpoint": start_of(task),
            "shipped": config_of(task).get("reward", {}).get("kind", "dense"),
            "sft": bootstrap(sft_vals),
            **{kind: bootstrap(v) for kind, v in vals.items()},
            **{f"{kind}_gain": bootstrap(v - sft_vals) for kind, v in vals.items()},
            "sparse_minus_dense": bootstrap(vals["sparse"] - vals["dense"]),
            "per_puzzle": {"metrics": list(METRICS), **{kind: stored(v) for kind, v in vals.items()}},
            "measured": provenance(*runs.values(), shipped),
        }
        for r in runs.values():
            curves(r, args)
    return out


def exp_hack(args) -> dict:
    """The paper's reward preset vs the project's default, both dense (the sparse reward pays no
    partial credit, so there is nothing to flood) and both with the KL off."""
    from vrlvr.train.logger import read_metrics

    runs = {"default": kind_run("maze", "dense", args), "paper_no_kl": train(*hack_recipe(args), args)}
    out = {}
    for name, run in runs.items():
        evals = [r for r in read_metrics(run / "metrics.jsonl") if "eval" in r]
        out[name] = {
            "step": [e["step"] for e in evals],
            "success_rate": [e["eval"]["success_rate"] for e in evals],
            "loose_success_rate": [e["eval"]["loose_success_rate"] for e in evals],
            "recipe": config_summary(run),
            "measured": provenance(run),
        }
        curves(run, args)
    return out


def hack_recipe(args) -> tuple[str, Path, list[str]]:
    """(name, config, overrides) of the hack experiment's run with the paper's preset and no KL."""
    overrides = ["reward.kind=dense", "reward.preset=paper", "grpo.beta=0", *maze_every(args)]
    return "maze-rl-paper-nokl", ROOT / "configs" / "maze-tiny.yaml", overrides


def planned(todo: list[str], args) -> tuple[list[tuple[str, Path, list[str], str]], list[dict]]:
    """The runs the experiments in ``todo`` will ask for, from the same recipes they train: (runs
    that may train beside any other, as (name, config, overrides, command) in the order the
    experiments need them; groups timed side by side, {key: (name, config, overrides)}: table4's)."""
    runs: dict[str, tuple[str, Path, list[str], str]] = {}

    def add(recipe: tuple[str, Path, list[str]], command: str = "train") -> None:
        runs.setdefault(recipe[0], (*recipe, command))

    groups = []
    if "table1" in todo:
        for task in args.tasks:
            for recipe in seed_recipes(task, args):
                add(recipe)
            if task in args.sft_control:
                add(control_recipe(task, args), "sft")
    if "table4" in todo:
        groups.append(table4_recipes(args))
    if "reward" in todo:
        for task in [t for t in ("maze", "flowfree") if t in args.tasks]:
            for kind in ("dense", "sparse"):
                add(kind_recipe(task, kind, args))
    if "hack" in todo:
        add(kind_recipe("maze", "dense", args))
        add(hack_recipe(args))
    return list(runs.values()), groups


def run_cost(config: Path, overrides: list[str], command: str, args) -> float:
    """A run's rough cost, to start the longest first: updates x videos per update x model blocks,
    an SFT video (one forward and backward, no rollouts) counted as a quarter of an RL one."""
    from vrlvr.config import build_config
    from vrlvr.train.grpo_config import GRPOConfig
    from vrlvr.train.sft_config import SFTConfig

    full = full_overrides(overrides, args, command)
    if command == "sft":
        cfg = build_config(SFTConfig, config, full)
        videos, start, weight = cfg.optim.batch_size, cfg.model.path, 0.25
    else:
        cfg = build_config(GRPOConfig, config, full)
        videos, start, weight = cfg.grpo.prompts_per_step * cfg.grpo.group_size, cfg.model.init, 1.0
    return cfg.optim.steps * videos * blocks_of(start) * weight


def blocks_of(checkpoint: Path | str) -> int:
    """A checkpoint's transformer blocks (its policy.json), for the pool's costs; 4 where unknown (a
    Wan folder, a start made elsewhere)."""
    from vrlvr.models import resolve_checkpoint

    try:
        policy = Path(resolve_checkpoint(str(checkpoint))) / "policy.json"
        return int(json.loads(policy.read_text())["config"]["num_layers"])
    except (OSError, KeyError, TypeError, ValueError):
        return 4


def scores_planned(todo: list[str], args) -> list[tuple[str, str, frozenset[str]]]:
    """The evaluations the experiments in ``todo`` will ask held_out_eval for, from the same recipes
    they train: (checkpoint, name of the run whose held-out puzzles it is scored on, names of the
    runs that must be made first), each once."""
    runs_dir = Path(args.out).resolve() / "runs"
    wanted: dict[tuple[str, str], frozenset[str]] = {}

    def add(checkpoint: str, run: str, *needs: str) -> None:
        wanted.setdefault((checkpoint, run), frozenset({run, *needs}))

    def final(name: str) -> str:
        return str(runs_dir / name / "final")

    if "table1" in todo:
        for task in args.tasks:
            names = [recipe[0] for recipe in seed_recipes(task, args)]
            add(start_of(task), names[0])
            for name in names:
                add(final(name), name)
            if task in args.sft_control:
                control = control_recipe(task, args)[0]
                add(final(control), names[0], control)  # scored on table 1's puzzles
    if "table4" in todo:
        for name, _, _ in table4_recipes(args).values():
            add(final(name), name)
    if "reward" in todo:
        for task in [t for t in ("maze", "flowfree") if t in args.tasks]:
            add(start_of(task), f"{task}-rl")  # paired against the shipped run's puzzles
            for kind in ("dense", "sparse"):
                name = kind_recipe(task, kind, args)[0]
                add(final(name), name)
    return [(checkpoint, run, needs) for (checkpoint, run), needs in wanted.items()]


def launch_evaluation(checkpoint: str, run: Path, threads: int, args):
    """Start one pool evaluation process (this script with ``--evaluate``) -> the job, as launch's."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--evaluate", checkpoint, str(run)]
    cmd += ["--into", str(args.prescored), "--out", str(args.out), "--threads", str(threads)]
    cmd += ["--quick"] if args.quick else []
    print(f"[reproduce] evaluating {checkpoint} on {run.name}'s puzzles", file=sys.stderr, flush=True)
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=Path(args.out).resolve(), text=True, stdout=log, stderr=log)
    return proc, log, time.time()


def train_planned(todo: list[str], args) -> None:
    """``--jobs`` N > 1: before any experiment scores, train every run the experiments in ``todo``
    will ask for and evaluate every policy they will score, N processes at a time with an equal
    share of the cores each (``threads=cores // N``): the costliest runs first, then the
    evaluations, each as soon as its runs are made. The experiments then find the runs made and
    read the evaluations (prescored). Several small runs side by side, one thread each, do more
    updates per hour than one at a time with all the cores (on 2 cores: table 1's maze runs trained
    in 44.1 minutes instead of 53.3, 1.21x; two 12-block runs 1.4x; README), and evaluations fill
    the cores the last runs leave idle.

    Table 4's two windows, whose step times are compared, start first and alone, side by side, as
    ``exp_table4`` trains them: nothing else starts until one of them ends (only the updates that
    ended while both ran are timed), then the pool fills the cores it leaves. A process that fails
    stops new ones from starting; the others finish, then the script exits with every failure's log."""
    if args.jobs <= 1:
        return  # one run at a time, each trained when its experiment needs it, with its config's threads
    singles, groups = planned(todo, args)
    queue: list[list[tuple[str, list[str], Path, list[str]]]] = []  # groups of runs timed together
    for group in groups:
        prepared = [
            (name, overrides, *prepare(name, config, overrides, args))
            for name, config, overrides in group.values()
        ]
        queue.append(
            [(name, overrides, folder, cmd) for name, overrides, folder, cmd in prepared if cmd is not None]
        )
    pending = []
    for name, config, overrides, command in singles:
        folder, cmd = prepare(name, config, overrides, args, command)
        if cmd is not None:
            pending.append((run_cost(config, overrides, command, args), name, overrides, folder, cmd))
    pending.sort(key=lambda p: -p[0])  # longest first: the last to finish are short
    queue = [g for g in queue if g]
    runs_dir = Path(args.out).resolve() / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    # this invocation's evaluations only (removed by main): never a stale score from an earlier one
    args.prescored = Path(tempfile.mkdtemp(prefix=".evaluations-", dir=runs_dir))
    waiting = scores_planned(todo, args)
    made = args.__dict__.setdefault("runs_made", {})
    t0, running, failed = time.time(), [], []  # running: (kind, what, job, slots it takes)
    # a group's runs, until one of them ends: nothing else starts beside them (one run alone keeps
    # its config's threads, as train_side_by_side does)
    together: set[str] = set()
    while True:
        while not failed and not together:
            free = args.jobs - sum(r[3] for r in running)
            if queue:  # a group starts alone, its runs an equal share of the cores each
                if running:
                    break
                group = queue.pop(0)
                threads = max(1, cores() // len(group)) if len(group) > 1 else None
                for name, overrides, folder, cmd in group:
                    job = launch(name, cmd, threads, args)
                    running.append(("run", (name, overrides, folder), job, max(1, args.jobs // len(group))))
                together = {name for name, *_ in group}
                break
            if free < 1:
                break
            if pending:
                # a run's share of the cores; one run alone (nothing else to do until it ends) takes all
                beside = len(pending) + sum(r[0] == "run" for r in running)
                beside += sum(w[2] <= made.keys() for w in waiting)
                threads = max(1, cores() // min(args.jobs, max(1, beside)))
                _, name, overrides, folder, cmd = pending.pop(0)
                running.append(("run", (name, overrides, folder), launch(name, cmd, threads, args), 1))
                continue
            # the deepest policy first, as the runs: the last evaluations to finish are short
            ready = sorted((w for w in waiting if w[2] <= made.keys()), key=lambda w: -blocks_of(w[0]))
            if not ready:
                break
            waiting.remove(ready[0])
            checkpoint, run = ready[0][0], made[ready[0][1]][0]
            job = launch_evaluation(checkpoint, run, max(1, cores() // args.jobs), args)
            running.append(("evaluation", (checkpoint, run), job, 1))
        if not running:
            break
        done = [r for r in running if r[2][0].poll() is not None]
        if not done:
            time.sleep(1)
            continue
        for r in done:
            running.remove(r)
            kind, what, job, _ = r
            if kind == "run":
                failure = landed(*what, job, args)
            else:
                failure = failure_of(job, f"evaluating {what[0]} on {what[1].name}'s puzzles")
            if failure:
                failed.append(failure)
            together = set()  # one of a group ended: the updates timed together are over
    if failed:
        raise SystemExit("\n".join(failed))
    # an evaluation whose runs were never made (none should be) is left to the experiments
    print(f"[reproduce] runs trained and evaluated in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)


def task_label(task: str, entry: dict) -> str:
    """A table row's task: a recipe that starts from another SFT checkpoint than the shipped
    <task>-tiny says so ("flowfree (SFT: flowfree-deep8)"); entries written before the start was
    kept were all from <task>-tiny."""
    start = entry.get("sft_checkpoint", f"{task}-tiny")
    return task if start == f"{task}-tiny" else f"{task} (SFT: {start})"


def fmt(ci: dict, key: str, scale: float = 100.0) -> str:
    m = ci[key]
    return f"{scale * m['mean']:.1f} [{scale * m['ci95'][0]:.1f}, {scale * m['ci95'][1]:.1f}]"


def score(args) -> str:
    """Each checkpoint of ``--score`` beside its run's SFT checkpoint (``model.init``) on the run's
    held-out puzzles, as table1 scores them: means and paired gains with 95% intervals. With
    ``--rollout-sampler`` both are sampled as the run rolled out (its SDE window, eta and mode).
    A checkpoint of a `vrlvr sft` run warm-started from a checkpoint (``model.path``) is paired
    against that start: more SFT for the compute an RL run takes, the control RL must beat.
    Checkpoints of the same kind of run paired with the same start on the same puzzles (one recipe,
    several training seeds) also get a row with their mean gain and its interval over the runs and
    the puzzles. A second table gives each checkpoint's puzzle share (puzzle_share_ci)."""
    import yaml

    sampler = "the run's rollout sampler (SDE window)" if args.rollout_sampler else "Euler sampling"
    lines = [
        f"Sampled with {sampler}.",
        "",
        "| checkpoint | paired with | its success | success | gain | F1 gain | reward gain |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    # (the start's bytes, puzzle keys, run kind) -> (the start's name as first given, [per-puzzle
    # gains of each checkpoint against it], [the run of each]): a start named by its folder in one
    # run's config and by its shipped name in another's is one start
    paired: dict[tuple, tuple[str, list, list]] = {}
    # (checkpoint bytes, puzzle keys) -> (its name, per-puzzle success) for the puzzle-share table
    shares: dict[tuple, tuple[str, np.ndarray]] = {}

    def row(ck, base, base_name, run):
        ref = scored(base, run, args)
        new = scored(ck, run, args)
        puzzles = tuple(p.key for p in heldout_set(run, args)[1])
        start = fingerprint(base)
        col = METRICS.index("success_rate")
        shares.setdefault((start, puzzles), (str(base), ref[:, col]))  # a start once, by its bytes
        shares.setdefault((fingerprint(ck), puzzles), (str(ck), new[:, col]))
        kind = "vrlvr sft" if is_sft_run(run) else "vrlvr-train"
        _, gains, runs = paired.setdefault((start, puzzles, kind), (base_name, [], []))
        gains.append(new - ref)
        runs.append(Path(run).resolve())
        gain = bootstrap(new - ref)
        return (
            f"| {ck} | {base_name} | {fmt(bootstrap(ref), 'success_rate')} | "
            f"{fmt(bootstrap(new), 'success_rate')} | {fmt(gain, 'success_rate')} | {fmt(gain, 'f1')} | "
            f"{fmt(gain, 'mean_reward')} |"
        )

    for ck in args.score:
        ck = Path(ck).resolve()
        run = next((d for d in [ck, *ck.parents] if (d / "config.yaml").is_file()), None)
        if run is None or not (ck / "policy.json").is_file():
            raise SystemExit(
                f"--score {ck}: not a checkpoint of a vrlvr-train or vrlvr sft run "
                "(no policy.json in it, or no config.yaml in it or above it)"
            )
        model = yaml.safe_load((run / "config.yaml").read_text())["model"]
        if is_sft_run(run):  # more SFT from a checkpoint: the control with the same extra compute
            if args.rollout_sampler:
                raise SystemExit(
                    f"--score {ck}: a `vrlvr sft` run has no rollout sampler (drop --rollout-sampler)"
                )
            if not model.get("path"):
                raise SystemExit(
                    f"--score {ck}: this `vrlvr sft` run started from scratch: no checkpoint to pair it with"
                )
            init = model["path"]
        else:
            init = model["init"]
        lines.append(row(ck, init, f"{init} (its start)", run))
        start = _resolved(init)
        for other in args.against or []:
            folder = check_against(other, run, args)
            if folder.resolve() == start:  # its own start: the row above already says it
                continue
            lines.append(row(ck, folder, other, run))
    # Several runs paired with the same start on the same puzzles (a recipe trained with several
    # seeds): their mean gain, with the two-way interval over runs and puzzles. Two checkpoints of
    # one run are not two draws of a recipe: no mean then.
    for (_, _, kind), (base_name, gains, runs) in paired.items():
        if len(gains) > 1 and len(set(runs)) == len(runs):
            mean = seed_bootstrap(np.stack(gains))
            lines.append(
                f"| mean over these {len(gains)} {kind} runs | {base_name} | - | - | "
                f"{fmt(mean, 'success_rate')} | {fmt(mean, 'f1')} | {fmt(mean, 'mean_reward')} |"
            )
    samples = samples_per_puzzle(args)
    lines += [
        "",
        f"The puzzle's share of whether a video succeeds (intraclass correlation over the {samples} "
        "samples of each puzzle, [95% CI over puzzles]; 1: every puzzle always or never solved, 0: every "
        "puzzle solved at the same rate, the noise alone decides):",
        "",
        "| checkpoint | puzzles | success | puzzle share |",
        "| --- | --- | --- | --- |",
    ]
    for name, success in shares.values():
        cell = fmt_share(puzzle_share_ci(success, samples))
        lines.append(f"| {name} | {len(success)} | {100 * np.nanmean(success):.1f} | {cell} |")
    return "\n".join(lines)


#: --score keeps each checkpoint's per-puzzle values here (in OUT), so that scoring one more training
#: seed beside the earlier ones evaluates only the new checkpoint
SCORES_FILE = "scores.json"


def fingerprint(checkpoint: Path | str) -> str:
    """sha256 over a checkpoint folder's files (names and bytes): a run trained again under the same
    name, or a shipped checkpoint replaced, is a new entry of the score cache, never a stale one."""
    import hashlib

    from vrlvr.models import resolve_checkpoint

    folder = Path(resolve_checkpoint(str(checkpoint)))
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def read_scores(path: Path) -> dict:
    """OUT/scores.json, or {} when there is none; a file that is not a score cache (edited by hand,
    truncated by a full disk) is set aside as <name>.bad with a warning: it only costs evaluations."""
    if not path.is_file():
        return {}
    try:
        cache = json.loads(path.read_text())
        if isinstance(cache, dict) and all(isinstance(v, dict) and "values" in v for v in cache.values()):
            return cache
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    bad = path.with_name(path.name + ".bad")
    path.replace(bad)
    print(f"[reproduce] {path} is not a score cache: moved to {bad}, evaluating afresh", file=sys.stderr)
    return {}


def score_key(checkpoint: Path | str, run: Path, args) -> str:
    """sha256 over everything that decides a checkpoint's held-out values: the checkpoint's bytes,
    the task, the puzzles, the video, the sampler, the samples per puzzle and the sampling seed."""
    import dataclasses
    import hashlib

    task, puzzles, video, cfg = heldout_set(run, args)
    what = {
        "checkpoint": fingerprint(checkpoint),
        "task": task.name,
        "puzzles": [p.key for p in puzzles],
        "video": dataclasses.asdict(video),
        "sampler": eval_sampler(cfg, args),
        "samples": samples_per_puzzle(args),
        "seed": EVAL_SEED,
        "metrics": list(METRICS),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def exact_values(vals: np.ndarray) -> list:
    """Per-puzzle values at full precision for JSON (a float round-trips exactly; nan -> None)."""
    return [[None if np.isnan(x) else float(x) for x in row] for row in vals]


def scored(checkpoint: Path | str, run: Path, args) -> np.ndarray:
    """held_out_eval's per-puzzle values, kept in OUT/scores.json between --score invocations: keyed
    on everything that decides them (score_key), so a hit is the same evaluation again."""
    task = heldout_set(run, args)[0]
    key = score_key(checkpoint, run, args)
    path = Path(args.out) / SCORES_FILE
    cache = read_scores(path)
    if key in cache:
        print(f"[reproduce] {checkpoint}: per-puzzle scores from {path}", file=sys.stderr, flush=True)
        return np.array(cache[key]["values"], dtype=float)  # None (undefined) -> nan
    vals, _ = held_out_eval(checkpoint, run, args)
    cache = read_scores(path)  # re-read: keep what another invocation wrote meanwhile
    # full precision: a hit gives what the evaluation gave
    cache[key] = {"checkpoint": str(checkpoint), "task": task.name, "values": exact_values(vals)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cache) + "\n")
    tmp.replace(path)  # atomic: an interrupted write never leaves a broken cache
    return vals


def evaluate_into(checkpoint: str, run: Path, folder: Path, args) -> Path:
    """The pool's evaluation process (``--evaluate``): the checkpoint's per-puzzle values on the run's
    held-out puzzles, written atomically to FOLDER/<score_key>.json for prescored to read."""
    vals = evaluated(checkpoint, run, args)
    path = folder / f"{score_key(checkpoint, run, args)}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"checkpoint": checkpoint, "run": str(run), "values": exact_values(vals)}))
    tmp.replace(path)
    return path


def _resolved(checkpoint: str) -> Path | None:
    """A checkpoint name or folder as an absolute folder, or None where it does not resolve."""
    from vrlvr.models import resolve_checkpoint

    try:
        return Path(resolve_checkpoint(checkpoint)).resolve()
    except (FileNotFoundError, ValueError):
        return None


def check_against(checkpoint: str, run: Path, args) -> Path:
    """An ``--against`` checkpoint, resolved, after checking it never trained on the puzzles the
    run is scored on (they must lie inside its held-out set, as for the run's own start)."""
    from vrlvr.models import resolve_checkpoint
    from vrlvr.train.data import read_heldout

    try:
        folder = resolve_checkpoint(checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"--against {checkpoint}: {exc}") from None
    task, puzzles, _, _ = heldout_set(run, args)
    record = read_heldout(folder, task.name)
    if not record or record.get("task", task.name) != task.name:
        raise SystemExit(f"--against {checkpoint}: it has no {task.name} held-out set (heldout.json)")
    outside = [p for p in puzzles if p.key not in set(record["keys"])]
    if outside:
        raise SystemExit(
            f"--against {checkpoint}: {len(outside)} of the {len(puzzles)} puzzles {run} is scored on "
            "are outside its held-out set (it may have trained on them)"
        )
    return folder


def measured_line(entries: dict) -> str:
    """Which run measured each task's row: rows kept from an earlier invocation (``--tasks``) say so."""
    when = {}
    for task, r in entries.items():
        m = r.get("measured") if isinstance(r, dict) else None
        label = f"{m['date']}, commit {m['commit']}" if m else "an earlier run (no date or commit kept)"
        if m and m.get("reused_runs"):
            label += " (reusing " + ", ".join(f"{k} trained {v}" for k, v in m["reused_runs"].items()) + ")"
        when.setdefault(label, []).append(task)
    return "Measured: " + "; ".join(f"{', '.join(ts)}: {label}" for label, ts in when.items()) + "."


def control_table(controlled: dict, table1: dict) -> list[str]:
    """Table 1's control: more SFT for about the RL run's wall time, against the SFT checkpoint and
    against RL, on the same puzzles (lines of markdown)."""
    lines = [
        "## The control: more SFT for as long as RL trains (success %, points paired on the same puzzles)",
        "",
        "| task | more SFT (steps x videos, lr) | wall time, RL run | SFT | more SFT | gain | F1 gain "
        "| RL - more SFT (table 1's run) | RL - more SFT (over the training seeds) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, c in controlled.items():
        rec = c["recipe"]
        wall = (
            f"{c['wall_s'] / 60:.1f} min, {c['rl_wall_s'] / 60:.1f} min"
            if c.get("wall_s") and c.get("rl_wall_s")
            else "-"
        )
        seeds = table1[task].get("seeds", {}).get("seeds", [])
        over = c.get("rl_minus_control_over_seeds")
        over_cell = f"{fmt(over, 'success_rate')} (seeds {', '.join(map(str, seeds))})" if over else "-"
        lines.append(
            f"| {task} | {rec['steps']} x {rec['batch_size']}, {rec['lr']:g} | {wall} "
            f"| {fmt(table1[task]['sft'], 'success_rate')} | {fmt(c['more_sft'], 'success_rate')} "
            f"| {fmt(c['gain'], 'success_rate')} | {fmt(c['gain'], 'f1')} "
            f"| {fmt(c['rl_minus_control'], 'success_rate')} | {over_cell} |"
        )
    return [*lines, "", measured_line(controlled), ""]


def share_table(table1: dict) -> list[str]:
    """Table 1's puzzles again: the puzzle's share of whether a video succeeds (puzzle_share), SFT
    and RL (lines of markdown; none when no entry keeps several samples per puzzle)."""
    rows = []
    for task, r in table1.items():
        pp, k = r.get("per_puzzle"), r.get("samples", 1)
        if not pp or k < 2:
            continue
        col = pp["metrics"].index("success_rate")
        cells = []
        for who in ("sft", "rl"):
            success = np.array([np.nan if x[col] is None else x[col] for x in pp[who]])
            cells.append(fmt_share(puzzle_share_ci(success, k)))
        rows.append(f"| {task_label(task, r)} | {r['puzzles']} x {k} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## Whose success: the puzzle's share of whether a video succeeds (table 1's videos)",
        "",
        "Intraclass correlation of success over the samples of each puzzle, [95% bootstrap CI over "
        "puzzles]: 1 if every puzzle is always or never solved, 0 if every puzzle is solved at the "
        "same rate and the noise alone decides which videos succeed.",
        "",
        "| task | puzzles x samples | SFT | RL |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


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
            head = f"| {task_label(task, r)} | {r['puzzles']} x {r.get('samples', 1)} | "
            lines.append(head + " | ".join(cells) + f" | {bcell} |")
        lines += ["", measured_line(results["table1"]), ""]
        lines += share_table(results["table1"])
        seeded = {t: r["seeds"] for t, r in results["table1"].items() if "seeds" in r}
        if seeded:
            lines += [
                "## Training seeds: the RL gain of table 1's recipe trained again with other seeds "
                "(points, RL - SFT on the same puzzles)",
                "",
                "| task | seeds | success gain per seed | success gain, mean [95% CI over seeds and puzzles] "
                "| F1 gain per seed | F1 gain, mean [CI] | reward gain per seed | reward gain, mean [CI] |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for task, sd in seeded.items():
                cells = []
                for key in ("success_rate", "f1", "mean_reward"):
                    cells.append(", ".join(f"{100 * g[key]['mean']:+.1f}" for g in sd["gain_per_seed"]))
                    cells.append(fmt(sd["gain"], key))
                seeds = ", ".join(str(x) for x in sd["seeds"])
                lines.append(f"| {task} | {seeds} | " + " | ".join(cells) + " |")
            lines += ["", measured_line(seeded), ""]
        controlled = {t: r["sft_control"] for t, r in results["table1"].items() if r.get("sft_control")}
        if controlled:
            lines += control_table(controlled, results["table1"])
    if "table4" in results:
        t = results["table4"]
        win = t.get("windows", {})
        lines += [
            "## Early-Step Focus (maze)",
            "",
            f"Median step time, window on the first half{' ' + str(win['first_half']) if win else ''} / all "
            f"steps{' ' + str(win['all_steps']) if win else ''}: {t['step_time_ratio']:.2f} (goal <= 0.6), "
            f"{t['median_step_time_s']['first_half']:.1f} s vs {t['median_step_time_s']['all_steps']:.1f} s"
            + (f" ({t['updates']} updates each)" if t.get("updates") else "")
            + f"; final success {fmt(t['first_half'], 'success_rate')}"
            + f" vs {fmt(t['all_steps'], 'success_rate')}"
            + (
                f", difference {fmt(t['first_half_minus_all'], 'success_rate')}."
                if "first_half_minus_all" in t
                else "."
            ),
        ]
        sbs = t.get("side_by_side")
        if sbs and sbs.get("until") is not None:
            th, n = sbs["threads"], sbs["timed_updates"]
            lines.append(
                f"The two runs trained side by side ({th['first_half']} / {th['all_steps']} CPU threads), "
                "so that whatever the machine did to its speed it did to both; timed on the "
                f"{n['first_half']} / {n['all_steps']} updates after the first that ended while both ran."
            )
        drift = t.get("rollout_drift", {})
        if drift and max(drift.values()) > DRIFT_LIMIT:
            lines.append(
                "**Not comparable: the machine's speed drifted during these runs** (their rollouts, the "
                "same work every step, took up to "
                + ", ".join(f"{v:.2f}x ({k.replace('_', ' ')})" for k, v in drift.items())
                + " as long in one fifth of the run as in another; the limit is "
                f"{DRIFT_LIMIT}x): rerun table4 on a quiet machine before reading its times."
            )
        if "phase_median_s" in t:
            ph = t["phase_median_s"]
            fh, al = ph["first_half"], ph["all_steps"]
            all_step = max(al["rollout"] + al["update"] + al["verify"], 1e-9)
            update_ratio = fh["update"] / max(al["update"], 1e-9)
            floor = (fh["rollout"] + fh["verify"]) / all_step
            lines.append(
                "Where the time goes (median s per step, first half / all steps): rollouts "
                f"{fh['rollout']:.1f} / {al['rollout']:.1f} (every sampling step of every video; outside "
                "the window with the adapter folded into the weights, a little cheaper), "
                f"update {fh['update']:.1f} / {al['update']:.1f} (ratio {update_ratio:.2f}). "
                "The window mostly shortens the update: with the rollouts as they are, the step ratio "
                f"cannot go below {floor:.2f} (its rollouts and verification over the all-steps step)."
            )
        if "ratio_at_mean_work" in t:
            m, e, sc = t["ratio_at_mean_work"], t["ratio_all_trained"], t["step_cost"]
            mc = t["mean_contributing"]
            fh, al = sc["first_half"], sc["all_steps"]
            lo, hi = t.get("contributing_range", [0, e["samples"]])
            lines.append(
                "At the same training work: a sparse step trains only the groups that vary (here "
                f"{mc['first_half']:.1f} / {mc['all_steps']:.1f} contributing samples a step on average, "
                f"{lo} to {hi} from step to step), so a run's median also follows how many varied in it. "
                "Per run, a step = rollouts and verification + the update per contributing sample n: "
                f"{fh['fixed_s']:.1f} + {fh['per_sample_s']:.2f} n s / {al['fixed_s']:.1f} + "
                f"{al['per_sample_s']:.2f} n s; their ratio is {m['ratio']:.2f} "
                f"[{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}] at n = {m['samples']:.1f} (both runs' mean) and "
                f"{e['ratio']:.2f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}] with every sample trained "
                f"(n = {e['samples']:.0f}, as with a dense reward); 95% intervals from resampling each "
                "run's steps."
            )
        if "measured" in t:
            lines.append(measured_line({"maze": t}))
        if "shipped" in t:
            lines.append(
                f"The shipped recipe's window {t['shipped']['sde_window']}: "
                f"{t['shipped']['median_step_time_s']:.1f} s median step (table 1's run)."
            )
        lines.append("")
    if "reward" in results:
        lines += [
            "## Dense vs sparse reward (success %, gains paired against the SFT checkpoint)",
            "",
            "| task | shipped | SFT | dense | gain | sparse | gain |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]

        def cell(r: dict, key: str) -> str:
            return fmt(r[key], "success_rate") if key in r else "-"

        for task, r in results["reward"].items():
            lines.append(
                f"| {task_label(task, r)} | {r.get('shipped', 'dense')} | {cell(r, 'sft')} | "
                f"{cell(r, 'dense')} | {cell(r, 'dense_gain')} | "
                f"{cell(r, 'sparse')} | {cell(r, 'sparse_gain')} |"
            )
        lines += ["", measured_line(results["reward"]), ""]
    if "hack" in results:
        lines += ["## Reward hacking (maze): held-out exact / loose success over training", ""]
        for name, r in results["hack"].items():
            if not isinstance(r, dict) or "step" not in r:
                continue
            pairs = ", ".join(
                f"step {s}: {100 * e:.0f}/{100 * lo:.0f}"
                for s, e, lo in zip(r["step"], r["success_rate"], r["loose_success_rate"])
            )
            lines.append(f"- {name}: {pairs}")
        lines.append("")
    return "\n".join(lines)


def run_experiments(
    todo: list[str], args, pooled: bool, what: str, timing_path: Path, t_start: float
) -> dict:
    """Each experiment in ``todo`` (after the pool with --jobs), its JSON written and its wall time
    kept in OUT/seconds.json -> {experiment: its results}."""
    runners = {"table1": exp_table1, "table4": exp_table4, "reward": exp_reward, "hack": exp_hack}
    results = {}
    if pooled:
        train_planned(todo, args)
        # the wall time of the runs and their evaluations (and below, of the whole invocation),
        # unless a run was reused: then it says nothing about what training them costs
        if not REUSED:
            timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
            timing[f"runs and evaluations of {what}"] = round(time.time() - t_start, 1)
            timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    for name in todo:
        if args.tables_only:
            path = Path(args.out) / f"{name}.json"
            if path.is_file():
                results[name] = json.loads(path.read_text())
            continue
        t0, reused_before = time.time(), len(REUSED)
        results[name] = runners[name](args)
        path = Path(args.out) / f"{name}.json"
        if name in PER_TASK and path.is_file():
            # a rerun of some tasks keeps the other tasks' entries (each says when it was measured)
            old = json.loads(path.read_text())
            results[name] = {**old, **results[name]}  # the old order, the new entries
        (Path(args.out) / f"{name}.json").write_text(json.dumps(results[name], indent=2) + "\n")
        # wall time per experiment, kept beside the results (the README quotes it); an experiment
        # that reused a run did not train it, so its time says nothing about the cost: not kept
        if len(REUSED) > reused_before and not pooled:
            continue
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        # a rerun of some tasks times those tasks only: kept under its own key, beside the full run's;
        # after the pool (--jobs) an experiment's time is its tables from the pool's evaluations: its
        # key says "scoring"
        partial = name in PER_TASK and set(args.tasks) != set(TASKS)
        key = f"{name} ({', '.join(args.tasks)})" if partial else name
        timing[f"{key}, scoring" if pooled else key] = round(time.time() - t0, 1)
        timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    if pooled and not REUSED:
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        timing[f"all of {what}"] = round(time.time() - t_start, 1)
        timing_path.write_text(json.dumps(timing, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 steps, a few puzzles (minutes)")
    ap.add_argument("--out", default=str(ROOT / "results"), help="results folder (runs/ inside)")
    ap.add_argument("--only", nargs="+", choices=EXPERIMENTS, help="experiments to run")
    ap.add_argument(
        "--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="table1's tasks (default: all three)"
    )
    ap.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="training seeds of table1's RL run for the --seed-tasks: the config's seed and N - 1 more "
        "(seed + 1, ...), with the gain per seed and over seeds (each costs another training run: maze "
        "about 12 minutes on 2 cores); 1 = the config's seed only",
    )
    ap.add_argument(
        "--seed-tasks",
        nargs="*",
        default=["maze"],
        help="table1 tasks trained with --seeds seeds (default maze, where RL gains; the others get the "
        "config's seed only)",
    )
    ap.add_argument(
        "--sft-control",
        nargs="*",
        default=["maze"],
        help="table1 tasks whose SFT checkpoint is also trained on with more SFT for about the RL run's "
        "wall time (the control RL must beat: maze about 10 minutes on 2 cores; none: no control)",
    )
    ap.add_argument("--no-readme", action="store_true", help="do not touch README.md and docs/")
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes at once, each with an equal share of the cores (default: one per core, one "
        "thread each: small models make more updates per hour that way); every run is trained first, "
        "the costliest first, and every policy evaluated as soon as its runs are made, then the "
        "experiments build their tables; 1 = one run at a time with its config's threads, each when "
        "its experiment needs it, evaluated in this process",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse a finished run in OUT/runs/ when its config is exactly what this invocation would "
        "train (same config file and overrides; threads and logging aside) instead of training it again; "
        "every evaluation is still redone",
    )
    ap.add_argument(
        "--score",
        nargs="+",
        metavar="CHECKPOINT",
        help="run nothing else: score these RL checkpoints (OUT/final or OUT/checkpoints/step_N of a "
        "vrlvr-train run) against their SFT checkpoint on the same held-out puzzles, paired; a checkpoint "
        "of a vrlvr sft run warm-started from a checkpoint (model.path) is paired against that start; "
        "several runs with the same start (training seeds) also get their mean gain; each checkpoint's "
        "per-puzzle values are kept in OUT/scores.json and read back when scored again with the same --out",
    )
    ap.add_argument(
        "--against",
        nargs="+",
        metavar="CHECKPOINT",
        help="with --score: also pair each scored checkpoint against these (a shipped name or a "
        "checkpoint folder) on the same puzzles, e.g. an RL run from a grown SFT model against the "
        "shipped one; each must hold those puzzles out",
    )
    ap.add_argument(
        "--rollout-sampler",
        action="store_true",
        help="with --score: sample both policies as the run rolled out (SDE steps on its sde_window with "
        "its sampling.eta and mode, Euler elsewhere) instead of Euler steps only",
    )
    ap.add_argument(
        "--tables-only",
        action="store_true",
        help="run nothing: rebuild the tables (docs/results.md, README) from OUT/<experiment>.json",
    )
    # the pool's evaluation processes (--jobs): not for users
    ap.add_argument("--evaluate", nargs=2, metavar=("CHECKPOINT", "RUN"), help=argparse.SUPPRESS)
    ap.add_argument("--into", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.evaluate:
        if not args.into or not Path(args.into).is_dir():
            ap.error(f"--evaluate needs --into, an existing folder (got {args.into})")
        import torch

        torch.set_num_threads(args.threads)
        evaluate_into(args.evaluate[0], Path(args.evaluate[1]), Path(args.into), args)
        return 0
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.jobs is None:
        args.jobs = cores()
    elif args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    for flag, given in (("--seed-tasks", args.seed_tasks), ("--sft-control", args.sft_control)):
        unknown = sorted(set(given) - set(TASKS))
        if unknown:
            ap.error(f"{flag}: unknown task(s) {', '.join(unknown)} ({', '.join(TASKS)})")
    if args.against and not args.score:
        ap.error("--against applies to --score only")
    if args.rollout_sampler and not args.score:
        ap.error("--rollout-sampler applies to --score only (the experiments evaluate with Euler sampling)")
    args.out = str(Path(args.out).resolve())  # runs are subprocesses with another working directory
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.score:
        print(score(args))
        return 0
    todo = args.only or list(EXPERIMENTS)
    timing_path = Path(args.out) / "seconds.json"
    # --jobs > 1: every run is trained and every policy evaluated up front; an experiment's own time
    # is then its tables (and any evaluation the pool did not make)
    pooled = args.jobs > 1 and not args.tables_only
    # the seconds.json keys say what was run: table 1's extra seeds and control change its cost
    extra = ""
    if "table1" in todo:
        seeded = " ".join(t for t in args.seed_tasks if t in args.tasks) or "none"
        controlled = " ".join(t for t in args.sft_control if t in args.tasks) or "none"
        extra = f"; --seeds {args.seeds} ({seeded}); --sft-control {controlled}"
    what = f"{', '.join(todo)} ({', '.join(args.tasks)}; --jobs {args.jobs}{extra})"
    t_start = time.time()
    try:
        results = run_experiments(todo, args, pooled, what, timing_path, t_start)
    finally:
        if args.__dict__.get("prescored"):
            shutil.rmtree(args.prescored, ignore_errors=True)
    # the tables show every experiment: those not rerun now keep their JSON from an earlier invocation
    for name in EXPERIMENTS:
        path = Path(args.out) / f"{name}.json"
        if name not in results and path.is_file():
            results[name] = json.loads(path.read_text())
    results = {name: results[name] for name in EXPERIMENTS if name in results}  # the usual order
    text = tables(results, args.quick)
    (Path(args.out) / "results.md").write_text(text + "\n")
    if not args.no_readme:
        (ROOT / "docs" / "results.md").write_text(text + "\n")
        readme = ROOT / "README.md"
        s = readme.read_text()
        a, b = "<!-- results:start -->", "<!-- results:end -->"
        if a in s and b in s:
            # the tables sit under the README's "Reproducing" section: their headings one level down
            block = "\n".join("#### " + x[3:] if x.startswith("## ") else x for x in text.split("\n")[2:])
            s = s[: s.index(a) + len(a)] + "\n" + block + "\n" + s[s.index(b) :]
            readme.write_text(s)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
