"""Maze: perfect mazes on an odd wall grid, BFS solving, path-growing videos.

Text format (docs/contracts.md): the wall grid, one string per row, ``#`` wall, `` `` open, ``S`` start,
``G`` goal. A cell (r, c) of an m x m maze sits at wall-grid position (2r+1, 2c+1); ``size`` is the
wall-grid side (odd, 7..21), so m = (size - 1) / 2. A solution is the list of (row, col) wall-grid
positions from S to G, each a 4-neighbour of the one before.

Rendering: the label grid is the wall grid itself (label_names below). Frame 0 is the puzzle; each
action paints the next path cell, from the cell after S to the cell before G (S and G keep their
labels), so a path of P positions has P - 2 actions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from vrlvr.tasks.base import Task, Verdict
from vrlvr.tasks.textgrid import GRID_NEIGHBOURS, TextGridPuzzle, parse_char_grid

__all__ = [
    "MazePuzzle",
    "MazeSolution",
    "MazeTask",
    "MIN_SIZE",
    "MAX_SIZE",
    "ALGORITHMS",
    "DISTRIBUTIONS",
]

MIN_SIZE, MAX_SIZE = 7, 21
ALGORITHMS = ("backtracker", "kruskal", "wilson")
ENDPOINTS = ("partial", "diameter", "corners")
# The default distribution ("reasoning"): a uniform spanning tree (Wilson; many branches and dead
# ends) with S and G at random cells whose path covers PARTIAL_COVER of the open cells and, when
# the maze allows it, bends away from the straight line. The old one (backtracker + diameter) has
# its path cover 67-90% of the open cells, so painting every corridor is nearly the answer.
DISTRIBUTIONS = {
    "reasoning": {"algorithm": "wilson", "endpoints": "partial"},
    "classic": {"algorithm": "backtracker", "endpoints": "diameter"},
}
PARTIAL_COVER = (0.2, 0.45)

OPEN, WALL, START, GOAL, PATH = range(5)


@dataclass(frozen=True)
class MazePuzzle(TextGridPuzzle):
    """A maze as its wall-grid rows (``#``, `` ``, ``S``, ``G``); exactly one S and one G."""

    @cached_property
    def walls(self) -> np.ndarray:
        """bool [R, C], True where a wall is."""
        return np.array([[ch == "#" for ch in row] for row in self.rows], dtype=bool)

    @cached_property
    def start(self) -> tuple[int, int]:
        return _find(self.rows, "S")

    @cached_property
    def goal(self) -> tuple[int, int]:
        return _find(self.rows, "G")


@dataclass(frozen=True)
class MazeSolution:
    """A path of wall-grid positions from S to G."""

    path: tuple[tuple[int, int], ...]

    def to_list(self) -> list[list[int]]:
        return [[int(r), int(c)] for r, c in self.path]


def _find(rows: tuple[str, ...], ch: str) -> tuple[int, int]:
    for r, row in enumerate(rows):
        c = row.find(ch)
        if c >= 0:
            return r, c
    raise ValueError(f"maze has no {ch!r}")


# --- generation -------------------------------------------------------------------------------


def _cell_neighbours(r: int, c: int, m: int):
    for dr, dc in GRID_NEIGHBOURS:
        rr, cc = r + dr, c + dc
        if 0 <= rr < m and 0 <= cc < m:
            yield rr, cc


def _backtracker(m: int, rng: np.random.Generator) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Recursive backtracker (iterative DFS): long winding corridors."""
    start = (int(rng.integers(m)), int(rng.integers(m)))
    visited = {start}
    stack = [start]
    edges = []
    while stack:
        cur = stack[-1]
        options = [n for n in _cell_neighbours(*cur, m) if n not in visited]
        if not options:
            stack.pop()
            continue
        nxt = options[int(rng.integers(len(options)))]
        visited.add(nxt)
        edges.append((cur, nxt))
        stack.append(nxt)
    return edges


def _kruskal(m: int, rng: np.random.Generator) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Randomised Kruskal: uniform random edge order with union-find; many short dead ends."""
    parent = list(range(m * m))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    all_edges = [((r, c), (r, c + 1)) for r in range(m) for c in range(m - 1)]
    all_edges += [((r, c), (r + 1, c)) for r in range(m - 1) for c in range(m)]
    edges = []
    for k in rng.permutation(len(all_edges)):
        a, b = all_edges[int(k)]
        ra, rb = root(a[0] * m + a[1]), root(b[0] * m + b[1])
        if ra != rb:
            parent[ra] = rb
            edges.append((a, b))
    return edges


def _wilson(m: int, rng: np.random.Generator) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Wilson's algorithm (loop-erased random walks): a uniformly random spanning tree."""
    cells = [(r, c) for r in range(m) for c in range(m)]
    in_tree = {cells[int(rng.integers(len(cells)))]}
    edges = []
    for k in rng.permutation(len(cells)):
        cell = cells[int(k)]
        if cell in in_tree:
            continue
        nxt: dict[tuple[int, int], tuple[int, int]] = {}
        cur = cell
        while cur not in in_tree:
            options = list(_cell_neighbours(*cur, m))
            step = options[int(rng.integers(len(options)))]
            nxt[cur] = step  # overwriting erases loops
            cur = step
        cur = cell
        while cur not in in_tree:
            in_tree.add(cur)
            edges.append((cur, nxt[cur]))
            cur = nxt[cur]
    return edges


_GENERATORS = {"backtracker": _backtracker, "kruskal": _kruskal, "wilson": _wilson}


def _bfs(open_grid: np.ndarray, src: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Distances (-1 unreachable) and parent indices (flat, -1 none) over open cells."""
    R, C = open_grid.shape
    dist = np.full((R, C), -1, np.int64)
    parent = np.full((R, C), -1, np.int64)
    dist[src] = 0
    q = deque([src])
    while q:
        r, c = q.popleft()
        d = dist[r, c] + 1
        for dr, dc in GRID_NEIGHBOURS:
            rr, cc = r + dr, c + dc
            if 0 <= rr < R and 0 <= cc < C and open_grid[rr, cc] and dist[rr, cc] < 0:
                dist[rr, cc] = d
                parent[rr, cc] = r * C + c
                q.append((rr, cc))
    return dist, parent


def _farthest(dist: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(r), int(c)


def _partial_endpoints(
    open_grid: np.ndarray, m: int, rng: np.random.Generator
) -> tuple[tuple[int, int], tuple[int, int]]:
    """S and G at cells whose path (S and G included) holds PARTIAL_COVER of the open cells.

    Among the pairs in that band, pairs whose path is longer than their Manhattan distance (the
    straight line is blocked, so the path must be searched for) are preferred. Tries a few random
    starts; falls back to the pair whose length is nearest the band's middle."""
    n_open = int(open_grid.sum())
    lo = max(5, int(np.ceil(PARTIAL_COVER[0] * n_open)))  # 5 = two cells apart at least
    hi = max(lo, int(np.floor(PARTIAL_COVER[1] * n_open)))
    mid = (lo + hi) / 2
    cell_mask = np.zeros_like(open_grid)
    cell_mask[1::2, 1::2] = True
    rr, cc = np.mgrid[: open_grid.shape[0], : open_grid.shape[1]]
    best, best_gap = None, None
    for k, s in enumerate(rng.permutation(m * m)):
        start = (2 * int(s // m) + 1, 2 * int(s % m) + 1)
        length = _bfs(open_grid, start)[0] + 1  # [R, C] path length in cells, S and G included
        band = cell_mask & (length >= lo) & (length <= hi)
        detour = band & (length - 1 > np.abs(rr - start[0]) + np.abs(cc - start[1]))
        pick = detour if detour.any() else band
        if pick.any() and (detour.any() or k >= 3):
            cand = np.argwhere(pick)
            g = cand[int(rng.integers(len(cand)))]
            return start, (int(g[0]), int(g[1]))
        gap = np.where(cell_mask & (length > 1), np.abs(length - mid), np.inf)
        if best_gap is None or gap.min() < best_gap:
            best_gap = float(gap.min())
            best = (start, _farthest(-gap))
        if k >= 8:
            break
    return best


# --- the task ---------------------------------------------------------------------------------


class MazeTask(Task):
    """Maze task: see the module docstring for formats and the frame policy."""

    name = "maze"
    label_names = ("open", "wall", "start", "goal", "path")
    background_label = WALL
    default_sizes = tuple(range(MIN_SIZE, MAX_SIZE + 1, 2))

    # --- puzzles -------------------------------------------------------------------------
    def generate(
        self,
        seed: int,
        size: int = 11,
        algorithm: str | None = None,
        endpoints: str | None = None,
        distribution: str = "reasoning",
        **difficulty: Any,
    ) -> MazePuzzle:
        """A perfect maze on a ``size`` x ``size`` wall grid (odd, 7..21).

        ``distribution`` names a preset of the two options below: "reasoning" (default; wilson +
        partial) or "classic" (backtracker + diameter, the original distribution, same puzzles
        per seed as before); ``algorithm`` / ``endpoints`` given explicitly override it.
        ``algorithm``: "backtracker" (long corridors), "kruskal" or "wilson" (uniform spanning
        tree). ``endpoints``: "partial" (random cells whose path covers 20-45% of the open cells,
        preferring a path that cannot go straight), "diameter" (the two ends of the longest
        shortest path, found by double BFS, which is exact on a tree) or "corners" (top-left and
        bottom-right cells).
        """
        if difficulty:
            raise ValueError(f"maze.generate: unknown options {sorted(difficulty)}")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown maze distribution {distribution!r}; choose from {list(DISTRIBUTIONS)}")
        algorithm = DISTRIBUTIONS[distribution]["algorithm"] if algorithm is None else algorithm
        endpoints = DISTRIBUTIONS[distribution]["endpoints"] if endpoints is None else endpoints
        size = int(size)
        if size % 2 == 0 or not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(
                f"maze size is the wall-grid side: an odd number in [{MIN_SIZE}, {MAX_SIZE}], got {size}"
            )
        if algorithm not in _GENERATORS:
            raise ValueError(f"unknown maze algorithm {algorithm!r}; choose from {list(ALGORITHMS)}")
        if endpoints not in ENDPOINTS:
            raise ValueError(f"unknown endpoints policy {endpoints!r}; choose from {list(ENDPOINTS)}")
        rng = np.random.default_rng([int(seed), size, ALGORITHMS.index(algorithm), 0x3A2E])
        m = (size - 1) // 2
        grid = np.ones((size, size), bool)  # True = wall
        grid[1::2, 1::2] = False
        for (r0, c0), (r1, c1) in _GENERATORS[algorithm](m, rng):
            grid[r0 + r1 + 1, c0 + c1 + 1] = False
        if endpoints == "corners":
            start, goal = (1, 1), (size - 2, size - 2)
        elif endpoints == "partial":
            start, goal = _partial_endpoints(~grid, m, rng)
        else:
            probe = (2 * int(rng.integers(m)) + 1, 2 * int(rng.integers(m)) + 1)
            start = _farthest(_bfs(~grid, probe)[0])
            goal = _farthest(_bfs(~grid, start)[0])
        if rng.random() < 0.5:
            start, goal = goal, start
        rows = [["#" if w else " " for w in row] for row in grid]
        rows[start[0]][start[1]] = "S"
        rows[goal[0]][goal[1]] = "G"
        return MazePuzzle(tuple("".join(r) for r in rows))

    def from_text(self, text: str) -> MazePuzzle:
        rows = parse_char_grid(text, "# SG", "maze")
        for ch in "SG":
            count = sum(row.count(ch) for row in rows)
            if count != 1:
                where = [
                    f"line {i + 1}, column {row.index(ch) + 1}" for i, row in enumerate(rows) if ch in row
                ]
                raise ValueError(
                    f"maze: expected exactly one {ch!r}, found {count}"
                    + (f" ({', '.join(where)})" if where else "")
                )
        return MazePuzzle(tuple(rows))

    def solve(self, puzzle: MazePuzzle) -> MazeSolution | None:
        """Shortest path from S to G by BFS (the unique one in a perfect maze); None if G cannot be
        reached."""
        open_grid = ~puzzle.walls
        dist, parent = _bfs(open_grid, puzzle.start)
        gr, gc = puzzle.goal
        if dist[gr, gc] < 0:
            return None
        C = open_grid.shape[1]
        path = [(gr, gc)]
        while path[-1] != puzzle.start:
            p = int(parent[path[-1]])
            path.append((p // C, p % C))
        return MazeSolution(tuple(reversed(path)))

    def _as_path(self, solution) -> list[tuple[int, int]]:
        if isinstance(solution, MazeSolution):
            return list(solution.path)
        if isinstance(solution, (str, bytes)) or solution is None or not hasattr(solution, "__iter__"):
            raise ValueError(f"a maze solution is a list of (row, col) pairs, got {type(solution).__name__}")
        path = []
        for i, item in enumerate(solution):
            try:
                r, c = item
                if int(r) != r or int(c) != c:
                    raise TypeError
            except (TypeError, ValueError):
                raise ValueError(
                    f"maze solution step {i}: expected a (row, col) pair of ints, got {item!r}"
                ) from None
            path.append((int(r), int(c)))
        return path

    def check_solution(self, puzzle: MazePuzzle, solution) -> Verdict:
        """Strict: the path must start on S, end on G, move one 4-neighbour step at a time, never
        enter a wall or leave the grid, and never revisit a cell. reward = 1 on success, else 0;
        components report each rule (1 = holds)."""
        try:
            path = self._as_path(solution)
        except ValueError as exc:
            return Verdict(False, 0.0, {"well_formed": 0.0}, reason=str(exc))
        R, C = puzzle.shape
        comps = {
            "well_formed": 1.0,
            "starts_at_start": 1.0,
            "no_wall": 1.0,
            "contiguous": 1.0,
            "no_revisit": 1.0,
            "reaches_goal": 1.0,
        }
        reasons = []
        if not path:
            comps.update(starts_at_start=0.0, reaches_goal=0.0)
            return Verdict(False, 0.0, comps, reason="empty path")
        if path[0] != puzzle.start:
            comps["starts_at_start"] = 0.0
            reasons.append(f"path starts at {path[0]}, not at the start {puzzle.start}")
        seen = set()
        walls = puzzle.walls
        for i, (r, c) in enumerate(path):
            if not (0 <= r < R and 0 <= c < C):
                comps["no_wall"] = 0.0
                reasons.append(f"step {i}: {(r, c)} is outside the {R}x{C} grid")
                break
            if walls[r, c]:
                comps["no_wall"] = 0.0
                reasons.append(f"step {i}: {(r, c)} is a wall")
                break
        for i in range(1, len(path)):
            (r0, c0), (r1, c1) = path[i - 1], path[i]
            if abs(r0 - r1) + abs(c0 - c1) != 1:
                comps["contiguous"] = 0.0
                reasons.append(f"step {i}: jump from {(r0, c0)} to {(r1, c1)} (not a 4-neighbour)")
                break
        for i, p in enumerate(path):
            if p in seen:
                comps["no_revisit"] = 0.0
                reasons.append(f"step {i}: {p} is visited twice")
                break
            seen.add(p)
        if path[-1] != puzzle.goal:
            comps["reaches_goal"] = 0.0
            reasons.append(f"path stops at {path[-1]}, short of the goal {puzzle.goal}")
        ok = not reasons
        return Verdict(ok, 1.0 if ok else 0.0, comps, reason="; ".join(reasons))

    def prompt(self, puzzle: MazePuzzle) -> str:
        R, C = puzzle.shape
        return (
            f"The first frame shows a maze drawn on a {R}x{C} grid of square cells: wall cells, open "
            "corridor cells, one start cell and one goal cell, each in its own flat colour. Draw the path"
            " from the start cell to the goal cell through the open corridors, extending it by one cell "
            "at a time in the path colour, never entering a wall cell, and stop when the path reaches the"
            " goal. The walls, the start and the goal stay unchanged."
        )

    def solution_actions(self, puzzle: MazePuzzle, solution=None) -> list[tuple[int, int]]:
        """The painted path cells in order: the path without S and G (one action each)."""
        if solution is None:
            solution = self._solve_or_raise(puzzle)
        path = self._as_path(solution)
        return [p for p in path if p != puzzle.start and p != puzzle.goal]

    def plain_solution(self, solution) -> list[list[int]]:
        return [[r, c] for r, c in self._as_path(solution)]

    # --- rendering -----------------------------------------------------------------------
    def grid_shape(self, puzzle: MazePuzzle) -> tuple[int, int]:
        return puzzle.shape

    def base_states(self, puzzle: MazePuzzle) -> np.ndarray:
        """int8 [R, C]: the puzzle's label grid (frame 0)."""
        grid = np.where(puzzle.walls, WALL, OPEN).astype(np.int8)
        grid[puzzle.start] = START
        grid[puzzle.goal] = GOAL
        return grid

    def action_states(self, puzzle: MazePuzzle, solution=None) -> np.ndarray:
        base = self.base_states(puzzle)
        cells = self.solution_actions(puzzle, solution)
        R, C = base.shape
        states = np.repeat(base[None], len(cells) + 1, axis=0)
        for k, (r, c) in enumerate(cells, start=1):
            if not (0 <= r < R and 0 <= c < C):
                raise ValueError(f"maze path cell {(r, c)} lies outside the {R}x{C} grid")
            states[k:, r, c] = PATH
        return states

    def _base_palette(self, puzzle=None) -> np.ndarray:
        return np.array(
            [
                (240, 240, 240),  # open
                (20, 20, 20),  # wall
                (0, 200, 0),  # start
                (230, 0, 0),  # goal
                (0, 90, 255),  # path
            ],
            np.uint8,
        )
