"""Maze rules and reward, on parsed label grids (labels: 0 open, 1 wall, 2 start, 3 goal, 4 path).

Final state: the per-cell majority over the last frames (see ``final_window``). On it:

- ``painted`` P: cells labelled path; ``truth`` T: the solution's path cells (without S and G).
- connectivity: 1 when S and G are joined through painted cells (4-neighbour; S, G and P are the
  passable cells). Otherwise partial credit for progress: ``partial_connectivity`` x the fraction
  of T reached from S or from G through painted cells.
- wall violation: wall cells of the puzzle whose label changed (painted or erased), each costing
  ``wall_cost`` of the wall term: ``wall_term = max(0, 1 - wall_cost * n_changed_walls)``.
- precision term: (|P & T| / |P|) ** ``precision_exponent`` (default 3; 0 in the paper preset).
  Painting every corridor joins S and G but its precision is only |T| / |open cells|. Cubed, one
  stray cell on a 20-cell path still keeps 0.86. On the "classic" maze distribution (S and G at
  the diameter of a backtracker maze) the solution covers 67-90% of the corridors and flooding
  still pays (~0.44 at 13x13): the default distribution is built so that it does not.
- reward = connectivity x wall_term x precision ** precision_exponent.

That is the ``paper`` preset's rule set (``MazeRewardConfig.from_preset("paper")``: the paper's
connectivity x no-wall-violation, precision_exponent 0). The ``default`` preset closes what RL
would exploit in it:

- walls: painted wall cells join nothing (a line straight through a wall is not a path), besides
  costing ``wall_cost`` each.
- markers: S and G count as the path's anchors only while they still show their colour, and every
  changed marker (S or G painted over, an extra S or G label elsewhere) costs ``marker_cost`` of a
  marker term (0.75: a full path painted over S scored 0.75 before, now under a quarter).
- readability: cells the parser could not read (label -1) make a frame unreadable; the reward is
  multiplied by ``readability`` = 1 - ``unreadable_cost`` (0.35) per frame's worth of unreadable
  cells (three frames of noise cost it all; a blurred cell here and there almost nothing), and
  success needs ``min_readable`` of the frames fully readable with no run of more than
  ``max_unreadable_run``.
- reward = connectivity x wall_term x marker_term x precision ** 3 x readability. With the default
  maze distribution (the solution covers 20-45% of the open cells) flooding every corridor keeps
  precision near 0.3, so it earns under 0.05.

Success (strict, both presets): P + {S, G} is one simple path (S and G have one painted
neighbour, every painted cell two, one connected piece), no paint on walls, walls, S and G
unchanged; the default preset also needs readable frames. In a perfect maze this is exactly the
solution. ``paper_success`` (a component): S and G connected and no paint on walls, the looser
criterion of the VideoRLVR paper. Precision / recall / F1: P against T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrlvr.tasks.base import Verdict
from vrlvr.tasks.maze import GOAL, PATH, START, WALL
from vrlvr.verify.grid import components, neighbour_counts, prf
from vrlvr.verify.truth import Truth
from vrlvr.verify.window import final_state, frames_readable_enough, readability, readability_term

__all__ = ["MazeRewardConfig", "MAZE_PRESETS", "check_maze"]


@dataclass(frozen=True)
class MazeRewardConfig:
    """Weights of the maze reward (see the module docstring). ``from_preset("paper")`` gives the
    paper's rule set; fields given beside a preset override it."""

    preset: str = "default"  # "default" or "paper": which rule set check_maze applies
    partial_connectivity: float = 0.5  # credit scale for progress when S and G are not joined
    wall_cost: float = 0.5  # wall term lost per changed wall cell
    marker_cost: float = 0.75  # marker term lost per changed marker (default preset)
    precision_exponent: float = 3.0  # precision ** exponent in the reward
    unreadable_cost: float = 0.35  # reward lost per frame's worth of unreadable cells (default)
    min_readable: float = 0.75  # success: fraction of frames that must be fully readable
    max_unreadable_run: int = 1  # success: longest run of unreadable frames tolerated
    final_frames: int = 3  # majority window for the final state (at most)

    def __post_init__(self):
        if self.preset not in MAZE_PRESETS:
            raise ValueError(f"unknown maze reward preset {self.preset!r}; choose from {list(MAZE_PRESETS)}")

    @classmethod
    def from_preset(cls, name: str = "default", **overrides) -> MazeRewardConfig:
        if name not in MAZE_PRESETS:
            raise ValueError(f"unknown maze reward preset {name!r}; choose from {list(MAZE_PRESETS)}")
        return cls(**{"preset": name, **MAZE_PRESETS[name], **overrides})


MAZE_PRESETS: dict[str, dict] = {"default": {}, "paper": {"precision_exponent": 0.0}}


def check_maze(states: np.ndarray, truth: Truth, config: MazeRewardConfig | None = None) -> Verdict:
    """Label grids int8 [F, R, C] of one video -> Verdict."""
    cfg = config or MazeRewardConfig()
    paper = cfg.preset == "paper"
    init = truth.initial
    final = final_state(states, truth, cfg.final_frames, "maze")

    walls = init == WALL
    start = tuple(int(v) for v in np.argwhere(init == START)[0])
    goal = tuple(int(v) for v in np.argwhere(init == GOAL)[0])
    truth_path = truth.final == PATH  # bool [R, C]
    painted = final == PATH
    n_painted, n_truth = int(painted.sum()), int(truth_path.sum())
    tp = int((painted & truth_path).sum())

    wall_changed = walls & (final != WALL)
    wall_paint = walls & painted
    n_wall_changed, n_wall_paint = int(wall_changed.sum()), int(wall_paint.sum())
    start_ok, goal_ok = bool(final[start] == START), bool(final[goal] == GOAL)
    # changed markers: S or G no longer shown, or an S / G label anywhere else
    extra_markers = int((final == START).sum()) - start_ok + int((final == GOAL).sum()) - goal_ok
    n_marker_bad = (not start_ok) + (not goal_ok) + extra_markers
    markers_ok = n_marker_bad == 0

    passable = painted.copy()
    if paper:  # the paper's rule: S and G are anchors whatever they show
        passable[start] = passable[goal] = True
    else:  # a marker painted over anchors nothing, and paint on a wall carries no path
        passable &= ~walls
        passable[start], passable[goal] = start_ok, goal_ok
    comp = components(passable)
    connected = bool(passable[start] and passable[goal] and comp[start] == comp[goal])
    if connected:
        connectivity = 1.0
    else:
        anchors = [comp[p] for p in (start, goal) if passable[p]]
        reached = np.isin(comp, anchors) if anchors else np.zeros_like(passable)
        progress = float((reached & truth_path).sum()) / max(1, n_truth)
        connectivity = cfg.partial_connectivity * progress

    # degree rule on P + {S, G}: endpoints one neighbour, painted cells two, one piece
    deg = neighbour_counts(passable)
    inner = painted.copy()
    inner[start] = inner[goal] = False
    degree_ok = bool(deg[start] == 1 and deg[goal] == 1 and np.all(deg[inner] == 2))
    one_piece = int(comp.max()) == 1
    simple_path = connected and degree_ok and one_piece

    known, readable = readability(states)
    readable_ok = frames_readable_enough(readable, cfg.min_readable, cfg.max_unreadable_run)
    read_term = 1.0 if paper else readability_term(known, cfg.unreadable_cost)
    marker_term = 1.0 if paper else max(0.0, 1.0 - cfg.marker_cost * n_marker_bad)
    wall_term = max(0.0, 1.0 - cfg.wall_cost * n_wall_changed)
    precision, recall, f1 = prf(tp, n_painted, n_truth)
    precision_term = precision**cfg.precision_exponent
    reward = connectivity * wall_term * marker_term * precision_term * read_term
    no_wall_paint = n_wall_paint == 0
    success = bool(simple_path and no_wall_paint and n_wall_changed == 0 and markers_ok)
    if not paper:
        success = success and readable_ok
    paper_success = bool(connected and no_wall_paint)

    frame0_match = float((states[0] == init).mean())
    components_ = {
        "connectivity": connectivity,
        "wall_term": wall_term,
        "marker_term": marker_term,
        "precision_term": precision_term,
        "readability": read_term,
        "connected": float(connected),
        "simple_path": float(simple_path),
        "degree_rule": float(degree_ok),
        "no_wall_paint": float(no_wall_paint),
        "walls_intact": float(n_wall_changed == 0),
        "markers_intact": float(markers_ok),
        "wall_violation_cells": float(n_wall_changed),
        "painted_cells": float(n_painted),
        "solution_cells": float(n_truth),
        "paper_success": float(paper_success),
        "frame0_match": frame0_match,
        "unknown_cells": float((final < 0).mean()),
        "readable_frames": float(readable.mean()),
    }
    reasons = []
    if not connected:
        reasons.append("start and goal are not joined by painted cells")
    elif not simple_path:
        reasons.append("the painted cells are not one simple path from start to goal")
    if n_wall_paint:
        reasons.append(f"{n_wall_paint} wall cell(s) painted")
    elif n_wall_changed:
        reasons.append(f"{n_wall_changed} wall cell(s) changed")
    if not markers_ok:
        reasons.append("start or goal marker changed")
    if not paper and not readable_ok:
        reasons.append(f"unreadable frames ({int((~readable).sum())} of {len(readable)})")
    return Verdict(success, float(reward), components_, precision, recall, f1, "; ".join(reasons))
