"""Puzzle tasks: Maze, FlowFree and Sokoban behind one plugin interface (see base.Task).

>>> from vrlvr import tasks
>>> maze = tasks.get("maze")
>>> puzzle = maze.generate(seed=0, size=11)
>>> frames = maze.render(puzzle, num_frames=81, cell_px=4)   # uint8 [81, 44, 44, 3]
"""

from vrlvr.tasks.base import Layout, Task, Verdict, action_frame_indices, fit_layout, paint_grids
from vrlvr.tasks.registry import available, get, register
from vrlvr.tasks.themes import THEMES

__all__ = [
    "Layout",
    "Task",
    "Verdict",
    "THEMES",
    "action_frame_indices",
    "available",
    "fit_layout",
    "get",
    "paint_grids",
    "register",
]
