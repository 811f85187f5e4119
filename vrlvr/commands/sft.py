"""Supervised flow-matching fine-tuning (the SFT baseline) on rendered solution videos.

    vrlvr sft --config configs/maze-tiny-sft.yaml [key=value ...]
    vrlvr sft --resume out_dir=runs/maze-tiny-sft [optim.steps=2000 ...]

A new run refuses a non-empty out_dir (--overwrite empties a previous run's folder). --resume reads
OUT/config.yaml, applies only the overrides given, and refuses changes to the model, task, data,
sampling or optimizer settings the checkpoint was trained with; --resume auto resumes if possible.
Writes OUT/config.yaml, OUT/metrics.jsonl, OUT/checkpoints/ (full state, atomic) and OUT/final/
(the policy that ``vrlvr eval --checkpoint`` and ``vrlvr sample --checkpoint`` take).

Config keys (default, help):
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from vrlvr.config import describe_config
from vrlvr.train.run_dir import add_run_arguments, run_overrides, start_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vrlvr.train.sft_config import SFTConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        (__doc__ or "").strip()
        + "\n"
        + "\n".join(f"  {k} = {d}: {h}" for k, d, h in describe_config(SFTConfig))
    )
    parser.add_argument("--config", help="YAML experiment file (configs/*-sft.yaml)")
    add_run_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=1e-4"
    )


def run(args: argparse.Namespace) -> int:
    from vrlvr.train.checkpoint import latest_checkpoint
    from vrlvr.train.sft import SFT_FROZEN, train_sft
    from vrlvr.train.sft_config import SFTConfig

    start = start_run(
        SFTConfig,
        args.config,
        run_overrides(args),
        resume=args.resume,
        overwrite=args.overwrite,
        frozen=SFT_FROZEN,
        prog="vrlvr sft",
    )
    cfg = start.cfg
    out = Path(cfg.out_dir)
    try:
        result = train_sft(cfg, resume=start.checkpoint is not None, progress=not args.no_progress)
    except (ValueError, FileNotFoundError):
        if start.checkpoint is None and latest_checkpoint(out) is None:
            # a new run that failed before its first checkpoint leaves no folder to trip over
            shutil.rmtree(out, ignore_errors=True)
            print(f"vrlvr sft: removed {out} (the run failed before its first checkpoint)", file=sys.stderr)
        raise
    ev = result["eval"]
    summary = {
        "out_dir": cfg.out_dir,
        "step": result["step"],
        "minutes": round(result["minutes"], 2),
        **{k: ev.get(k) for k in ("n", "success_rate", "loose_success_rate", "mean_reward")},
    }
    print(json.dumps(summary))
    return 0
