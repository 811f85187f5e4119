"""``reproduce.py --score``: RL (or warm-started SFT) checkpoints paired against their SFT start on
the same held-out puzzles, with per-checkpoint values kept in OUT/scores.json between invocations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from reproduction import report, scoring, stats
from reproduction.report import fmt
from reproduction.settings import METRICS


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
        puzzles = tuple(p.key for p in scoring.heldout_set(run, args)[1])
        start = scoring.fingerprint(base)
        col = METRICS.index("success_rate")
        shares.setdefault((start, puzzles), (str(base), ref[:, col]))  # a start once, by its bytes
        shares.setdefault((scoring.fingerprint(ck), puzzles), (str(ck), new[:, col]))
        kind = "vrlvr sft" if scoring.is_sft_run(run) else "vrlvr-train"
        _, gains, runs = paired.setdefault((start, puzzles, kind), (base_name, [], []))
        gains.append(new - ref)
        runs.append(Path(run).resolve())
        gain = stats.bootstrap(new - ref)
        return (
            f"| {ck} | {base_name} | {fmt(stats.bootstrap(ref), 'success_rate')} | "
            f"{fmt(stats.bootstrap(new), 'success_rate')} | {fmt(gain, 'success_rate')} | "
            f"{fmt(gain, 'f1')} | {fmt(gain, 'mean_reward')} |"
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
        if scoring.is_sft_run(run):  # more SFT from a checkpoint: the control with the same extra compute
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
            mean = stats.seed_bootstrap(np.stack(gains))
            lines.append(
                f"| mean over these {len(gains)} {kind} runs | {base_name} | - | - | "
                f"{fmt(mean, 'success_rate')} | {fmt(mean, 'f1')} | {fmt(mean, 'mean_reward')} |"
            )
    samples = scoring.samples_per_puzzle(args)
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
        cell = report.fmt_share(stats.puzzle_share_ci(success, samples))
        lines.append(f"| {name} | {len(success)} | {100 * np.nanmean(success):.1f} | {cell} |")
    return "\n".join(lines)


#: --score keeps each checkpoint's per-puzzle values here (in OUT), so that scoring one more training
#: seed beside the earlier ones evaluates only the new checkpoint
SCORES_FILE = "scores.json"


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


def scored(checkpoint: Path | str, run: Path, args) -> np.ndarray:
    """held_out_eval's per-puzzle values, kept in OUT/scores.json between --score invocations: keyed
    on everything that decides them (score_key), so a hit is the same evaluation again."""
    task = scoring.heldout_set(run, args)[0]
    key = scoring.score_key(checkpoint, run, args)
    path = Path(args.out) / SCORES_FILE
    cache = read_scores(path)
    if key in cache:
        print(f"[reproduce] {checkpoint}: per-puzzle scores from {path}", file=sys.stderr, flush=True)
        return np.array(cache[key]["values"], dtype=float)  # None (undefined) -> nan
    vals, _ = scoring.held_out_eval(checkpoint, run, args)
    cache = read_scores(path)  # re-read: keep what another invocation wrote meanwhile
    # full precision: a hit gives what the evaluation gave
    cache[key] = {"checkpoint": str(checkpoint), "task": task.name, "values": scoring.exact_values(vals)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cache) + "\n")
    tmp.replace(path)  # atomic: an interrupted write never leaves a broken cache
    return vals


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
    task, puzzles, _, _ = scoring.heldout_set(run, args)
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
