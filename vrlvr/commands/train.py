"""SDE-GRPO with Early-Step Focus over a LoRA-adapted video diffusion transformer (the main job).

    vrlvr-train --config configs/maze-tiny.yaml [key=value ...]          (also: vrlvr train ...)
    vrlvr-train --resume out_dir=runs/maze-tiny-grpo [optim.steps=200 ...]
    torchrun --nproc_per_node=2 --no-python vrlvr-train --config configs/maze-tiny.yaml

Each step draws grpo.prompts_per_step training puzzles (never a held-out one), rolls out
grpo.group_size videos per puzzle with SDE noise and log-probs on the window grpo.sde_window of the
sampling steps (default the first half: Early-Step Focus) and ODE steps elsewhere, verifies them,
normalises rewards within each group and takes a clipped PPO step with beta x KL to the policy with
its adapters off. Held-out success is evaluated before and after (and every eval.every steps).

A new run refuses a non-empty out_dir (--overwrite empties a previous run's folder); --resume reads
OUT/config.yaml, applies only the overrides given and refuses changes to what shapes the model,
task or data. Writes OUT/config.yaml, metrics.jsonl, checkpoints/ (atomic), final/ (what
`vrlvr eval --checkpoint` takes), samples/ and curves.png.

Config keys (default, help):
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vrlvr.train.run_dir import add_trainer_arguments, remove_failed_run, run_overrides, start_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vrlvr.train.grpo_config import GRPOConfig

    add_trainer_arguments(parser, GRPOConfig, __doc__ or "", "YAML experiment file (configs/*.yaml)")


def _start(args: argparse.Namespace):
    """Rank 0 prepares the run folder (start_run); with torchrun, every other rank receives the
    resolved config from it (one broadcast), so only one process ever writes the folder."""
    from vrlvr.train.grpo_config import FROZEN_ON_RESUME, GRPOConfig

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    start = err = None
    if rank == 0:
        try:
            start = start_run(
                GRPOConfig,
                args.config,
                run_overrides(args),
                resume=args.resume,
                overwrite=args.overwrite,
                frozen=FROZEN_ON_RESUME,
                prog="vrlvr-train",
            )
        except (ValueError, FileNotFoundError) as exc:
            err = exc
    if world > 1:
        import torch.distributed as dist

        from vrlvr.train.distributed import init_process_group

        init_process_group()
        box = [(start, err)]
        dist.broadcast_object_list(box, src=0)
        start, err = box[0]
    if err is not None:
        raise err
    return start


def run(args: argparse.Namespace) -> int:
    from vrlvr.train.grpo import TrainingDiverged, train_grpo

    start = _start(args)
    cfg = start.cfg
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        result = train_grpo(cfg, checkpoint=start.checkpoint, progress=not args.no_progress)
    except (ValueError, FileNotFoundError):
        if main:
            remove_failed_run(start, "vrlvr-train")
        raise
    except TrainingDiverged as exc:
        print(f"vrlvr-train: error: {exc}", file=sys.stderr)
        return 1
    if main:
        summary = {"out_dir": cfg.out_dir, "step": result["step"], "minutes": round(result["minutes"], 2)}
        for tag in ("before", "after"):
            for task, m in result[tag].items():
                summary[f"{tag}/{task}"] = {
                    k: m.get(k) for k in ("n", "success_rate", "loose_success_rate", "f1", "mean_reward")
                }
        print(json.dumps(summary))
    return 0
