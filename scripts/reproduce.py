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

This file is the command line; the parts live in scripts/reproduction/, one concept per module
(its ``__init__`` lists them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from reproduction import experiments, report, score_command, scoring, training
from reproduction.settings import EXPERIMENTS, ROOT, TASKS


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
        scoring.evaluate_into(args.evaluate[0], Path(args.evaluate[1]), Path(args.into), args)
        return 0
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.jobs is None:
        args.jobs = training.cores()
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
        print(score_command.score(args))
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
        results = experiments.run_experiments(todo, args, pooled, what, timing_path, t_start)
    finally:
        if args.__dict__.get("prescored"):
            shutil.rmtree(args.prescored, ignore_errors=True)
    # the tables show every experiment: those not rerun now keep their JSON from an earlier invocation
    for name in EXPERIMENTS:
        path = Path(args.out) / f"{name}.json"
        if name not in results and path.is_file():
            results[name] = json.loads(path.read_text())
    results = {name: results[name] for name in EXPERIMENTS if name in results}  # the usual order
    text = report.tables(results, args.quick)
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
