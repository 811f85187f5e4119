"""Where sampling noise decides the outcome, step by step: a guide for ``grpo.sde_window``.

    vrlvr window --checkpoint maze-tiny --n 32 --group 8
    vrlvr window --checkpoint runs/NAME/final --profile-steps 0 1 2 3 --json profile.json

For each sampling step k, ``--group`` rollouts per held-out puzzle share one initial noise and
differ only by SDE noise injected at step k (Euler ODE elsewhere). The share of puzzles whose
rollouts disagree (``groups_varying``) and the within-group spread of success, reward and F1 say
what noise at step k can change, so what a policy gradient on step k can learn from: put the
Early-Step Focus window where the spread is. The JSON (printed, and written with --json) holds one
row per step; a table goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from vrlvr.commands._policy_args import (
    add_policy_arguments,
    check_work,
    check_writable,
    resolve,
    resolved_puzzles,
    write_atomic,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_policy_arguments(parser, n_default=32)
    parser.add_argument("--group", type=int, default=8, help="rollouts per puzzle (they share their start)")
    parser.add_argument("--eta", type=float, default=0.7, help="SDE noise level (the trainer's sampling.eta)")
    parser.add_argument(
        "--mode", default="sde", choices=["sde", "dance", "cps"], help="SDE formulation (sampling.mode)"
    )
    parser.add_argument(
        "--noise-block",
        type=int,
        default=1,
        metavar="K",
        help="SDE noise per K x K block of latent pixels (the trainer's grpo.noise_block; 1: per element)",
    )
    parser.add_argument(
        "--profile-steps", type=int, nargs="+", metavar="K", help="sampling steps to profile (default: all)"
    )
    parser.add_argument("--json", metavar="PATH", help="write the profile here (always printed too)")


def run(args: argparse.Namespace) -> int:
    from vrlvr.train.noise_profile import noise_profile

    t0 = time.time()
    if args.group < 2:
        raise ValueError(f"--group must be >= 2 (a spread needs two rollouts), got {args.group}")
    if args.eta <= 0:
        raise ValueError(f"--eta must be > 0 (eta 0 injects no noise), got {args.eta}")
    if args.noise_block < 1:
        raise ValueError(f"--noise-block must be >= 1 (1: per-element noise), got {args.noise_block}")
    if args.json:
        check_writable(args.json, "--json")
    s = resolve(args)
    task = s["task"]
    puzzles, _ = resolved_puzzles(s, args)
    steps = args.profile_steps or list(range(s["steps"]))
    check_work(s, args, len(steps) * args.group * len(puzzles), "vrlvr window")
    rows = noise_profile(
        s["policy"],
        task,
        puzzles,
        s["video"],
        s["steps"],
        s["shift"],
        eta=args.eta,
        mode=args.mode,
        group_size=args.group,
        seed=args.seed,
        theme=s["theme"],
        batch_size=args.batch_size,
        steps=steps,
        progress=not args.no_progress,
        noise_block=args.noise_block,
    )
    report = {
        "task": task.name,
        "checkpoint": str(s["folder"]),
        "n": len(puzzles),
        "group": args.group,
        "eta": args.eta,
        "mode": args.mode,
        "noise_block": args.noise_block,
        "sampling": {"steps": s["steps"], "shift": s["shift"], "num_frames": s["video"].num_frames},
        "options": s["options"],
        "profile": rows,
        "seconds": round(time.time() - t0, 2),
    }
    text = json.dumps(report, indent=2)
    if args.json:
        write_atomic(args.json, text + "\n")
    print(text)
    per_block = f", per {args.noise_block}x{args.noise_block} block" if args.noise_block > 1 else ""
    lines = [
        f"vrlvr window: {task.name}, {len(puzzles)} puzzles x {args.group} rollouts sharing a start, "
        f"SDE noise (eta {args.eta}{per_block}) at one step",
        "  step  sigma  success  groups varying  success std  reward std  F1 std",
    ]
    for r in rows:
        lines.append(
            f"  {r['step']:>4}  {r['sigma']:.3f}  {r['success_rate']:>7.3f}  {r['groups_varying']:>14.2f}  "
            f"{r['success_std']:>11.3f}  {r['reward_std']:>10.3f}  {r['f1_std']:>6.3f}"
        )
    print("\n".join(lines), file=sys.stderr)
    return 0
