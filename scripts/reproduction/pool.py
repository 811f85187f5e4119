"""The pool (--jobs N > 1): every planned run trained N processes at a time (table 4's pair first and
alone, then the costliest first), every planned evaluation as soon as its runs are made."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reproduction import recipes, training
from reproduction.settings import ROOT


def run_cost(config: Path, overrides: list[str], command: str, args) -> float:
    """A run's rough cost, to start the longest first: updates x videos per update x model blocks,
    an SFT video (one forward and backward, no rollouts) counted as a quarter of an RL one."""
    from vrlvr.config import build_config
    from vrlvr.train.grpo_config import GRPOConfig
    from vrlvr.train.sft_config import SFTConfig

    full = training.full_overrides(overrides, args, command)
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
            names = [recipe[0] for recipe in recipes.seed_recipes(task, args)]
            add(recipes.start_of(task), names[0])
            for name in names:
                add(final(name), name)
            if task in args.sft_control:
                control = recipes.control_recipe(task, args)[0]
                add(final(control), names[0], control)  # scored on table 1's puzzles
    if "table4" in todo:
        for name, _, _ in recipes.table4_recipes(args).values():
            add(final(name), name)
    if "reward" in todo:
        for task in [t for t in ("maze", "flowfree") if t in args.tasks]:
            add(recipes.start_of(task), f"{task}-rl")  # paired against the shipped run's puzzles
            for kind in ("dense", "sparse"):
                name = recipes.kind_recipe(task, kind, args)[0]
                add(final(name), name)
    return [(checkpoint, run, needs) for (checkpoint, run), needs in wanted.items()]


def launch_evaluation(checkpoint: str, run: Path, threads: int, args):
    """Start one pool evaluation process (scripts/reproduce.py with ``--evaluate``) -> the job, as
    launch's."""
    cmd = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--evaluate", checkpoint, str(run)]
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
    singles, groups = recipes.planned(todo, args)
    queue: list[list[tuple[str, list[str], Path, list[str]]]] = []  # groups of runs timed together
    for group in groups:
        prepared = [
            (name, overrides, *training.prepare(name, config, overrides, args))
            for name, config, overrides in group.values()
        ]
        queue.append(
            [(name, overrides, folder, cmd) for name, overrides, folder, cmd in prepared if cmd is not None]
        )
    pending = []
    for name, config, overrides, command in singles:
        folder, cmd = training.prepare(name, config, overrides, args, command)
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
                threads = max(1, training.cores() // len(group)) if len(group) > 1 else None
                for name, overrides, folder, cmd in group:
                    job = training.launch(name, cmd, threads, args)
                    running.append(("run", (name, overrides, folder), job, max(1, args.jobs // len(group))))
                together = {name for name, *_ in group}
                break
            if free < 1:
                break
            if pending:
                # a run's share of the cores; one run alone (nothing else to do until it ends) takes all
                beside = len(pending) + sum(r[0] == "run" for r in running)
                beside += sum(w[2] <= made.keys() for w in waiting)
                threads = max(1, training.cores() // min(args.jobs, max(1, beside)))
                _, name, overrides, folder, cmd = pending.pop(0)
                running.append(
                    ("run", (name, overrides, folder), training.launch(name, cmd, threads, args), 1)
                )
                continue
            # the deepest policy first, as the runs: the last evaluations to finish are short
            ready = sorted((w for w in waiting if w[2] <= made.keys()), key=lambda w: -blocks_of(w[0]))
            if not ready:
                break
            waiting.remove(ready[0])
            checkpoint, run = ready[0][0], made[ready[0][1]][0]
            job = launch_evaluation(checkpoint, run, max(1, training.cores() // args.jobs), args)
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
                failure = training.landed(*what, job, args)
            else:
                failure = training.failure_of(job, f"evaluating {what[0]} on {what[1].name}'s puzzles")
            if failure:
                failed.append(failure)
            together = set()  # one of a group ended: the updates timed together are over
    if failed:
        raise SystemExit("\n".join(failed))
    # an evaluation whose runs were never made (none should be) is left to the experiments
    print(f"[reproduce] runs trained and evaluated in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
