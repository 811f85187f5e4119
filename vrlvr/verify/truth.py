"""Ground truth of a puzzle for the verifiers: its label grid, the solver's state after every
action and the actions themselves. Solving can cost (Sokoban BFS), and a GRPO group verifies many
rollouts of one puzzle, so truths are cached by the task name and the puzzle's exact text (not the
task's canonical_key: FlowFree's ignores letter names, but the label of each colour, and so the
whole truth, depends on them)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Truth", "truth_for", "clear_cache"]

_CACHE_SIZE = 4096
_cache: OrderedDict[tuple[str, str, str], Truth] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Truth:
    """initial: int8 [R, C] the puzzle's label grid (frame 0). states: int8 [A + 1, R, C] the
    ground-truth grid after 0..A actions (states[0] == initial). actions: the solution's A actions
    (task-specific: maze cells, Sokoban letters, ...). solvable: False when the solver found none
    (then states is just the initial grid and actions is empty)."""

    initial: np.ndarray
    states: np.ndarray
    actions: tuple[Any, ...]
    solvable: bool

    @property
    def final(self) -> np.ndarray:
        """int8 [R, C]: the solved grid."""
        return self.states[-1]

    @property
    def num_actions(self) -> int:
        return len(self.actions)


def _key(task, puzzle) -> tuple[str, str, str] | None:
    try:
        return task.name, type(puzzle).__qualname__, puzzle.to_text()
    except (AttributeError, NotImplementedError, ValueError):
        return None


def truth_for(task, puzzle) -> Truth:
    """The (cached) ground truth of ``puzzle`` under ``task``."""
    key = _key(task, puzzle)
    if key is not None:
        with _lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    truth = _compute(task, puzzle)
    if key is not None:
        with _lock:
            _cache[key] = truth
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return truth


def _initial(task, puzzle) -> np.ndarray:
    """int8 [R, C] the puzzle's label grid without solving: base_states if the task has it, else the
    states of the empty solution."""
    base = getattr(task, "base_states", None)
    grid = base(puzzle) if callable(base) else task.action_states(puzzle, [])[0]
    return np.ascontiguousarray(grid, dtype=np.int8)


def _compute(task, puzzle) -> Truth:
    try:
        solution = task.solve(puzzle)
    except RuntimeError:  # the solver gave up (search budget): verify by the rules alone
        solution = None
    if solution is None:
        initial = _initial(task, puzzle)
        return Truth(initial, initial[None].copy(), (), False)
    states = np.ascontiguousarray(task.action_states(puzzle, solution), dtype=np.int8)
    actions = tuple(task.solution_actions(puzzle, solution))
    if len(states) != len(actions) + 1:
        raise ValueError(
            f"{task.name}: action_states gave {len(states)} grids for {len(actions)} actions "
            "(expected one more grid than actions)"
        )
    return Truth(np.ascontiguousarray(states[0]), states, actions, True)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
