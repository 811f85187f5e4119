"""Frames -> per-cell palette labels: the batch frame parser.

``parse_frames`` is the inverse of ``vrlvr.tasks.base.paint_grids``. For every (video, frame,
cell) it reads only the centre patch of the cell (a fraction ``patch`` of each cell side), takes
the per-channel **median** of the patch, and labels the cell with the nearest palette colour by
Euclidean RGB distance.

Why the median: generated video is blurred at cell edges, rings with compression artefacts and may
show grid lines or decorations (FlowFree endpoint rings live in the outer 15% of a cell). Inside the
centre patch such pixels are a minority, and the median ignores any minority below one half, where
a mean is pulled toward every outlier. The native parser computes it from a 256-bin counting
histogram per channel, which measured 8x faster than ``std::nth_element`` on 121-pixel patches
(13 ms vs 110 ms for 81 frames of a 21x21 grid at 480x832, one thread); the numpy reference uses
``np.median``. Both give the same value (even counts: the mean of the two middle values).

Large patches are read on an even sub-grid: at most ``samples_per_side`` (default 16) pixels per
patch side, so at most 256 samples per cell. A 480x832 frame of an 8x8 FlowFree board has 60 px
cells and 30x30 patches; the median of a 15x15 sub-grid of a flat-coloured patch is as robust and
costs a quarter (bench/bench_verify.py). Cells of up to 32 px (patches of up to 16 px) are read in
full.

Why plain RGB distance: the task palettes keep every pair of colours at least 100 apart in RGB
(vrlvr.tasks.themes.MIN_PALETTE_DISTANCE), so a perceptual weighting would not change which colour
is nearest on real renders; plain RGB keeps the distance easy to reason about (``max_dist`` in the
same 0..441 units).

Backends: "native" (vrlvr._native, C++/OpenMP, GIL released; the default) and "numpy" (the
readable reference and test oracle; identical labels, distances equal within 1e-4).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["parse_frames", "patch_bounds", "patch_steps", "as_frames_array", "BACKENDS", "DEFAULT_MAX_DIST"]

BACKENDS = ("native", "numpy")
# Default "unknown" threshold (RGB units). Palette colours are >= 100 apart, so a cell within 60 of
# its nearest colour is unambiguous; libx264 at crf 23 plus pixel noise moves a flat cell's median
# by under 30, while uniform noise (median ~ grey) lies >= 139 from every maze / Sokoban colour.
DEFAULT_MAX_DIST = 60.0


def patch_bounds(
    grid_shape: tuple[int, int],
    frame_hw: tuple[int, int],
    bbox: Sequence[float] | None = None,
    patch: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel bounds of each cell's centre patch: (y0, y1) int64 [R] and (x0, x1) int64 [C], half-open.

    Cell r spans rows [top + r * ch, top + (r + 1) * ch) with ch = box_height / R (fractional). Its
    patch is the band of half-height ``patch * ch / 2`` around the cell centre; a pixel belongs to
    it when the pixel's centre (y + 0.5) lies in the band. A band too thin to hold a pixel centre
    still reads the one pixel under the cell centre, so every patch has at least one pixel.
    """
    try:
        R, C = grid_shape
        if int(R) != R or int(C) != C:  # 7.5 rows is a caller's bug, not something to truncate
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"grid_shape must be two positive ints (R, C), got {grid_shape!r}") from None
    R, C = int(R), int(C)
    H, W = (int(v) for v in frame_hw)
    if R < 1 or C < 1:
        raise ValueError(f"grid_shape must be two positive ints (R, C), got {tuple(grid_shape)}")
    if not (isinstance(patch, numbers.Real) and 0.0 < float(patch) <= 1.0):
        raise ValueError(f"patch must be a fraction in (0, 1], got {patch!r}")
    if bbox is None:
        bbox = (0.0, 0.0, float(H), float(W))
    try:
        top, left, bh, bw = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(f"bbox must be (top, left, height, width) in pixels, got {bbox!r}") from None
    eps = 1e-6
    if not all(math.isfinite(v) for v in (top, left, bh, bw)) or bh <= 0 or bw <= 0:
        raise ValueError(f"bbox must have finite position and positive size, got {tuple(bbox)}")
    if top < -eps or left < -eps or top + bh > H + eps or left + bw > W + eps:
        raise ValueError(
            f"bbox (top={top}, left={left}, height={bh}, width={bw}) must lie inside the {H}x{W} frame"
        )
    return (*_axis_bounds(top, bh, R, H, patch), *_axis_bounds(left, bw, C, W, patch))


def patch_steps(y0, y1, x0, x1, samples_per_side: int | None = 16) -> tuple[int, int]:
    """Pixel steps (dy, dx) inside the patches: the smallest steps that read at most
    ``samples_per_side`` pixels along each side of the largest patch (None: every pixel)."""
    if samples_per_side is None:
        return 1, 1
    if isinstance(samples_per_side, bool) or not isinstance(samples_per_side, (int, np.integer)):
        raise ValueError(f"samples_per_side must be a positive int or None, got {samples_per_side!r}")
    if samples_per_side < 1:
        raise ValueError(f"samples_per_side must be a positive int or None, got {samples_per_side!r}")
    n = int(samples_per_side)
    return -(-int(np.max(y1 - y0)) // n), -(-int(np.max(x1 - x0)) // n)


def _axis_bounds(start: float, extent: float, n: int, limit: int, patch: float):
    cell = extent / n
    centre = start + (np.arange(n, dtype=np.float64) + 0.5) * cell
    half = 0.5 * float(patch) * cell
    lo = np.ceil(centre - half - 0.5).astype(np.int64)
    hi = np.ceil(centre + half - 0.5).astype(np.int64)
    thin = hi <= lo
    lo = np.where(thin, np.floor(centre).astype(np.int64), lo)
    hi = np.where(thin, lo + 1, hi)
    lo = np.clip(lo, 0, limit - 1)
    hi = np.clip(hi, lo + 1, limit)
    return lo, hi


def as_frames_array(frames: Any) -> np.ndarray | list[np.ndarray]:
    """A numpy view of uint8 frames [F, H, W, 3] or [N, F, H, W, 3] (numpy array or torch CPU
    tensor), or a list of N such [F, H, W, 3] views of one shape (a group of videos that are not one
    array). Never copies. Raises ValueError saying what was expected."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("empty video: an empty list of videos")
        views = [_one_array(f, f"frames[{i}]", (4,)) for i, f in enumerate(frames)]
        for i, v in enumerate(views):
            if v.shape != views[0].shape:
                raise ValueError(
                    f"every video in the list must have the shape of frames[0] {views[0].shape}, "
                    f"frames[{i}] has {v.shape}"
                )
        return views
    return _one_array(frames, "frames", (4, 5))


def _one_array(frames: Any, what: str, ranks: tuple[int, ...]) -> np.ndarray:
    expected = " or ".join(("[F, H, W, 3]", "[N, F, H, W, 3]")[r - 4] for r in ranks)
    if type(frames).__module__.startswith("torch"):
        import torch

        if not isinstance(frames, torch.Tensor):
            raise ValueError(f"{what} must be a numpy array or torch tensor, got {type(frames).__name__}")
        if frames.device.type != "cpu":
            raise ValueError(f"{what} must be a CPU tensor (parse on the CPU), got device {frames.device}")
        if frames.dtype != torch.uint8:
            raise ValueError(f"{what} must be uint8, got {frames.dtype}")
        frames = frames.detach().numpy()
    elif not isinstance(frames, np.ndarray):
        raise ValueError(f"{what} must be a numpy array or torch tensor, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got dtype {frames.dtype}")
    if frames.ndim not in ranks:
        raise ValueError(f"{what} must be {expected}, got shape {frames.shape}")
    if frames.shape[-1] != 3:
        raise ValueError(f"{what} must have 3 (RGB) channels last, got shape {frames.shape}")
    if frames.size == 0:
        raise ValueError(f"empty video: {what} has shape {frames.shape}")
    return frames


def _check_palette(palette: Any, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """uint8 [K, 3], or [N, K, 3] (one palette per video) for a batch of N videos."""
    pal = np.asarray(palette)
    ok = pal.dtype == np.uint8 and pal.ndim in (2, 3) and pal.shape[-1] == 3 and 1 <= pal.shape[-2] <= 127
    if pal.ndim == 3:
        n = len(frames) if isinstance(frames, list) else (frames.shape[0] if frames.ndim == 5 else -1)
        ok = ok and pal.shape[0] == n
    if not ok:
        shape = f"a list of {len(frames)}" if isinstance(frames, list) else str(frames.shape)
        raise ValueError(
            "palette must be uint8 [K, 3] with 1 <= K <= 127 (or [N, K, 3], one per video of a batch "
            f"of N), got {pal.dtype} {pal.shape} for frames {shape}"
        )
    return pal


def parse_frames(
    frames: Any,
    grid_shape: tuple[int, int],
    palette: Any,
    *,
    bbox: Sequence[float] | None = None,
    patch: float = 0.5,
    max_dist: float | None = DEFAULT_MAX_DIST,
    backend: str | None = None,
    samples_per_side: int | None = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames -> (labels int8 [..., R, C], dist float32 [..., R, C]).

    frames: uint8 [F, H, W, 3] or [N, F, H, W, 3], numpy or torch CPU tensor, any strides (read in
        place); or a list of N [F, H, W, 3] arrays of one shape (parsed as a batch, not stacked).
    grid_shape: (R, C).
    palette: uint8 [K, 3], or [N, K, 3] (one per video of a batch).
    bbox: (top, left, height, width) of the grid in pixels (fractional allowed); default the frame.
    patch: fraction of each cell side read around its centre.
    max_dist: label -1 ("unknown") where the median colour is farther than this from every
        palette colour (RGB units, 0..441; default DEFAULT_MAX_DIST = 60); None: always the
        nearest colour.
    backend: "native" (default; env VRLVR_PARSE_BACKEND overrides the default) or "numpy".
    samples_per_side: read at most this many evenly strided pixels along each patch side (None:
        every pixel).
    """
    arr = as_frames_array(frames)
    pal = _check_palette(palette, arr)
    # numbers.Real admits numpy scalars (np.float32 from a config or a computed threshold)
    if max_dist is not None and not (
        isinstance(max_dist, numbers.Real) and not isinstance(max_dist, bool) and max_dist >= 0
    ):
        raise ValueError(f"max_dist must be a non-negative number or None, got {max_dist!r}")
    hw = (arr[0] if isinstance(arr, list) else arr).shape[-3:-1]
    y0, y1, x0, x1 = patch_bounds(grid_shape, hw, bbox, patch)
    dy, dx = patch_steps(y0, y1, x0, x1, samples_per_side)
    backend = backend or os.environ.get("VRLVR_PARSE_BACKEND") or "native"
    if backend == "native":
        from vrlvr import _native

        md = -1.0 if max_dist is None else float(max_dist)
        return _native.parse_frames(arr, y0, y1, x0, x1, pal, md, dy, dx)
    if backend == "numpy":
        frames = np.stack(arr) if isinstance(arr, list) else arr
        return _parse_numpy(frames, y0, y1, dy, x0, x1, dx, pal, max_dist)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _parse_numpy(frames, y0, y1, dy, x0, x1, dx, palette, max_dist):
    """The reference: same patches, same median, same nearest colour."""
    lead = frames.shape[:-3]  # (F,) or (N, F)
    R, C = len(y0), len(x0)
    med = np.empty((*lead, R, C, 3), np.float64)
    for r in range(R):
        for c in range(C):
            block = frames[..., y0[r] : y1[r] : dy, x0[c] : x1[c] : dx, :]  # [..., h, w, 3]
            med[..., r, c, :] = np.median(block.reshape(*lead, -1, 3), axis=-2)
    pal = palette.astype(np.float64)  # [K, 3] or [N, K, 3]
    if pal.ndim == 3:
        pal = pal[:, None, None, None]  # [N, 1, 1, 1, K, 3] against med [N, F, R, C, 1, 3]
    d2 = ((med[..., None, :] - pal) ** 2).sum(-1)  # [..., R, C, K]
    labels = d2.argmin(-1).astype(np.int8)
    dist = np.sqrt(np.take_along_axis(d2, labels[..., None].astype(np.int64), -1)[..., 0]).astype(np.float32)
    if max_dist is not None:
        labels[dist > np.float32(max_dist)] = -1
    return labels, dist
