"""Verify one video against one puzzle: parse the frames into grid states, check the task's rules
and print the verdict (success, reward, every reward component, precision / recall / F1).

The video must show the grid where vrlvr renders it (the task's layout for the video's frame size,
as `vrlvr data` and Task.render produce); otherwise give the grid's pixel box with --bbox. Exit
status: 0 when the video solves the puzzle, 1 when it does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--backend", choices=["native", "numpy"], default=None, help="frame parser backend")


def _read_video(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"video {path!r} does not exist")
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    from vrlvr.tasks.video_io import read_video

    try:
        return read_video(path)
    except (OSError, RuntimeError, IndexError) as exc:
        raise ValueError(f"cannot read video {path!r}: {exc}") from exc


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
    from vrlvr.verify import detect_theme, verify_video

    task = tasks.get(args.task)
    if not os.path.exists(args.puzzle):
        raise FileNotFoundError(f"puzzle file {args.puzzle!r} does not exist")
    with open(args.puzzle, encoding="utf-8") as fh:
        puzzle = task.from_text(fh.read())
    frames = _read_video(args.video)
    bbox = _parse_bbox(args.bbox)
    if args.theme is None:
        theme = detect_theme(task, puzzle, frames, bbox=bbox, backend=args.backend)
    else:
        theme = theme_index(args.theme)
    verdict = verify_video(task, puzzle, frames, theme=theme, bbox=bbox, backend=args.backend)
    report = {
        "task": task.name,
        "theme": list(THEMES)[theme],
        "frames": list(frames.shape),
        **verdict.to_dict(),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        status = "SOLVED" if verdict.success else "NOT SOLVED"
        print(
            f"{status}  reward {verdict.reward:.4f}  ({task.name}, theme {report['theme']}, "
            f"{frames.shape[0]} frames of {frames.shape[1]}x{frames.shape[2]})"
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
