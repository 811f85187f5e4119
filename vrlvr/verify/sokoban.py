"""Sokoban rules and reward, on parsed label grids (labels: 0 floor, 1 wall, 2 goal, 3 box,
4 box on goal, 5 player, 6 player on goal; outside cells are wall).

Per frame the player and box positions are decoded. A frame is *readable* when its walls and goals
equal the puzzle's (they never change), it shows exactly one player, as many boxes as the puzzle
and no unknown cell. The trajectory starts at the puzzle's state (not at the video's frame 0, so
another puzzle's video fails at once). Each readable frame that differs from the current state is
one *transition*; it is legal when a sequence of legal moves (walk, or push a box into a free
cell) of length at most the bound turns the current state into the frame's state. The bound is
the reference's moves per frame transition (ceil(A / (F - 1)), at least 1) times the number of
frame steps since the last readable frame (skipped frames are bridged), plus ``extra_moves``,
capped at ``max_bridge``: no teleports. A breadth-first search finds the shortest such sequence;
an illegal transition re-synchronises to the frame's state and counts against the video.

``paper`` preset (``SokobanRewardConfig.from_preset("paper")``): an illegal transition
re-synchronises to the frame's state; reward = boxes x (fraction of boxes on goals at the end) +
legal x (legal transitions / transitions; 0 when nothing moves). RL games it: legal back-and-forth
steps then boxes jumping onto the goals earned 0.97 (legal fraction high, boxes on goals), more
than the honest video that stops half-way (~0.63); and unreadable frames were bridged by search.

``default`` preset: credit only for legal progress.

- the trajectory's lineage never re-synchronises: after an illegal transition it stays at the last
  legally reached state, so a teleport moves nothing that counts (later frames are still checked
  for legal moves from the frame before them, for the legality count, without progress).
- a transition may bridge at most ``max_unreadable_run`` skipped frames (an isolated blurred
  frame); a longer gap of unreadable frames cannot be bridged.
- progress: the furthest reference state reached legally, as a fraction of the reference's
  actions (a state with the reference's boxes but the player elsewhere counts as the start of that
  box configuration); 1 when the legal state has every box on a goal (any solution). It is capped
  by the progress of the state the video ends on (its last readable frame), so solving and then
  jumping back (undoing the work on screen) earns no more than where the video ends.
- reward = readability x progress x (1 - illegal_cost) ** illegal transitions, with readability
  1 - ``unreadable_cost`` per frame's worth of unreadable cells (unknown, walls or goals changed,
  missing or extra players and boxes): 0 for doing nothing, 1 for a
  solution, k / A after k correct moves.

success = every box on a goal, no illegal transition, final walls and goals intact; the default
preset also needs readable frames (``min_readable``, ``max_unreadable_run``) and the solved state
reached legally.
Precision / recall / F1: the decoded U/D/L/R sequence against the solution, position-aligned (an
illegal transition decodes as one "?").
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from vrlvr.tasks.base import Verdict
from vrlvr.tasks.sokoban import BOX, BOX_ON_GOAL, GOAL, MOVES, PLAYER, PLAYER_ON_GOAL, WALL
from vrlvr.verify.grid import prf
from vrlvr.verify.truth import Truth
from vrlvr.verify.window import check_states_shape, longest_run, readability_term

__all__ = ["SokobanRewardConfig", "SOKOBAN_PRESETS", "check_sokoban", "decode_moves"]


@dataclass(frozen=True)
class SokobanRewardConfig:
    """Weights and search bounds of the Sokoban reward (see the module docstring).
    ``from_preset("paper")`` gives the paper's rule set; fields given beside it override it."""

    preset: str = "default"  # "default" or "paper": which rule set check_sokoban applies
    boxes: float = 0.5  # paper: weight of the fraction of boxes on goals at the end
    legal: float = 0.5  # paper: weight of the fraction of legal transitions
    illegal_cost: float = 0.5  # default: reward factor lost per illegal transition (multiplicative)
    unreadable_cost: float = 0.35  # default: reward lost per frame's worth of unreadable cells
    min_readable: float = 0.75  # default, success: fraction of frames that must be readable
    max_unreadable_run: int = 1  # default: unreadable frames one transition may bridge
    extra_moves: int = 0  # moves allowed per transition beyond the reference's
    max_bridge: int = 12  # hard cap on the moves one transition may bridge
    max_search_states: int = 20000  # BFS budget per transition

    def __post_init__(self):
        if self.preset not in SOKOBAN_PRESETS:
            raise ValueError(
                f"unknown sokoban reward preset {self.preset!r}; choose from {list(SOKOBAN_PRESETS)}"
            )

    @classmethod
    def from_preset(cls, name: str = "default", **overrides) -> SokobanRewardConfig:
        if name not in SOKOBAN_PRESETS:
            raise ValueError(f"unknown sokoban reward preset {name!r}; choose from {list(SOKOBAN_PRESETS)}")
        return cls(**{"preset": name, **SOKOBAN_PRESETS[name], **overrides})


SOKOBAN_PRESETS: dict[str, dict] = {"default": {}, "paper": {}}


State = tuple[int, frozenset[int]]  # (player flat index, box flat indices)


def _step(state: State, move: int, walls: np.ndarray, C: int) -> State | None:
    """One move (0..3 = U, D, L, R) on flat indices, or None when illegal."""
    player, boxes = state
    d = (-C, C, -1, 1)[move]
    nxt = player + d
    if move >= 2 and nxt // C != player // C:  # left/right off the row
        return None
    if nxt < 0 or nxt >= walls.size or walls[nxt]:
        return None
    if nxt in boxes:
        beyond = nxt + d
        if move >= 2 and beyond // C != nxt // C:
            return None
        if beyond < 0 or beyond >= walls.size or walls[beyond] or beyond in boxes:
            return None
        boxes = (boxes - {nxt}) | {beyond}
    return nxt, boxes


def _bridge(src: State, dst: State, walls: np.ndarray, C: int, depth: int, budget: int) -> str | None:
    """Shortest legal move string of length <= depth from src to dst, or None."""
    if depth < 1:
        return None
    for m in range(4):  # the common case: one move
        if _step(src, m, walls, C) == dst:
            return MOVES[m]
    if depth < 2:
        return None
    parent: dict[State, tuple[State, int] | None] = {src: None}
    frontier = deque([(src, 0)])
    while frontier:
        state, d = frontier.popleft()
        if d >= depth:
            continue
        for m in range(4):
            nxt = _step(state, m, walls, C)
            if nxt is None or nxt in parent:
                continue
            parent[nxt] = (state, m)
            if nxt == dst:
                out = []
                cur = nxt
                while parent[cur] is not None:
                    cur, mv = parent[cur]
                    out.append(MOVES[mv])
                return "".join(reversed(out))
            if len(parent) > budget:
                return None
            frontier.append((nxt, d + 1))
    return None


def _decode_state(grid: np.ndarray) -> State:
    """(player, boxes) of one label grid int8 [R, C] (the first player cell when there are more)."""
    flat = grid.reshape(-1)
    player = np.flatnonzero(np.isin(flat, (PLAYER, PLAYER_ON_GOAL)))
    boxes = frozenset(np.flatnonzero(np.isin(flat, (BOX, BOX_ON_GOAL))).tolist())
    return (int(player[0]) if len(player) else -1), boxes


def _reference_index(truth: Truth) -> tuple[dict[State, int], dict[frozenset[int], int]]:
    """Progress index of the reference states: exact state -> its last index, box configuration ->
    the first index that shows it (a state with the reference's boxes but the player elsewhere has
    done the pushes so far, not the walk)."""
    exact: dict[State, int] = {}
    boxes: dict[frozenset[int], int] = {}
    for k, grid in enumerate(truth.states):
        st = _decode_state(grid)
        exact[st] = k
        boxes.setdefault(st[1], k)
    return exact, boxes


def _goal_cells(init: np.ndarray) -> frozenset[int]:
    return frozenset(np.flatnonzero(np.isin(init, (GOAL, BOX_ON_GOAL, PLAYER_ON_GOAL)).reshape(-1)).tolist())


def _progress_of(state: State, exact: dict, by_boxes: dict, num_actions: int) -> float:
    """Reference progress of one state as a fraction of the actions; -1 when it is off the reference."""
    k = exact.get(state, by_boxes.get(state[1]))
    if k is None:
        return -1.0
    return k / num_actions if num_actions else 0.0


def decode_moves(
    states: np.ndarray, truth: Truth, config: SokobanRewardConfig | None = None
) -> tuple[str, dict[str, float], State]:
    """Label grids int8 [F, R, C] -> (decoded move string, counters, final state).

    The final state is the last frame's state in the paper preset (re-synchronised after an
    illegal transition) and the last legally reached state in the default preset."""
    cfg = config or SokobanRewardConfig()
    paper = cfg.preset == "paper"
    init = truth.initial
    F, R, C = states.shape
    walls = init == WALL
    goals = np.isin(init, (GOAL, BOX_ON_GOAL, PLAYER_ON_GOAL))
    n_boxes = int(np.isin(init, (BOX, BOX_ON_GOAL)).sum())

    # per-frame layers, vectorised over frames: bool [F]
    wall_ok = ((states == WALL) == walls).all(axis=(1, 2))
    goal_ok = (np.isin(states, (GOAL, BOX_ON_GOAL, PLAYER_ON_GOAL)) == goals).all(axis=(1, 2))
    player_mask = (states == PLAYER) | (states == PLAYER_ON_GOAL)  # [F, R, C]
    box_mask = (states == BOX) | (states == BOX_ON_GOAL)
    one_player = player_mask.sum(axis=(1, 2)) == 1
    box_count_ok = box_mask.sum(axis=(1, 2)) == n_boxes
    known = (states >= 0).all(axis=(1, 2))
    static_ok = wall_ok & goal_ok
    readable = static_ok & one_player & box_count_ok & known

    flat_walls = walls.reshape(-1)
    per_step = max(1, math.ceil(truth.num_actions / max(1, F - 1)))
    cur: State = _decode_state(init)
    exact, by_boxes = _reference_index(truth)
    best = 0  # furthest reference index reached legally
    decoded: list[str] = []
    legal = illegal = 0
    last = 0  # frame of the current state (the puzzle is what frame 0 should show)
    flat_player = player_mask.reshape(F, -1)
    flat_boxes = box_mask.reshape(F, -1)
    seen = cur  # the last readable frame's state (the legal lineage is ``cur`` in the default preset)
    for f in np.flatnonzero(readable):
        f = int(f)
        state: State = (int(np.argmax(flat_player[f])), frozenset(np.flatnonzero(flat_boxes[f]).tolist()))
        gap = f - last  # frame steps since the last readable frame; 0 for frame 0
        last = f
        if state == seen:
            continue
        # default: bridge at most max_unreadable_run skipped frames (a stretch of noise is no cover)
        steps = gap if paper else min(gap, cfg.max_unreadable_run + 1)
        depth = min(cfg.max_bridge, steps * per_step + cfg.extra_moves)
        moves = _bridge(cur, state, flat_walls, C, depth, cfg.max_search_states)
        if moves is not None:
            legal += 1
            decoded.append(moves)
            cur = seen = state
            best = max(best, exact.get(state, by_boxes.get(state[1], 0)))
            continue
        # default: a legal move from the last frame that left the lineage (after an illegal
        # transition) counts as legal, but earns no progress: the lineage stays where it was
        if not paper and seen != cur:
            moves = _bridge(seen, state, flat_walls, C, depth, cfg.max_search_states)
        if moves is None:
            illegal += 1
            decoded.append("?")
        else:
            legal += 1
            decoded.append(moves)
        seen = state
        if paper:
            cur = state
    counters = {
        "transitions": float(legal + illegal),
        "illegal_transitions": float(illegal),
        "readable_frames": float(readable.mean()),
        "static_intact_frames": float(static_ok.mean()),
        "final_static_intact": float(static_ok[-1]),
        "frame0_match": float((states[0] == init).mean()),
        "reference_progress": best / truth.num_actions if truth.num_actions else 0.0,
        # the state the video ends on (its last readable frame): its reference progress (-1 when it
        # is off the reference, e.g. another valid plan) and whether every box sits on a goal
        "final_progress": _progress_of(seen, exact, by_boxes, truth.num_actions),
        "final_solved": float(seen[1] <= _goal_cells(init)),
        "longest_unreadable_run": float(longest_run(~readable)),
    }
    return "".join(decoded), counters, cur


def _readable_cells(states: np.ndarray, init: np.ndarray) -> np.ndarray:
    """float [F]: per frame, the share of cells that read as something a valid frame can show:
    unknown cells, walls or goals that changed, and each missing or extra player or box count as
    unreadable (a box that vanishes in every other frame is not a readable video)."""
    F = len(states)
    n = init.size
    goals = np.isin(init, (GOAL, BOX_ON_GOAL, PLAYER_ON_GOAL))
    bad = (states < 0).reshape(F, -1).sum(axis=1)
    bad += ((states == WALL) != (init == WALL)).reshape(F, -1).sum(axis=1)
    bad += (np.isin(states, (GOAL, BOX_ON_GOAL, PLAYER_ON_GOAL)) != goals).reshape(F, -1).sum(axis=1)
    players = np.isin(states, (PLAYER, PLAYER_ON_GOAL)).reshape(F, -1).sum(axis=1)
    boxes = np.isin(states, (BOX, BOX_ON_GOAL)).reshape(F, -1).sum(axis=1)
    bad += np.abs(players - 1) + np.abs(boxes - int(np.isin(init, (BOX, BOX_ON_GOAL)).sum()))
    return 1.0 - np.minimum(bad, n) / n


def check_sokoban(states: np.ndarray, truth: Truth, config: SokobanRewardConfig | None = None) -> Verdict:
    """Label grids int8 [F, R, C] of one video -> Verdict."""
    cfg = config or SokobanRewardConfig()
    init = truth.initial
    check_states_shape(states, truth, "sokoban")
    moves, counters, (_, boxes) = decode_moves(states, truth, cfg)
    goals = _goal_cells(init)
    n_boxes = max(1, len(boxes))
    on_goals = len(boxes & goals) / n_boxes
    n_trans = counters["transitions"]
    n_illegal = counters["illegal_transitions"]
    legal_frac = (n_trans - n_illegal) / n_trans if n_trans else 0.0
    solved = on_goals == 1.0
    all_legal = n_illegal == 0
    success = bool(solved and all_legal and n_trans > 0 and counters["final_static_intact"] == 1.0)
    if cfg.preset == "paper":
        reward = cfg.boxes * on_goals + cfg.legal * legal_frac
        progress = read_term = 1.0
    else:
        readable_frames = counters["readable_frames"]
        readable_ok = (
            readable_frames >= cfg.min_readable
            and counters["longest_unreadable_run"] <= cfg.max_unreadable_run
        )
        success = success and readable_ok
        progress = 1.0 if solved and counters["final_solved"] else counters["reference_progress"]
        if counters["final_progress"] >= 0:  # never more credit than the state the video ends on
            progress = min(progress, 1.0 if counters["final_solved"] else counters["final_progress"])
        read_term = readability_term(_readable_cells(states, init), cfg.unreadable_cost)
        reward = read_term * progress * (1.0 - cfg.illegal_cost) ** n_illegal

    truth_moves = "".join(str(a).upper() for a in truth.actions)
    matches = sum(a == b for a, b in zip(moves, truth_moves))
    precision, recall, f1 = prf(matches, len(moves), len(truth_moves))

    components_ = {
        "boxes_on_goals": on_goals,
        "legal_fraction": legal_frac,
        "progress": progress,
        "readability": read_term,
        "solved": float(solved),
        "all_legal": float(all_legal),
        "decoded_moves": float(len(moves)),
        "solution_moves": float(len(truth_moves)),
        **counters,
    }
    reasons = []
    if not solved:
        reasons.append(f"{len(boxes) - len(boxes & goals)} box(es) off goal at the end")
    if not all_legal:
        reasons.append(f"{int(counters['illegal_transitions'])} illegal transition(s)")
    if n_trans == 0:
        reasons.append("nothing moves")
    if counters["final_static_intact"] != 1.0:
        reasons.append("walls or goals changed in the last frame")
    if cfg.preset != "paper" and not (
        counters["readable_frames"] >= cfg.min_readable
        and counters["longest_unreadable_run"] <= cfg.max_unreadable_run
    ):
        reasons.append(f"unreadable frames ({counters['readable_frames']:.0%} readable)")
    return Verdict(success, float(reward), components_, precision, recall, f1, "; ".join(reasons))
