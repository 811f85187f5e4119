"""Which frames decide the final state of a video.

A solution video shows the finished state from the frame of its last action to the end: with A
actions and F frames (vrlvr.tasks.base.action_frame_indices) that is F - A frames when A < F, and
only the last frame otherwise. The verifiers take the per-cell majority over the last
min(k_max, that many) frames: a one-frame flicker at the end of a generated video is outvoted, and
a video that finishes on its last frame (as the reference does when actions outnumber frames) is
not punished for it.
"""

from __future__ import annotations

__all__ = ["final_window"]


def final_window(num_frames: int, num_actions: int, k_max: int = 3) -> int:
    """Number of last frames to take the majority over (>= 1)."""
    hold = num_frames - num_actions if num_actions < num_frames else 1
    return max(1, min(int(k_max), hold, num_frames))
