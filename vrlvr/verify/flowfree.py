"""FlowFree rules and reward, on parsed label grids (label 0 empty, 1..K the puzzle's colours).

Final state: the per-cell majority over the last frames (see vrlvr.verify.window). On it, with the
puzzle's endpoints (the non-empty cells of its label grid):

- endpoint preservation: fraction of endpoint cells that still show their colour.
- colour connectivity: fraction of colours whose two endpoints are joined by cells of that colour.
- path validity: fraction of colours whose cells form one simple path between its endpoints:
  one connected piece holding both endpoints, endpoints with exactly one same-colour neighbour,
  every other cell of the colour exactly two (the degree rule).
- fill: fraction of cells showing one of the puzzle's colours (empty, unknown and colours the
  puzzle does not have count as unfilled).

reward = 0.15 validity + 0.35 endpoints + 0.30 connectivity + 0.20 fill (the paper's weights,
configurable); success = all four perfect (which includes the degree rule for every colour).
Precision / recall / F1 over the final grid's non-endpoint cells: predicted = cells painted with a
puzzle colour, correct = painted with the ground-truth solution's colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrlvr.tasks.base import Verdict
from vrlvr.verify.grid import components, neighbour_counts, prf
from vrlvr.verify.truth import Truth
from vrlvr.verify.window import final_state

__all__ = ["FlowFreeRewardConfig", "check_flowfree"]

EMPTY = 0


@dataclass(frozen=True)
class FlowFreeRewardConfig:
    """Weights of the FlowFree reward (the paper's by default)."""

    path_validity: float = 0.15
    endpoints: float = 0.35
    connectivity: float = 0.30
    fill: float = 0.20
    final_frames: int = 3  # majority window for the final state (at most)


def check_flowfree(states: np.ndarray, truth: Truth, config: FlowFreeRewardConfig | None = None) -> Verdict:
    """Label grids int8 [F, R, C] of one video -> Verdict."""
    cfg = config or FlowFreeRewardConfig()
    init = truth.initial
    final = final_state(states, truth, cfg.final_frames, "flowfree")

    endpoint_mask = init != EMPTY
    colours = [int(c) for c in np.unique(init[endpoint_mask])]
    endpoints_kept = float((final[endpoint_mask] == init[endpoint_mask]).mean()) if colours else 1.0

    connected = valid = 0
    bad_colours = []
    for colour in colours:
        ends = [tuple(int(v) for v in p) for p in np.argwhere(init == colour)]
        mask = final == colour
        comp = components(mask)
        a, b = ends[0], ends[-1]
        joined = bool(mask[a] and mask[b] and comp[a] == comp[b])
        deg = neighbour_counts(mask)
        inner = mask.copy()
        inner[a] = inner[b] = False
        simple = (
            joined and int(comp.max()) == 1 and deg[a] == 1 and deg[b] == 1 and bool(np.all(deg[inner] == 2))
        )
        connected += joined
        valid += simple
        if not simple:
            bad_colours.append(colour)
    n = max(1, len(colours))
    connectivity, validity = connected / n, valid / n
    fill = float(np.isin(final, colours).mean())

    reward = (
        cfg.path_validity * validity
        + cfg.endpoints * endpoints_kept
        + cfg.connectivity * connectivity
        + cfg.fill * fill
    )
    success = bool(validity == 1.0 and endpoints_kept == 1.0 and connectivity == 1.0 and fill == 1.0)

    inner_cells = ~endpoint_mask
    predicted = inner_cells & np.isin(final, colours)
    correct = predicted & (final == truth.final)
    actual = int((inner_cells & (truth.final != EMPTY)).sum()) if truth.solvable else 0
    precision, recall, f1 = prf(int(correct.sum()), int(predicted.sum()), actual)

    components_ = {
        "path_validity": validity,
        "endpoints": endpoints_kept,
        "connectivity": connectivity,
        "fill": fill,
        "colours": float(len(colours)),
        "stray_cells": float((~np.isin(final, colours) & (final != EMPTY)).sum()),
        "frame0_match": float((states[0] == init).mean()),
        "unknown_cells": float((final < 0).mean()),
    }
    reasons = []
    if endpoints_kept < 1.0:
        reasons.append("an endpoint changed colour")
    if connectivity < 1.0:
        reasons.append(f"{len(colours) - connected} colour(s) not connected")
    elif validity < 1.0:
        reasons.append(f"colour(s) {bad_colours} not a simple path (degree rule)")
    if fill < 1.0:
        reasons.append(f"{int(round((1 - fill) * final.size))} cell(s) not filled with a puzzle colour")
    return Verdict(success, float(reward), components_, precision, recall, f1, "; ".join(reasons))
