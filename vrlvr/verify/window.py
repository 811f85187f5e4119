"""Which frames decide the final state of a video.

A solution video shows the finished state from the frame of its last action to the end: with A
actions and F frames (vrlvr.tasks.base.action_frame_indices) that is F - A frames when A < F, and
only the last frame otherwise. The verifiers take the per-cell majority over the last
min(k_max, that many) frames: a one-frame flicker at the end of a generated video is outvoted, and
a video that finishes on its last frame (as the reference does when actions outnumber frames) is
not punished for it.
"""

from __future__ import annotations

import numpy as np

from vrlvr.verify.grid import majority_state

__all__ = [
    "final_window",
    "check_states_shape",
    "final_state",
    "readability",
    "readability_term",
    "longest_run",
    "frames_readable_enough",
]


def final_window(num_frames: int, num_actions: int, k_max: int = 3) -> int:
    """Number of last frames to take the majority over (>= 1)."""
    hold = num_frames - num_actions if num_actions < num_frames else 1
    return max(1, min(int(k_max), hold, num_frames))


def check_states_shape(states: np.ndarray, truth, what: str) -> None:
    """ValueError unless ``states`` is [F, R, C] with (R, C) the puzzle's grid shape."""
    init = truth.initial
    if states.ndim != 3 or states.shape[1:] != init.shape:
        raise ValueError(f"{what} states must be [F, {init.shape[0]}, {init.shape[1]}], got {states.shape}")


def final_state(states: np.ndarray, truth, k_max: int, what: str) -> np.ndarray:
    """int8 [R, C]: the checked video's final state, the per-cell majority over its final window."""
    check_states_shape(states, truth, what)
    return majority_state(states, final_window(len(states), truth.num_actions, k_max))


def readability(states: np.ndarray, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(readable-cell fraction per frame float [F], frame fully readable bool [F]) of int8 [F, R, C].

    A cell is unreadable when it is unknown (label -1: the parser found no palette colour near its
    median: noise, a blend of two colours) or, with ``allowed`` (int labels), shows a label the
    puzzle's video never holds (e.g. a FlowFree colour the puzzle does not have: uniform noise
    reads as FlowFree's grey)."""
    ok = states >= 0 if allowed is None else np.isin(states, allowed)
    ok = ok.reshape(len(states), -1)
    return ok.mean(axis=1), ok.all(axis=1)


def readability_term(readable_cells: np.ndarray, cost: float) -> float:
    """max(0, 1 - cost x frames' worth of unreadable cells): a fully unreadable frame costs
    ``cost``, one unreadable cell of an R x C grid costs cost / (R C). A blurred cell here and there
    costs little; a stretch of noise frames costs most of the reward."""
    return max(0.0, 1.0 - float(cost) * float(np.sum(1.0 - np.asarray(readable_cells, np.float64))))


def longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in a bool [F] vector."""
    best = run = 0
    for f in np.asarray(flags, bool):
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def frames_readable_enough(readable: np.ndarray, min_fraction: float, max_run: int) -> bool:
    """Success gate on readability: at least ``min_fraction`` of the frames fully readable and no
    more than ``max_run`` unreadable frames in a row (an isolated blurred frame is tolerated; a
    stretch of noise is not)."""
    readable = np.asarray(readable, bool)
    return bool(readable.mean() >= min_fraction and longest_run(~readable) <= max_run)
