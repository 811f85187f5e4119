"""Verify one video against one puzzle: parse the frames into grid states, check the task's rules
and print the verdict (success, reward, every reward component, precision / recall / F1).

The video must show the grid where vrlvr renders it (the task's layout for the video's frame size,
as `vrlvr data` and Task.render produce); otherwise give the grid's pixel box with --bbox. Frame 0
is the puzzle: when it does not look like this puzzle (another puzzle, another frame layout, a
side-by-side `vrlvr sample` video) or its colours sit far from every theme's palette, a warning says
so, and when most cells disagree the command refuses (--force verifies anyway). Exit status: 0 when
the video solves the puzzle, 1 when it does not, 2 on bad input. --preset paper scores it with the
paper's reward rules and weights instead of the project's default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--task", required=True, help="maze, flowfree, sokoban (or a registered task)")
    parser.add_argument("--puzzle", required=True, help="puzzle text file (the task's text format)")
    parser.add_argument("--video", required=True, help="video file (MP4 or anything ffmpeg reads; .npy too)")
    parser.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    parser.add_argument(
        "--theme", default=None, help="colour theme (index or name); default: the best-fitting theme"
    )
    parser.add_argument(
        "--bbox",
        default=None,
        metavar="TOP,LEFT,HEIGHT,WIDTH",
        help="the grid's box in pixels (default: vrlvr's layout for the frame size)",
    )
    parser.add_argument(
        "--preset",
        choices=["default", "paper"],  # vrlvr.verify.PRESETS (literal: the parser stays import-light)
        default="default",
        help="reward preset: the project's hack-resistant default (what RL trains on) or the paper's "
        "decomposition and weights (reward.preset of vrlvr-train)",
    )
    parser.add_argument("--backend", choices=["native", "numpy"], default=None, help="frame parser backend")
    parser.add_argument(
        "--force", action="store_true", help="verify even when frame 0 does not show the puzzle"
    )


# frame 0 against the puzzle: above WARN_CELLS of cells read differently (or colours this far from the
# palette) the verdict is doubtful; above REFUSE_CELLS the video is not of this puzzle in this layout
WARN_CELLS = 0.05
REFUSE_CELLS = 0.25
WARN_DIST = 30.0  # mean RGB distance of frame-0 cells to their nearest palette colour (max_dist is 60)


def frame0_check(task, puzzle, frames: np.ndarray, theme: int, bbox, backend) -> dict:
    """How well frame 0 shows the puzzle: the fraction of cells whose parsed label differs from the
    puzzle's own label grid, and the mean colour distance to the palette."""
    from vrlvr.verify import parse_frames
    from vrlvr.verify.video import video_geometry

    grid_shape, box = video_geometry(task, puzzle, frames.shape[1], frames.shape[2], bbox)
    palette = task.palette(theme, puzzle)  # uint8 [K, 3]
    labels, dist = parse_frames(frames[:1], grid_shape, palette, bbox=box, backend=backend)  # [1, R, C]
    expected = task.base_states(puzzle)  # int8 [R, C]
    return {
        "cells_differ": float(np.mean(labels[0] != expected)),
        "mean_colour_distance": float(np.mean(dist[0])),
    }


def frame0_problem(check: dict) -> str | None:
    parts = []
    if check["cells_differ"] > WARN_CELLS:
        parts.append(f"{check['cells_differ']:.0%} of the grid cells in frame 0 differ from the puzzle")
    if check["mean_colour_distance"] > WARN_DIST:
        parts.append(
            f"frame 0's colours sit {check['mean_colour_distance']:.0f} RGB units from the palette on average"
        )
    if not parts:
        return None
    return (
        "; ".join(parts) + ": is this the video of this puzzle, rendered at vrlvr's layout for its frame "
        "size (not a side-by-side `vrlvr sample` video)? Pass --bbox or --theme if not"
    )


def _read_video(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"video {path!r} does not exist")
    if path.endswith(".npy"):
        try:
            frames = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path!r} as a numpy array: {exc}") from None
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            got = f"{frames.dtype} {frames.shape}"
            raise ValueError(f"{path!r} must hold uint8 frames [F, H, W, 3], got {got}")
        return frames
    from vrlvr.tasks.video_io import read_video

    return read_video(path)  # FileNotFoundError / one-line ValueError for unreadable files


def _parse_bbox(text: str | None):
    if text is None:
        return None
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ValueError(f"--bbox must be four numbers TOP,LEFT,HEIGHT,WIDTH, got {text!r}")
    return box


def run(args: argparse.Namespace) -> int:
    from vrlvr import tasks
    from vrlvr.tasks.themes import THEMES, theme_index
    from vrlvr.verify import detect_theme, reward_config, verify_video

    task = tasks.get(args.task)
    config = reward_config(task, args.preset)  # refuses a task without verification rules, before any I/O
    if not os.path.exists(args.puzzle):
        raise FileNotFoundError(f"puzzle file {args.puzzle!r} does not exist")
    if os.path.isdir(args.puzzle):
        raise ValueError(f"--puzzle {args.puzzle!r} is a folder; give the puzzle's text file")
    try:
        with open(args.puzzle, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ValueError(f"puzzle file {args.puzzle!r} is not text (the task's text format)") from None
    try:
        puzzle = task.from_text(text)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"puzzle file {args.puzzle!r} is not a {task.name} puzzle: {exc}") from None
    frames = _read_video(args.video)
    bbox = _parse_bbox(args.bbox)
    if args.theme is None:
        theme = detect_theme(task, puzzle, frames, bbox=bbox, backend=args.backend)
    else:
        theme = theme_index(args.theme)
    check = frame0_check(task, puzzle, frames, theme, bbox, args.backend)
    problem = frame0_problem(check)
    if problem and check["cells_differ"] > REFUSE_CELLS and not args.force:
        raise ValueError(f"frame 0 does not show this puzzle: {problem} (--force verifies anyway)")
    if problem:
        print(f"vrlvr verify: warning: {problem}; the verdict may be wrong", file=sys.stderr)
    verdict = verify_video(task, puzzle, frames, theme=theme, bbox=bbox, config=config, backend=args.backend)
    report = {
        "task": task.name,
        "preset": args.preset,
        "theme": list(THEMES)[theme],
        "frames": list(frames.shape),
        **verdict.to_dict(),
        "frame0": {**check, "warning": problem},
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        status = "SOLVED" if verdict.success else "NOT SOLVED"
        print(
            f"{status}  reward {verdict.reward:.4f}  ({task.name}, {args.preset} reward, "
            f"theme {report['theme']}, {frames.shape[0]} frames of {frames.shape[1]}x{frames.shape[2]})"
        )
        for name in ("precision", "recall", "f1"):
            value = getattr(verdict, name)
            print(f"  {name:<22} {value:.4f}" if value is not None else f"  {name:<22} -")
        print("components:")
        for key, value in verdict.components.items():
            print(f"  {key:<22} {value:.4f}")
        if verdict.reason:
            print(f"reason: {verdict.reason}")
    return 0 if verdict.success else 1
