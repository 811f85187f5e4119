"""Maze rules and reward, on parsed label grids (labels: 0 open, 1 wall, 2 start, 3 goal, 4 path).

Final state: the per-cell majority over the last frames (see ``final_window``). On it:

- ``painted`` P: cells labelled path; ``truth`` T: the solution's path cells (without S and G).
- connectivity: 1 when S and G are joined through painted cells (4-neighbour; S, G and P are the
  passable cells). Otherwise partial credit for progress: ``partial_connectivity`` x the fraction
  of T reached from S or from G through painted cells.
- wall violation: wall cells of the puzzle whose label changed (painted or erased), each costing
  ``wall_cost`` of the wall term: ``wall_term = max(0, 1 - wall_cost * n_changed_walls)``.
- precision term: (|P & T| / |P|) ** ``precision_exponent`` (default 3). Painting every corridor
  joins S and G but its precision is only |T| / |open cells|: flooding the maze does not pay (the
  paper's reward hack). The exponent matters because S and G are the maze's diameter: the solution
  covers most corridors of a small or long-corridor maze (flood precision, mean over seeds: 0.88 at
  7x7 and 0.76 at 13x13 for the backtracker, 0.52 at 13x13 for Kruskal), so precision alone would
  still pay ~0.8 for flooding; cubed it pays ~0.44 (backtracker 13x13) and ~0.14 (Kruskal),
  while one stray cell on a 20-cell path still keeps 0.86.
- reward = connectivity x wall_term x precision ** precision_exponent.

Success (strict): P + {S, G} is one simple path (S and G have one painted neighbour, every painted
cell two, one connected piece), no paint on walls, walls, S and G unchanged. In a perfect maze this
is exactly the solution. ``paper_success`` (a component): S and G connected and no paint on walls,
the looser criterion of the VideoRLVR paper. Precision / recall / F1: P against T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrlvr.tasks.base import Verdict
from vrlvr.tasks.maze import GOAL, PATH, START, WALL
from vrlvr.verify.grid import components, neighbour_counts, prf
from vrlvr.verify.truth import Truth
from vrlvr.verify.window import final_state

__all__ = ["MazeRewardConfig", "check_maze"]


@dataclass(frozen=True)
class MazeRewardConfig:
    """Weights of the maze reward (see the module docstring)."""

    partial_connectivity: float = 0.5  # credit scale for progress when S and G are not joined
    wall_cost: float = 0.5  # wall term lost per changed wall cell
    precision_exponent: float = 3.0  # precision ** exponent in the reward
    final_frames: int = 3  # majority window for the final state (at most)


def check_maze(states: np.ndarray, truth: Truth, config: MazeRewardConfig | None = None) -> Verdict:
    """Label grids int8 [F, R, C] of one video -> Verdict."""
    cfg = config or MazeRewardConfig()
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
    markers_ok = final[start] == START and final[goal] == GOAL
    # no S or G label anywhere else
    markers_ok = markers_ok and int((final == START).sum()) == 1 and int((final == GOAL).sum()) == 1

    passable = painted.copy()
    passable[start] = passable[goal] = True
    comp = components(passable)
    connected = comp[start] == comp[goal]
    if connected:
        connectivity = 1.0
    else:
        reached = (comp == comp[start]) | (comp == comp[goal])
        progress = float((reached & truth_path).sum()) / max(1, n_truth)
        connectivity = cfg.partial_connectivity * progress

    # degree rule on P + {S, G}: endpoints one neighbour, painted cells two, one piece
    deg = neighbour_counts(passable)
    inner = painted.copy()
    inner[start] = inner[goal] = False
    degree_ok = bool(deg[start] == 1 and deg[goal] == 1 and np.all(deg[inner] == 2))
    one_piece = int(comp.max()) == 1
    simple_path = connected and degree_ok and one_piece

    wall_term = max(0.0, 1.0 - cfg.wall_cost * n_wall_changed)
    precision, recall, f1 = prf(tp, n_painted, n_truth)
    reward = connectivity * wall_term * precision**cfg.precision_exponent
    no_wall_paint = n_wall_paint == 0
    success = bool(simple_path and no_wall_paint and n_wall_changed == 0 and markers_ok)
    paper_success = bool(connected and no_wall_paint)

    frame0_match = float((states[0] == init).mean())
    components_ = {
        "connectivity": connectivity,
        "wall_term": wall_term,
        "precision_term": precision**cfg.precision_exponent,
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
    return Verdict(success, float(reward), components_, precision, recall, f1, "; ".join(reasons))
