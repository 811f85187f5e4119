"""Generate on held-out puzzles, verify, and report the paper's metrics as JSON.

    vrlvr eval --task maze --checkpoint maze-tiny --n 200 --seed 100000 --json out.json
    vrlvr eval --checkpoint maze-tiny --n 96 --samples 8      # also pass@8 over 8 noise draws

Puzzles are distinct (by canonical key), an even share of n per size, drawn from seeds seed,
seed + 1, ...; when the checkpoint records its held-out set (heldout.json), only puzzles in it are
used, so no training puzzle is ever scored (small grids may then give fewer than n: the report
says how many distinct puzzles it used). The JSON holds task, n, success_rate, precision, recall,
f1, mean_reward, loose_success_rate, every reward component's mean, a per-size breakdown and the
trivial baselines (held still, flood, the best cheap hack per task) on the same puzzles, also
printed beside the model on stderr.

``--samples K`` generates K videos per puzzle (noise seeds seed + j * 1000003): the metrics pool
all K x n videos, and ``pass_at_k`` is the share of puzzles solved at least once. Beside the mean
success it shows the headroom for sharpening: solutions the model finds sometimes but not on its
first try. ``success_puzzle_share`` says whose doing a success is (None with one sample): 1 when
each puzzle is always or never solved, 0 when every puzzle is solved at the same rate and the noise
alone decides which videos succeed.

``--sde-window A B`` samples as the SDE-GRPO trainer rolls out: SDE steps (``--eta``, ``--mode``)
on sampling steps [A, B), Euler steps elsewhere, so a policy can be scored under the sampler it
was trained with (the default, Euler steps only, is the deterministic sampler every other number
uses).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from vrlvr.commands._policy_args import (
    add_policy_arguments,
    add_sampler_arguments,
    check_sampler_arguments,
    check_writable,
    evaluate_resolved,
    resolve,
    resolve_sampler,
    resolved_puzzles,
    sampler_report,
    write_atomic,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_policy_arguments(parser, n_default=200)
    parser.add_argument("--json", metavar="PATH", help="write the report here (always printed too)")
    parser.add_argument(
        "--samples",
        type=int,
        default=1,
        help="videos per puzzle, each with its own noise: metrics pool them; pass_at_k is reported",
    )
    add_sampler_arguments(parser)


def pass_at_k(records: list[list[dict]]) -> float:
    """records [K samples][n puzzles] -> share of puzzles with a success among their K videos."""
    n = len(records[0])
    return sum(any(rs[i]["verdict"].success for rs in records) for i in range(n)) / max(n, 1)


def success_puzzle_share(records: list[list[dict]]) -> float | None:
    """records [K samples][n puzzles] -> vrlvr.train.evaluate.puzzle_share of their successes (None
    with one sample per puzzle)."""
    from vrlvr.train.evaluate import puzzle_share

    n = len(records[0])
    rates = [sum(rs[i]["verdict"].success for rs in records) / len(records) for i in range(n)]
    return puzzle_share(rates, len(records))


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    check_sampler_arguments(args)
    if args.json:
        check_writable(args.json, "--json")  # before the evaluation, so its report is never lost
    s = resolve(args)
    sde = resolve_sampler(args, s)
    task = s["task"]
    puzzles, stats = resolved_puzzles(s, args)
    if len(puzzles) < args.n:
        print(
            f"vrlvr eval: {len(puzzles)} distinct held-out puzzles available of {args.n} requested",
            file=sys.stderr,
        )
    # pooled: K x n videos
    metrics, records = evaluate_resolved(s, args, puzzles, samples=args.samples, sde=sde)
    # trivial baselines (held still, flood, the best cheap hack) on the same puzzles and frames
    from vrlvr.train.evaluate import BASELINE_KEYS, evaluate_baselines

    baselines = evaluate_baselines(task, puzzles, s["video"], s["theme"])
    report = {
        "task": task.name,
        "n": len(puzzles),
        "videos": metrics["n"],
        **{k: metrics[k] for k in ("success_rate", "precision", "recall", "f1", "mean_reward")},
        "loose_success_rate": metrics["loose_success_rate"],
        "components": metrics["components"],
        "per_size": metrics["per_size"],
        "baselines": baselines,
        "samples": args.samples,
        "pass_at_k": pass_at_k(records),
        "success_puzzle_share": success_puzzle_share(records),
        "n_requested": args.n,
        "n_distinct": len({p.key for p in puzzles}),
        "heldout_checked": s["allowed"] is not None,
        "seeds_drawn": stats["drawn"],
        "seed": args.seed,
        "options": s["options"],  # the generator's difficulty options the puzzles were drawn with
        "checkpoint": str(s["folder"]),
        "sampling": {
            "steps": s["steps"],
            "shift": s["shift"],
            "num_frames": s["video"].num_frames,
            "sampler": sampler_report(sde),
        },
        "seconds": round(time.time() - t0, 2),
    }
    text = json.dumps(report, indent=2)
    if args.json:
        write_atomic(args.json, text + "\n")
    print(text)
    lines = ["vrlvr eval: the model beside trivial baselines", f"  {'':>9}  " + "  ".join(BASELINE_KEYS)]
    for name, m in [("model", metrics), *baselines.items()]:
        cells = ("-" if m[k] is None else f"{m[k]:.3f}" for k in BASELINE_KEYS)
        lines.append(f"  {name:>9}  " + "  ".join(f"{c:>{len(k)}}" for c, k in zip(cells, BASELINE_KEYS)))
    print("\n".join(lines), file=sys.stderr)
    return 0
