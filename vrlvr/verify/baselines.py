"""Trivial baselines: videos of cheap strategies that need no reasoning, as label grids.

A model is worth something only where it beats these on the same puzzles (``vrlvr eval`` reports
them beside the model). Each builder returns int8 [F, R, C] label grids (frame 0 the puzzle), which
``task.paint`` turns into pixels, so the baselines go through the same parser and rules as a model:

- every task: ``still`` (the puzzle held for every frame: doing nothing).
- maze: ``flood`` (every open cell painted at once: the paper's reward hack).
- flowfree: ``flood`` (one colour fills every empty cell) and ``voronoi`` (every empty cell takes
  the colour of its nearest endpoint, no path reasoning).
- sokoban: ``teleport`` (the boxes jump onto the goals, the player never moves) and ``dilution``
  (the player steps back and forth, every step legal (a push when it cannot walk), then the boxes
  jump onto the goals).

None of them needs the solver: they read only the puzzle's own label grid.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BASELINES", "baseline_states"]

BASELINES: dict[str, tuple[str, ...]] = {
    "maze": ("still", "flood"),
    "flowfree": ("still", "flood", "voronoi"),
    "sokoban": ("still", "teleport", "dilution"),
}


def baseline_states(task, puzzle, name: str, num_frames: int) -> np.ndarray:
    """int8 [num_frames, R, C]: the label grids of baseline ``name`` on ``puzzle``."""
    known = BASELINES.get(task.name)
    if known is None:
        raise ValueError(f"no baselines for task {task.name!r}; known: {sorted(BASELINES)}")
    if name not in known:
        raise ValueError(f"unknown {task.name} baseline {name!r}; choose from {list(known)}")
    if int(num_frames) < 2:
        raise ValueError(f"a baseline video needs at least 2 frames, got {num_frames}")
    F = int(num_frames)
    base = np.asarray(task.base_states(puzzle), np.int8)
    out = np.repeat(base[None], F, axis=0)
    if name == "still":
        return out
    if task.name == "maze":
        from vrlvr.tasks.maze import OPEN, PATH

        out[1:][:, base == OPEN] = PATH
        return out
    if task.name == "flowfree":
        return _flowfree(base, out, name)
    return _sokoban(base, out, name)


def _flowfree(base: np.ndarray, out: np.ndarray, name: str) -> np.ndarray:
    empty = base == 0
    if name == "flood":
        out[1:][:, empty] = int(base[~empty].min())  # the first colour everywhere
        return out
    ends = np.argwhere(~empty)  # [E, 2]
    cells = np.argwhere(empty)  # [N, 2]
    dist = np.abs(cells[:, None, :] - ends[None, :, :]).sum(-1)  # [N, E] Manhattan
    nearest = ends[np.argmin(dist, axis=1)]
    out[1:][:, cells[:, 0], cells[:, 1]] = base[nearest[:, 0], nearest[:, 1]]
    return out


def _sokoban(base: np.ndarray, out: np.ndarray, name: str) -> np.ndarray:
    from vrlvr.tasks.sokoban import BOX, BOX_ON_GOAL, FLOOR, GOAL, PLAYER, PLAYER_ON_GOAL, WALL

    goals = np.isin(base, (GOAL, BOX_ON_GOAL, PLAYER_ON_GOAL))
    player = tuple(int(v) for v in np.argwhere(np.isin(base, (PLAYER, PLAYER_ON_GOAL)))[0])
    boxes = [tuple(int(v) for v in p) for p in np.argwhere(np.isin(base, (BOX, BOX_ON_GOAL)))]
    goal_cells = [tuple(int(v) for v in p) for p in np.argwhere(goals)]

    def grid(player_at, boxes_at) -> np.ndarray:
        g = np.where(base == WALL, WALL, np.where(goals, GOAL, FLOOR)).astype(np.int8)
        for b in boxes_at:
            g[b] = BOX_ON_GOAL if goals[b] else BOX
        g[player_at] = PLAYER_ON_GOAL if goals[player_at] else PLAYER
        return g

    solved_boxes = goal_cells[: len(boxes)]
    solved_player = player
    if player in solved_boxes:  # a box lands where the player stands: the player takes a box's place
        solved_player = next(b for b in boxes if b not in solved_boxes)
    solved = grid(solved_player, solved_boxes)
    if name == "teleport":
        out[1:] = solved
        return out
    # dilution: one legal step (a walk, else a push) and back, repeated, then the teleport at the end
    R, C = base.shape

    def free(r, c):
        return 0 <= r < R and 0 <= c < C and base[r, c] in (FLOOR, GOAL)

    away = home = base
    for push in (False, True):
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            r, c = player[0] + dr, player[1] + dc
            if not push and free(r, c):
                away = grid((r, c), boxes)
            elif push and (r, c) in boxes and free(r + dr, c + dc):
                moved = [(r + dr, c + dc) if b == (r, c) else b for b in boxes]
                away, home = grid((r, c), moved), grid(player, moved)  # then walk back and forth
            else:
                continue
            break
        if away is not base:
            break
    hold = min(3, len(out) - 1)
    for f in range(1, len(out) - hold):
        out[f] = away if f % 2 else home
    out[len(out) - hold :] = solved
    return out
