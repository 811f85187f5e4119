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

``paper`` preset (``FlowFreeRewardConfig.from_preset("paper")``): reward = 0.15 validity + 0.35
endpoints + 0.30 connectivity + 0.20 fill, the paper's weights. Under it a video that does nothing
earns 0.42 (endpoints kept, endpoints counted as filled) and one colour flooding every empty cell
0.60, so the signal lives in the top half of the range.

``default`` preset: credit only for what is drawn right.

- colour progress: a colour that is the reference solution's path counts 1 (any simple path
  between its endpoints once the whole board is solved: joining each colour by some shortest path
  and leaving cells empty is not a solution); otherwise
  ``partial`` x (its cells joined to one of its endpoints that match the reference solution, minus
  its cells anywhere that do not) / its reference cells, floored at 0. A colour grown half-way
  earns half of ``partial``; flooding with one colour earns nothing.
- valid fill: fraction of the non-endpoint cells covered by valid colours.
- paint precision: painted non-endpoint cells that are right (on a valid colour, or the reference
  solution's colour) among all painted ones; guessing (each cell the colour of its nearest
  endpoint) paints mostly wrong cells.
- endpoint term: ``1 - endpoint_cost`` (1.0) per endpoint that changed colour, floored at 0:
  endpoints are markers, like the maze's S and G.
- readability: 1 - ``unreadable_cost`` per frame's worth of unreadable cells (unknown, or a colour
  the puzzle does not have: noise reads as FlowFree's grey), each frame's readable share scaled by
  the share of endpoints it still shows.
- reward = endpoint_term x readability x paint_precision ** 2 x (progress_weight x mean colour
  progress + fill_weight x valid fill): 0 for doing nothing, 1 for a solution.

success = all four paper checks perfect (which includes the degree rule for every colour); the
default preset also needs readable frames (``min_readable``, ``max_unreadable_run``).
Precision / recall / F1 over the final grid's non-endpoint cells: predicted = cells painted with a
puzzle colour, correct = painted with the ground-truth solution's colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrlvr.tasks.base import Verdict
from vrlvr.verify.grid import components, neighbour_counts, prf
from vrlvr.verify.truth import Truth
from vrlvr.verify.window import final_state, frames_readable_enough, readability, readability_term

__all__ = ["FlowFreeRewardConfig", "FLOWFREE_PRESETS", "check_flowfree"]

EMPTY = 0


@dataclass(frozen=True)
class FlowFreeRewardConfig:
    """Weights of the FlowFree reward (see the module docstring). ``from_preset("paper")`` gives the
    paper's weights; fields given beside a preset override it."""

    preset: str = "default"  # "default" or "paper": which rule set check_flowfree applies
    # paper preset weights
    path_validity: float = 0.15
    endpoints: float = 0.35
    connectivity: float = 0.30
    fill: float = 0.20
    # default preset
    progress_weight: float = 0.7  # weight of the mean colour progress
    fill_weight: float = 0.3  # weight of the valid fill
    partial: float = 0.5  # credit scale of a colour that is not finished
    endpoint_cost: float = 1.0  # endpoint term lost per endpoint that changed colour (a marker)
    precision_exponent: float = 2.0  # paint precision ** exponent in the reward
    unreadable_cost: float = 0.35  # reward lost per frame's worth of unreadable cells
    min_readable: float = 0.75  # success: fraction of frames that must be fully readable
    max_unreadable_run: int = 1  # success: longest run of unreadable frames tolerated
    final_frames: int = 3  # majority window for the final state (at most)

    def __post_init__(self):
        if self.preset not in FLOWFREE_PRESETS:
            raise ValueError(
                f"unknown flowfree reward preset {self.preset!r}; choose from {list(FLOWFREE_PRESETS)}"
            )

    @classmethod
    def from_preset(cls, name: str = "default", **overrides) -> FlowFreeRewardConfig:
        if name not in FLOWFREE_PRESETS:
            raise ValueError(f"unknown flowfree reward preset {name!r}; choose from {list(FLOWFREE_PRESETS)}")
        return cls(**{"preset": name, **FLOWFREE_PRESETS[name], **overrides})


FLOWFREE_PRESETS: dict[str, dict] = {"default": {}, "paper": {}}


def check_flowfree(states: np.ndarray, truth: Truth, config: FlowFreeRewardConfig | None = None) -> Verdict:
    """Label grids int8 [F, R, C] of one video -> Verdict."""
    cfg = config or FlowFreeRewardConfig()
    paper = cfg.preset == "paper"
    init = truth.initial
    final = final_state(states, truth, cfg.final_frames, "flowfree")

    endpoint_mask = init != EMPTY
    inner_cells = ~endpoint_mask
    colours = [int(c) for c in np.unique(init[endpoint_mask])]
    endpoints_kept = float((final[endpoint_mask] == init[endpoint_mask]).mean()) if colours else 1.0
    n_endpoints_changed = int((final[endpoint_mask] != init[endpoint_mask]).sum())
    ref = truth.final if truth.solvable else np.full_like(init, -2)  # -2 matches no label

    connected = valid = 0
    bad_colours = []
    progress = []  # per colour, default preset
    per_colour = []  # (simple, is the reference's path, inner cells, partial credit) per colour
    valid_cells = np.zeros_like(endpoint_mask)
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
        anchored = np.isin(comp, [comp[e] for e in (a, b) if mask[e]]) & inner
        right = int((anchored & (ref == colour)).sum())
        wrong = int((inner & (ref != colour)).sum())
        n_ref = int((inner_cells & (ref == colour)).sum())
        partial = cfg.partial * max(0.0, right - wrong) / n_ref if n_ref else 0.0
        # a finished colour (one simple path) is full credit only when it is the reference's path:
        # joining every colour by some path (shortest paths) leaves the board unfilled, an easier
        # puzzle than the one posed; a different complete solution is full credit below
        is_reference = bool(np.array_equal(inner, inner_cells & (ref == colour)))
        per_colour.append((simple, is_reference, inner, partial))
    n = max(1, len(colours))
    connectivity, validity = connected / n, valid / n
    fill = float(np.isin(final, colours).mean())
    board_solved = validity == 1.0 and endpoints_kept == 1.0 and connectivity == 1.0 and fill == 1.0
    for simple, is_reference, inner, partial in per_colour:
        if simple and (is_reference or board_solved):
            valid_cells |= inner
            progress.append(1.0)
        else:
            progress.append(partial)
    valid_fill = float(valid_cells.sum() / inner_cells.sum()) if inner_cells.any() else 1.0
    colour_progress = float(np.mean(progress)) if progress else 1.0
    # paint precision: painted non-endpoint cells that are right (on a valid colour's path, or the
    # reference's colour) among all painted ones; guessing colours everywhere (nearest endpoint,
    # random) paints mostly wrong cells
    painted = inner_cells & (final != EMPTY)
    right = painted & (valid_cells | (final == ref))
    paint_precision = float(right.sum() / painted.sum()) if painted.any() else 1.0

    known, readable = readability(states, allowed=[EMPTY, *colours])
    # endpoints never change in a valid video: a frame that lost them is not a readable frame
    # (uniform noise reads as FlowFree's grey, a puzzle colour on large boards)
    kept = (states[:, endpoint_mask] == init[endpoint_mask]).mean(axis=1) if colours else 1.0  # [F]
    known, readable = known * kept, readable & (kept == 1.0)
    readable_ok = frames_readable_enough(readable, cfg.min_readable, cfg.max_unreadable_run)
    if paper:
        reward = (
            cfg.path_validity * validity
            + cfg.endpoints * endpoints_kept
            + cfg.connectivity * connectivity
            + cfg.fill * fill
        )
        read_term = endpoint_term = 1.0
    else:
        read_term = readability_term(known, cfg.unreadable_cost)
        endpoint_term = max(0.0, 1.0 - cfg.endpoint_cost * n_endpoints_changed)
        reward = (
            endpoint_term
            * read_term
            * paint_precision**cfg.precision_exponent
            * (cfg.progress_weight * colour_progress + cfg.fill_weight * valid_fill)
        )
    success = bool(validity == 1.0 and endpoints_kept == 1.0 and connectivity == 1.0 and fill == 1.0)
    if not paper:
        success = success and readable_ok

    predicted = inner_cells & np.isin(final, colours)
    correct = predicted & (final == truth.final)
    actual = int((inner_cells & (truth.final != EMPTY)).sum()) if truth.solvable else 0
    precision, recall, f1 = prf(int(correct.sum()), int(predicted.sum()), actual)

    components_ = {
        "path_validity": validity,
        "endpoints": endpoints_kept,
        "connectivity": connectivity,
        "fill": fill,
        "colour_progress": colour_progress,
        "valid_fill": valid_fill,
        "endpoint_term": endpoint_term,
        "paint_precision": paint_precision,
        "readability": read_term,
        "colours": float(len(colours)),
        "stray_cells": float((~np.isin(final, colours) & (final != EMPTY)).sum()),
        "frame0_match": float((states[0] == init).mean()),
        "unknown_cells": float((final < 0).mean()),
        "readable_frames": float(readable.mean()),
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
    if not paper and not readable_ok:
        reasons.append(f"unreadable frames ({int((~readable).sum())} of {len(readable)})")
    return Verdict(success, float(reward), components_, precision, recall, f1, "; ".join(reasons))
