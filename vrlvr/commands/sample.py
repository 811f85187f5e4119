"""Generate videos from a checkpoint and write them side by side with the ground truth.

    vrlvr sample --checkpoint maze-tiny --task maze --n 8 --out samples/

For each puzzle, OUT/NNN_seedS_sizeZ.mp4 shows the generated video (left, labelled GENERATED)
beside the rendered ground-truth solution (right, labelled GROUND TRUTH), upscaled with
nearest-neighbour pixels (--scale); OUT/verdicts.jsonl holds each video's verdict; OUT/NNN_....txt
the puzzle text. A non-empty OUT is refused (--overwrite replaces earlier samples), so old videos
never sit beside new verdicts. ``--sde-window A B`` (with ``--eta``, ``--mode``) samples as the
SDE-GRPO trainer rolls out, as in `vrlvr eval`. These side-by-side videos are for people: `vrlvr
verify` takes a single video (vrlvr eval scores the generated videos directly).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np

from vrlvr.commands._policy_args import (
    add_policy_arguments,
    add_sampler_arguments,
    check_sampler_arguments,
    evaluate_resolved,
    resolve,
    resolve_sampler,
    resolved_puzzles,
    sampler_report,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_policy_arguments(parser, n_default=8)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--scale", type=int, default=0, help="upscale factor (0: to at least 256 px tall)")
    parser.add_argument("--fps", type=int, default=4, help="frames per second of the MP4s")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace earlier samples in a non-empty --out"
    )
    add_sampler_arguments(parser)


# 3x5 bitmap glyphs for the side labels (no font files, no extra dependency)
_GLYPHS = {
    "G": ("011", "100", "101", "101", "011"),
    "E": ("111", "100", "110", "100", "111"),
    "N": ("110", "101", "101", "101", "101"),
    "R": ("110", "101", "110", "101", "101"),
    "A": ("010", "101", "111", "101", "101"),
    "T": ("111", "010", "010", "010", "010"),
    "D": ("110", "101", "101", "101", "110"),
    "O": ("010", "101", "101", "101", "010"),
    "U": ("101", "101", "101", "101", "111"),
    "H": ("101", "101", "111", "101", "101"),
    " ": ("000",) * 5,
}


def text_mask(text: str, px: int) -> np.ndarray:
    """bool [5 px, (4 len - 1) px]: the text in the 3x5 glyphs, each glyph pixel px x px."""
    cols = []
    for i, ch in enumerate(text.upper()):
        glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[ch]])  # [5, 3]
        if i:
            cols.append(np.zeros((5, 1), bool))
        cols.append(glyph)
    return np.concatenate(cols, axis=1).repeat(px, axis=0).repeat(px, axis=1)


def label_bar(width_left: int, width_right: int, gutter: int) -> np.ndarray:
    """uint8 [h, width_left + gutter + width_right, 3]: GENERATED over the left half, GROUND TRUTH
    over the right, white on black."""
    px = max(1, min(4, min(width_left, width_right) // 50))
    h = 7 * px
    bar = np.zeros((h, width_left + gutter + width_right, 3), np.uint8)
    for text, x0, w in (("GENERATED", 0, width_left), ("GROUND TRUTH", width_left + gutter, width_right)):
        mask = text_mask(text, px)
        if mask.shape[1] > w:  # too narrow for the full label
            mask = text_mask(text.split()[-1][:1], px)
        left = x0 + (w - mask.shape[1]) // 2
        bar[px : px + mask.shape[0], left : left + mask.shape[1]][mask] = 255
    return bar


def side_by_side(generated: np.ndarray, truth: np.ndarray, scale: int) -> np.ndarray:
    """[F, H, W, 3] x 2 -> [F, h + H*s, (2W + 1)*s, 3]: a one-pixel white gutter, and a label bar of
    h rows on top saying which side is which."""
    gutter = np.full((*generated.shape[:2], 1, 3), 255, np.uint8)
    both = np.concatenate([generated, gutter, truth], axis=2)
    both = both.repeat(scale, axis=1).repeat(scale, axis=2)
    W = generated.shape[2] * scale
    bar = label_bar(W, W, scale)  # [h, (2W + 1) s, 3]
    return np.concatenate([np.broadcast_to(bar, (len(both), *bar.shape)), both], axis=1)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty --out unless --overwrite, and --overwrite of a folder of other things."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"--out {out} is not empty: pass --overwrite to replace its samples, or another --out"
        )
    if not (out / "verdicts.jsonl").is_file():
        raise ValueError(
            f"--out {out} is not empty and holds no verdicts.jsonl, so it is not a samples folder: "
            "choose another --out"
        )


def _prepare_out(out: Path, overwrite: bool) -> bool:
    """Check --out, empty earlier samples; returns whether the folder existed (failure cleanup then
    removes only what this run wrote)."""
    _check_out(out, overwrite)
    if not out.is_dir():
        out.mkdir(parents=True)
        return False
    if any(out.iterdir()):
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    return True


def run(args: argparse.Namespace) -> int:
    if args.fps < 1:
        raise ValueError(f"--fps must be >= 1, got {args.fps}")
    if args.scale < 0:
        raise ValueError(f"--scale must be >= 0 (0: automatic), got {args.scale}")
    check_sampler_arguments(args)
    out = Path(args.out)
    _check_out(out, args.overwrite)  # before the model loads and generates
    s = resolve(args)
    sde = resolve_sampler(args, s)
    puzzles, _ = resolved_puzzles(s, args)
    metrics, (records,) = evaluate_resolved(s, args, puzzles, keep_videos=True, sde=sde)
    existed = _prepare_out(out, args.overwrite)
    try:
        _write_samples(out, s, args, puzzles, records)
    except BaseException:
        # no half-written folder: remove what this run wrote
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    summary = {k: metrics.get(k) for k in ("n", "success_rate", "loose_success_rate", "mean_reward")}
    print(json.dumps({"out": str(out), **summary, "sampler": sampler_report(sde)}))
    return 0


def _write_samples(out: Path, s: dict, args: argparse.Namespace, puzzles: list, records: list) -> None:
    from vrlvr.tasks.video_io import write_mp4

    task = s["task"]
    tmp = out / f".verdicts.jsonl.tmp-{os.getpid()}"
    with tmp.open("w") as fh:
        for i, (p, rec) in enumerate(zip(puzzles, records)):
            truth = s["video"].render(task, [p.puzzle], [task.solve(p.puzzle)], [s["theme"]])[0]
            gen = rec["video"]
            scale = args.scale or max(1, -(-256 // gen.shape[1]))
            stem = f"{i:03d}_seed{p.seed}_size{p.size}"
            write_mp4(out / f"{stem}.mp4", side_by_side(gen, truth, scale), fps=args.fps)
            (out / f"{stem}.txt").write_text(p.puzzle.to_text() + "\n")
            fh.write(
                json.dumps(
                    {
                        "video": f"{stem}.mp4",
                        "left": "generated",
                        "right": "ground truth",
                        "seed": p.seed,
                        "size": p.size,
                        **rec["verdict"].to_dict(),
                    }
                )
                + "\n"
            )
    os.replace(tmp, out / "verdicts.jsonl")
