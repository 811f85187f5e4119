"""Arguments shared by `vrlvr sample` and `vrlvr eval`: which checkpoint, which puzzles, how to sample.

Every video setting defaults to what the checkpoint was trained with (its policy.json records the
data and sampling config), so ``--checkpoint maze-tiny --task maze`` needs nothing else.
"""

from __future__ import annotations

import argparse
import json


def add_policy_arguments(parser: argparse.ArgumentParser, n_default: int) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a checkpoint folder (OUT/final of `vrlvr sft`, a Wan folder) or a shipped name "
        "(maze-tiny, flowfree-tiny, sokoban-tiny)",
    )
    parser.add_argument("--task", help="maze, flowfree or sokoban (default: the checkpoint's task)")
    parser.add_argument("--n", type=int, default=n_default, help="number of puzzles")
    parser.add_argument(
        "--seed", type=int, default=100000, help="puzzles come from seeds seed, seed + 1, ..."
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="puzzle sizes (default: the checkpoint's)")
    parser.add_argument("--num-frames", type=int, help="frames per video (default: the checkpoint's)")
    parser.add_argument("--cell-px", type=int, help="pixels per cell (default: the checkpoint's)")
    parser.add_argument("--height", type=int, help="frame height when not using --cell-px")
    parser.add_argument("--width", type=int, help="frame width when not using --cell-px")
    parser.add_argument("--theme", default=0, help="colour theme (index or name)")
    parser.add_argument("--steps", type=int, help="Euler sampling steps (default: the checkpoint's)")
    parser.add_argument("--shift", type=float, help="schedule shift (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=32, help="videos generated at once")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument(
        "--allow-seen", action="store_true", help="do not restrict puzzles to the checkpoint's held-out set"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve(args: argparse.Namespace) -> dict:
    """Load the policy and merge the checkpoint's recorded settings with the command line."""
    import torch

    from vrlvr import tasks
    from vrlvr.models.policy import load_policy, resolve_checkpoint
    from vrlvr.train.data import VideoSpec, read_heldout
    from vrlvr.train.sft import pick_device

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    folder = resolve_checkpoint(args.checkpoint)
    meta = json.loads((folder / "policy.json").read_text()) if (folder / "policy.json").is_file() else {}
    data, sampling = meta.get("data", {}), meta.get("sampling", {})
    task_name = args.task or meta.get("task")
    if not task_name:
        raise ValueError(f"checkpoint {folder} does not record its task; pass --task")
    if meta.get("task") and args.task and args.task != meta["task"]:
        raise ValueError(f"checkpoint {folder} was trained on {meta['task']!r}, not {args.task!r}")
    task = tasks.get(task_name)
    cell_px = args.cell_px if args.cell_px is not None else (None if args.height else data.get("cell_px", 4))
    theme = int(args.theme) if str(args.theme).isdigit() else args.theme
    s = {
        "task": task,
        "folder": folder,
        "sizes": args.sizes or data.get("sizes"),
        "video": VideoSpec(
            num_frames=args.num_frames or data.get("num_frames", 9),
            cell_px=cell_px,
            height=args.height or (None if cell_px else data.get("height")),
            width=args.width or (None if cell_px else data.get("width")),
        ),
        "steps": args.steps or sampling.get("steps", 10),
        "shift": args.shift if args.shift is not None else sampling.get("shift", 1.0),
        "theme": theme,
    }
    if not s["sizes"]:
        raise ValueError(f"checkpoint {folder} does not record puzzle sizes; pass --sizes")
    heldout = None if args.allow_seen else read_heldout(folder)
    s["allowed"] = set(heldout["keys"]) if heldout else None
    s["policy"] = load_policy(folder, device=pick_device(args.device)).eval()
    return s


def evaluate_resolved(s: dict, args: argparse.Namespace, puzzles: list, keep_videos: bool = False):
    """``vrlvr.train.evaluate.evaluate`` with the settings ``resolve`` gave and the command line's
    batch size, seed and progress flag -> (metrics, records)."""
    from vrlvr.train.evaluate import evaluate

    return evaluate(
        s["policy"],
        s["task"],
        puzzles,
        s["video"],
        s["steps"],
        s["shift"],
        args.batch_size,
        seed=args.seed,
        theme=s["theme"],
        progress=not args.no_progress,
        keep_videos=keep_videos,
    )
