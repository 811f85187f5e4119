"""Verification: videos -> grid states -> rule checks -> decomposed rewards.

>>> from vrlvr import tasks, verify
>>> maze = tasks.get("maze")
>>> puzzle = maze.generate(seed=0, size=11)
>>> frames = maze.render(puzzle, num_frames=33, cell_px=8)
>>> verdict = verify.verify_video(maze, puzzle, frames)      # Verdict(success=True, reward=1.0, ...)

- ``parse_frames``: pixels -> per-cell palette labels (native C++/OpenMP, or the numpy reference)
- ``verify_video`` / ``verify_batch``: geometry + palette + one parse + the task's rules
- ``verify_states``: the rules on already-parsed label grids
- reward configs: ``MazeRewardConfig``, ``FlowFreeRewardConfig``, ``SokobanRewardConfig``;
  ``reward_config(task, preset="default" | "paper", **fields)`` builds one by task name
"""

from vrlvr.verify.flowfree import FlowFreeRewardConfig, check_flowfree
from vrlvr.verify.maze import MazeRewardConfig, check_maze
from vrlvr.verify.parse import parse_frames, patch_bounds
from vrlvr.verify.sokoban import SokobanRewardConfig, check_sokoban
from vrlvr.verify.truth import Truth, truth_for
from vrlvr.verify.video import (
    PRESETS,
    RULES,
    detect_theme,
    reward_config,
    verify_batch,
    verify_states,
    verify_video,
)

__all__ = [
    "PRESETS",
    "RULES",
    "reward_config",
    "FlowFreeRewardConfig",
    "MazeRewardConfig",
    "SokobanRewardConfig",
    "Truth",
    "check_flowfree",
    "check_maze",
    "check_sokoban",
    "detect_theme",
    "parse_frames",
    "patch_bounds",
    "truth_for",
    "verify_batch",
    "verify_states",
    "verify_video",
]
