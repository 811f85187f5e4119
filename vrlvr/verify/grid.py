"""Grid helpers shared by the rule checkers: 4-connected components, same-label neighbour counts,
the per-cell majority state over the last frames, and precision / recall / F1.

The loops are numba-compiled (``cache=True``: compiled once per machine, then loaded from the
cache next to this file).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["components", "neighbour_counts", "majority_state", "prf"]


@numba.njit(cache=True)
def _components(mask):  # pragma: no cover - compiled
    R, C = mask.shape
    out = np.zeros((R, C), np.int32)
    stack = np.empty(R * C, np.int64)
    n = 0
    for r0 in range(R):
        for c0 in range(C):
            if not mask[r0, c0] or out[r0, c0] != 0:
                continue
            n += 1
            out[r0, c0] = n
            top = 0
            stack[0] = r0 * C + c0
            top = 1
            while top > 0:
                top -= 1
                r = stack[top] // C
                c = stack[top] % C
                for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    rr = r + dr
                    cc = c + dc
                    if 0 <= rr < R and 0 <= cc < C and mask[rr, cc] and out[rr, cc] == 0:
                        out[rr, cc] = n
                        stack[top] = rr * C + cc
                        top += 1
    return out


def components(mask: np.ndarray) -> np.ndarray:
    """bool [R, C] -> int32 [R, C]: 0 outside the mask, 1..n the 4-connected component of a cell."""
    return _components(np.ascontiguousarray(mask, dtype=np.bool_))


def neighbour_counts(mask: np.ndarray) -> np.ndarray:
    """bool [R, C] -> int [R, C]: how many of each cell's 4 neighbours lie in the mask."""
    m = np.pad(np.asarray(mask, bool), 1).astype(np.int8)
    return m[:-2, 1:-1] + m[2:, 1:-1] + m[1:-1, :-2] + m[1:-1, 2:]


@numba.njit(cache=True)
def _majority(states):  # pragma: no cover - compiled
    k, R, C = states.shape
    out = np.empty((R, C), np.int8)
    for r in range(R):
        for c in range(C):
            best = states[k - 1, r, c]
            best_n = 0
            # latest frame first, so ties go to the more recent label
            for i in range(k - 1, -1, -1):
                v = states[i, r, c]
                n = 0
                for j in range(k):
                    if states[j, r, c] == v:
                        n += 1
                if n > best_n:
                    best_n = n
                    best = v
            out[r, c] = best
    return out


def majority_state(states: np.ndarray, k: int) -> np.ndarray:
    """int8 [F, R, C] -> int8 [R, C]: per cell, the most frequent label over the last k frames
    (ties go to the most recent). With k = 3 a one-frame flicker anywhere in the last three frames
    is outvoted; k = 1 is the last frame."""
    k = max(1, min(int(k), len(states)))
    return _majority(np.ascontiguousarray(states[-k:], dtype=np.int8))


def prf(true_positive: int, predicted: int, actual: int) -> tuple[float, float, float]:
    """Precision, recall, F1. Nothing predicted and nothing to find counts as perfect (1, 1, 1);
    nothing predicted with something to find as precision 0."""
    if predicted == 0 and actual == 0:
        return 1.0, 1.0, 1.0
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1
