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

__all__ = ["final_window", "check_states_shape", "final_state"]


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
