"""Training runs as processes: `vrlvr-train` / `vrlvr sft` with a config and overrides, one at a
time or side by side; --reuse of a finished run of exactly the same config; what a run measured
(provenance, wall time, recipe knobs, curves)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reproduction.settings import FULL, QUICK, ROOT, SFT_QUICK


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


def curves(run: Path, args) -> None:
    """The run's curves as curves_<run>.png in docs/ (or in OUT with --no-readme)."""
    from vrlvr.train.logger import plot_curves

    folder = Path(args.out) if args.no_readme else ROOT / "docs"
    plot_curves(run / "metrics.jsonl", folder / f"curves_{run.name}.png")


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
