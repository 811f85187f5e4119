"""Parse + verify latency of one solution video per task (target: < 50 ms for 81 frames at 480x832
on 2 cores).

    python bench/bench_verify.py [--frames 81] [--height 480] [--width 832] [--repeats 5] [--out F]

For each task the largest puzzle is rendered, noised, and verified with task.verify_video (native
parse + the rules; theme given, as in training: detection would add one first-frame parse per
theme). "warm_s" is the best of the repeats once the puzzle's ground truth is cached
(as in training, where a GRPO group verifies G rollouts of each puzzle) and numba is compiled;
"cold_s" is the first call, including solving the puzzle. "parse_s" is the parse alone, so
rules_s = warm_s - parse_s. JSON on stdout.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SIZES = {"maze": 21, "flowfree": 8, "sokoban": 10}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=81, help="frames per video")
    ap.add_argument("--height", type=int, default=480, help="frame height in pixels")
    ap.add_argument("--width", type=int, default=832, help="frame width in pixels")
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions (the best is reported)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    from vrlvr import _native, tasks
    from vrlvr.bench.common import emit, machine
    from vrlvr.verify import parse_frames, truth_for
    from vrlvr.verify.truth import clear_cache

    rng = np.random.default_rng(0)
    results = {}
    for name, size in SIZES.items():
        task = tasks.get(name)
        puzzle = task.generate(seed=1, size=size)
        clean = task.render(puzzle, num_frames=args.frames, height=args.height, width=args.width)
        frames = np.clip(clean.astype(np.int16) + rng.integers(-8, 9, clean.shape, dtype=np.int16), 0, 255)
        frames = frames.astype(np.uint8)
        clear_cache()
        task.verify_video(puzzle, frames[:2], theme=0)  # compile numba outside the timing
        clear_cache()
        t0 = time.perf_counter()
        verdict = task.verify_video(puzzle, frames, theme=0)
        cold = time.perf_counter() - t0
        warm, parse = [], []
        layout = task.layout(puzzle, args.height, args.width)
        palette = task.palette(0, puzzle)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            task.verify_video(puzzle, frames, theme=0)
            warm.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            parse_frames(frames, layout.grid_shape, palette, bbox=layout.bbox)
            parse.append(time.perf_counter() - t0)
        results[name] = {
            "grid": list(layout.grid_shape),
            "actions": truth_for(task, puzzle).num_actions,
            "success": verdict.success,
            "reward": verdict.reward,
            "cold_s": cold,
            "warm_s": min(warm),
            "parse_s": min(parse),
            "rules_s": max(0.0, min(warm) - min(parse)),
            "under_50ms": min(warm) < 0.05,
        }
    out = {
        "benchmark": "verify_video",
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "machine": machine(native_threads=_native.max_threads()),
        "tasks": results,
    }
    return emit(out, args.out)


if __name__ == "__main__":
    main()
