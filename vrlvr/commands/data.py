"""Generate puzzles, first frames (PNG), solution videos (MP4) and metadata.jsonl.

Train and test never share a puzzle seed: stream position k (from --seed) uses seed 2k for train
and 2k + 1 for test. --exclude drops puzzles already in another set (by canonical key), e.g. build
the test set first, then the training set with --exclude TEST_DIR.

Examples:
  vrlvr data --task maze --n 100 --seed 0 --out data/maze_train
  vrlvr data --task sokoban --n 200 --split test --cell-px 4 --num-frames 33 --out data/sok_test
  vrlvr data --task mypkg.tasks:MyTask --n 10 --sizes 5 6 --out data/mine
"""

from __future__ import annotations

import argparse
import json
import sys

from vrlvr.tasks.video_io import X264_PRESETS


def parse_option(text: str) -> tuple[str, object]:
    """argparse type of ``--option KEY=VALUE``: the value as int, float or text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, _, value = text.partition("=")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def add_option_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--option KEY=VALUE`` (repeatable): a difficulty keyword for the task's generator."""
    parser.add_argument(
        "--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE", help=help
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--task", required=True, help="maze, flowfree, sokoban, or a user task 'pkg.module:Class'"
    )
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--seed", type=int, default=0, help="first seed-stream position (default 0)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--split",
        choices=("train", "test"),
        default="train",
        help="seed stream: train uses even puzzle seeds, test odd ones (default train)",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="sizes to cycle through (default: the task's range)"
    )
    parser.add_argument("--num-frames", type=int, default=81, help="frames per video (default 81)")
    parser.add_argument("--height", type=int, help="frame height in pixels (default 480)")
    parser.add_argument("--width", type=int, help="frame width in pixels (default 832)")
    parser.add_argument("--cell-px", type=int, help="frame = grid at this many pixels per cell (e.g. 4)")
    parser.add_argument(
        "--theme", default="0", help="theme index or name, or 'random' per sample (default 0)"
    )
    add_option_argument(
        parser, "difficulty option passed to generate, e.g. algorithm=kruskal, boxes=2, colours=6"
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--no-video", action="store_true", help="skip the MP4 files")
    parser.add_argument("--fps", type=int, default=16, help="video frame rate (default 16)")
    parser.add_argument("--crf", type=int, default=18, help="x264 constant rate factor (default 18)")
    parser.add_argument(
        "--preset",
        default="ultrafast",
        choices=X264_PRESETS,
        metavar="PRESET",
        help="x264 speed preset: " + ", ".join(X264_PRESETS) + " (default ultrafast: fastest; veryfast "
        "gives smaller files)",
    )
    parser.add_argument("--unique", action="store_true", help="skip puzzles repeated within this run")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATH",
        help="metadata.jsonl (or its folder) whose puzzles must not appear (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the dataset in a non-empty --out folder"
    )


def run(args: argparse.Namespace) -> int:
    from vrlvr.tasks.dataset import DatasetSpec, build_dataset, read_keys

    keys: frozenset[str] = frozenset()
    for path in args.exclude:
        keys |= read_keys(path)
    theme = args.theme
    if theme != "random" and theme.isdigit():
        theme = int(theme)
    spec = DatasetSpec(
        task=args.task,
        n=args.n,
        out=args.out,
        seed=args.seed,
        split=args.split,
        sizes=tuple(args.sizes) if args.sizes else None,
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        cell_px=args.cell_px,
        theme=theme,
        options=dict(args.option),
        workers=args.workers,
        video=not args.no_video,
        fps=args.fps,
        crf=args.crf,
        preset=args.preset,
        unique=args.unique,
        exclude_keys=keys,
        progress=not args.quiet and sys.stderr.isatty(),
        overwrite=args.overwrite,
    )
    summary = build_dataset(spec)
    print(json.dumps(summary))
    return 0
