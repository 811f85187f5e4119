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

from vrlvr.train.run_dir import add_trainer_arguments, remove_failed_run, run_overrides, start_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vrlvr.train.sft_config import SFTConfig

    add_trainer_arguments(parser, SFTConfig, __doc__ or "", "YAML experiment file (configs/*-sft.yaml)")


def run(args: argparse.Namespace) -> int:
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
    try:
        result = train_sft(cfg, resume=start.checkpoint is not None, progress=not args.no_progress)
    except (ValueError, FileNotFoundError):
        remove_failed_run(start, "vrlvr sft")
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
