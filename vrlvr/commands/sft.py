"""Supervised flow-matching fine-tuning (the SFT baseline) on rendered solution videos.

    vrlvr sft --config configs/maze-tiny-sft.yaml [key=value ...] [--resume]

Writes OUT/metrics.jsonl, OUT/checkpoints/ (full state, atomic) and OUT/final/ (the policy that
``vrlvr eval --checkpoint`` and ``vrlvr sample --checkpoint`` take). Config keys (default, help):
"""

from __future__ import annotations

import argparse
import json

from vrlvr.config import describe_config, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vrlvr.train.sft_config import SFTConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        (__doc__ or "").strip()
        + "\n"
        + "\n".join(f"  {k} = {d}: {h}" for k, d, h in describe_config(SFTConfig))
    )
    parser.add_argument("--config", help="YAML experiment file (configs/*-sft.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=1e-4"
    )


def run(args: argparse.Namespace) -> int:
    from vrlvr.train.sft import train_sft
    from vrlvr.train.sft_config import SFTConfig

    cfg = load_config(SFTConfig, args.config, args.overrides)
    result = train_sft(cfg, resume=args.resume, progress=not args.no_progress)
    ev = result["eval"]
    summary = {
        "out_dir": cfg.out_dir,
        "step": result["step"],
        "minutes": round(result["minutes"], 2),
        **{k: ev.get(k) for k in ("n", "success_rate", "loose_success_rate", "mean_reward")},
    }
    print(json.dumps(summary))
    return 0
