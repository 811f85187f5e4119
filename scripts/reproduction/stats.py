"""Bootstrap intervals: over puzzles (one run), over training seeds and puzzles (a crossed design),
and the puzzle's share of whether a video succeeds."""

from __future__ import annotations

import numpy as np

from reproduction.settings import METRICS


def bootstrap(values: np.ndarray, reps: int = 2000, seed: int = 0) -> dict:
    """Mean and 95% percentile interval over puzzles (rows) for each metric column."""
    rng = np.random.default_rng(seed)
    n = len(values)
    idx = rng.integers(0, n, size=(reps, n))
    means = np.nanmean(values[idx], axis=1)  # [reps, metrics]
    lo, hi = np.nanpercentile(means, [2.5, 97.5], axis=0)
    mean = np.nanmean(values, axis=0)
    return {m: {"mean": float(mean[k]), "ci95": [float(lo[k]), float(hi[k])]} for k, m in enumerate(METRICS)}


def puzzle_share_ci(success: np.ndarray, samples: int, reps: int = 2000, seed: int = 0) -> dict | None:
    """vrlvr.train.evaluate.puzzle_share (does the policy solve some puzzles reliably, or every
    puzzle at the same odds?) with a 95% percentile interval over puzzles (resamples where it is
    undefined are left out); None when it is undefined on the puzzles themselves."""
    from vrlvr.train.evaluate import puzzle_share

    s = np.asarray(success, dtype=float)
    point = puzzle_share(s, samples)
    if point is None:
        return None
    rng = np.random.default_rng(seed)
    draws = [puzzle_share(s[rng.integers(0, len(s), len(s))], samples) for _ in range(reps)]
    draws = [d for d in draws if d is not None]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"mean": point, "ci95": [float(lo), float(hi)]}


def seed_bootstrap(gains: np.ndarray, reps: int = 2000, seed: int = 0) -> dict:
    """gains [seeds, puzzles, metrics] (each training seed's paired gain on the same puzzles) -> the
    mean over seeds and puzzles and its 95% interval from a two-way bootstrap that resamples the
    training seeds and the puzzles (a crossed design: every seed is scored on every puzzle). The
    interval counts both spreads: what a rerun of training gives, and which puzzles were drawn."""
    rng = np.random.default_rng(seed)
    S, P = gains.shape[:2]
    si = rng.integers(0, S, size=(reps, S))
    pi = rng.integers(0, P, size=(reps, P))
    means = np.nanmean(gains[si[:, :, None], pi[:, None, :]], axis=(1, 2))  # [reps, metrics]
    lo, hi = np.nanpercentile(means, [2.5, 97.5], axis=0)
    mean = np.nanmean(gains, axis=(0, 1))
    return {m: {"mean": float(mean[k]), "ci95": [float(lo[k]), float(hi[k])]} for k, m in enumerate(METRICS)}
