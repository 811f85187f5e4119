"""Frame parser benchmark: native (C++/OpenMP) vs the numpy reference on a GRPO-sized group.

    python bench/bench_parse.py [--videos 8] [--frames 33] [--height 480] [--width 832] [--size 21]
                                [--repeats 5] [--out results.json]

The group is N maze solution videos (size x size wall grid, the largest maze) rendered at H x W with
pixel noise, parsed in one call. Reported (JSON on stdout): seconds per call for each backend and
the speed-up; the bytes the parser actually reads (only the centre patches, 3 bytes per pixel)
beside the bytes of the frames; the effective read bandwidth of the native parse; and the
machine's memory bandwidth measured in the same run as a large numpy copy (bytes read + written
per second), so the parse can be placed against what the memory system allows.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def copy_bandwidth(nbytes: int = 256 << 20, repeats: int = 3) -> float:
    """Bytes per second moved by a large memcpy-like copy (read + write both counted)."""
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    t = _best(lambda: np.copyto(dst, src), repeats)
    return 2 * nbytes / t


def make_group(n: int, frames: int, height: int, width: int, size: int, seed: int = 0):
    from vrlvr import tasks

    maze = tasks.get("maze")
    rng = np.random.default_rng(seed)
    puzzles = [maze.generate(seed=seed + i, size=size) for i in range(n)]
    videos = np.empty((n, frames, height, width, 3), np.uint8)  # [N, F, H, W, 3]
    for i, p in enumerate(puzzles):
        clean = maze.render(p, num_frames=frames, height=height, width=width)
        noise = rng.integers(-8, 9, clean.shape, dtype=np.int16)
        videos[i] = np.clip(clean.astype(np.int16) + noise, 0, 255)
    layout = maze.layout(puzzles[0], height, width)
    return maze, puzzles, videos, layout


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=8, help="videos in the group parsed at once")
    ap.add_argument("--frames", type=int, default=33, help="frames per video")
    ap.add_argument("--height", type=int, default=480, help="frame height in pixels")
    ap.add_argument("--width", type=int, default=832, help="frame width in pixels")
    ap.add_argument("--size", type=int, default=21, help="maze wall-grid side (cells per side)")
    ap.add_argument(
        "--patch", type=float, default=0.5, help="centre patch read per cell (fraction of a side)"
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions (the best is reported)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    from vrlvr import _native
    from vrlvr.bench.common import emit, machine
    from vrlvr.verify import parse_frames, patch_bounds
    from vrlvr.verify.parse import patch_steps

    maze, puzzles, videos, layout = make_group(args.videos, args.frames, args.height, args.width, args.size)
    palette = maze.palette(0)
    grid = layout.grid_shape

    def run(backend):
        return parse_frames(videos, grid, palette, bbox=layout.bbox, patch=args.patch, backend=backend)

    native_s = _best(lambda: run("native"), args.repeats)
    numpy_s = _best(lambda: run("numpy"), 1)
    a, b = run("native"), run("numpy")
    agree = bool(np.array_equal(a[0], b[0]) and np.abs(a[1] - b[1]).max() <= 1e-4)

    y0, y1, x0, x1 = patch_bounds(grid, (args.height, args.width), layout.bbox, args.patch)
    dy, dx = patch_steps(y0, y1, x0, x1)  # large patches are read on a strided sub-grid
    rows_read, cols_read = -(-(y1 - y0) // dy), -(-(x1 - x0) // dx)
    patch_pixels = int(np.sum(rows_read)) * int(np.sum(cols_read))  # sum over cells of h_r * w_c
    n_frames = args.videos * args.frames
    bytes_read = 3 * patch_pixels * n_frames
    frame_bytes = videos.nbytes
    mem_bw = copy_bandwidth()
    result = {
        "benchmark": "parse_frames",
        "group": {
            "videos": args.videos,
            "frames": args.frames,
            "height": args.height,
            "width": args.width,
            "grid": list(grid),
            "cell_px": layout.cell_size[0],
            "patch": args.patch,
        },
        "threads": _native.max_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "native_s": native_s,
        "numpy_s": numpy_s,
        "speedup": numpy_s / native_s,
        "target_speedup": 10.0,
        "backends_agree": agree,
        "native_frames_per_s": n_frames / native_s,
        "bytes_read": bytes_read,
        "frame_bytes": frame_bytes,
        "fraction_of_frame_read": bytes_read / frame_bytes,
        "native_read_bandwidth_GBps": bytes_read / native_s / 1e9,
        "memory_copy_bandwidth_GBps": mem_bw / 1e9,
        "machine": machine(native_threads=_native.max_threads()),
    }
    return emit(result, args.out)


if __name__ == "__main__":
    main()
