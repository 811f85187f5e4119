"""Generate videos from a checkpoint and write them side by side with the ground truth.

    vrlvr sample --checkpoint maze-tiny --task maze --n 8 --out samples/

For each puzzle, OUT/NNN_seedS_sizeZ.mp4 shows the generated video (left) beside the rendered
ground-truth solution (right), upscaled with nearest-neighbour pixels (--scale); OUT/verdicts.jsonl
holds each video's verdict; OUT/NNN_....txt the puzzle text.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vrlvr.commands._policy_args import add_policy_arguments, evaluate_resolved, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_policy_arguments(parser, n_default=8)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--scale", type=int, default=0, help="upscale factor (0: to at least 256 px tall)")
    parser.add_argument("--fps", type=int, default=4, help="frames per second of the MP4s")


def side_by_side(generated: np.ndarray, truth: np.ndarray, scale: int) -> np.ndarray:
    """[F, H, W, 3] x 2 -> [F, H*s, (2W + 1)*s, 3] with a one-pixel white gutter."""
    gutter = np.full((*generated.shape[:2], 1, 3), 255, np.uint8)
    both = np.concatenate([generated, gutter, truth], axis=2)
    return both.repeat(scale, axis=1).repeat(scale, axis=2)


def run(args: argparse.Namespace) -> int:
    from vrlvr.tasks.video_io import write_mp4
    from vrlvr.train.data import eval_puzzles

    s = resolve(args)
    task = s["task"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    puzzles, _ = eval_puzzles(task, s["sizes"], args.n, args.seed, allowed=s["allowed"])
    metrics, records = evaluate_resolved(s, args, puzzles, keep_videos=True)
    with (out / "verdicts.jsonl").open("w") as fh:
        for i, (p, rec) in enumerate(zip(puzzles, records)):
            truth = s["video"].render(task, [p.puzzle], [task.solve(p.puzzle)], [s["theme"]])[0]
            gen = rec["video"]
            scale = args.scale or max(1, -(-256 // gen.shape[1]))
            stem = f"{i:03d}_seed{p.seed}_size{p.size}"
            write_mp4(out / f"{stem}.mp4", side_by_side(gen, truth, scale), fps=args.fps)
            (out / f"{stem}.txt").write_text(p.puzzle.to_text() + "\n")
            fh.write(
                json.dumps(
                    {"video": f"{stem}.mp4", "seed": p.seed, "size": p.size, **rec["verdict"].to_dict()}
                )
                + "\n"
            )
    summary = {k: metrics.get(k) for k in ("n", "success_rate", "loose_success_rate", "mean_reward")}
    print(json.dumps({"out": str(out), **summary}))
    return 0
