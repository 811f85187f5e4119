"""Sokoban: reverse-play generation, a move-optimal BFS solver, one player move per frame.

Text format: XSB (docs/contracts.md): ``#`` wall, `` `` floor, ``$`` box, ``.`` goal, ``*`` box on goal,
``@`` player, ``+`` player on goal; ``-`` and ``_`` are accepted as floor (common XSB variants).
Rows may be ragged (trailing blanks stripped): short rows are padded with blanks. Non-wall cells
walled off from the player, every box and every goal (flood fill through non-wall cells) are
outside the board and render as wall. A solution is a move string over U/D/L/R (case-insensitive);
a move into a box pushes it when the cell beyond is free (floor or goal), otherwise it is illegal.

Generation (``size`` = board side including the outer walls, 6..10; 1..3 boxes): a random room
(interior floor with random wall cells, kept connected), boxes placed on goals, then reverse play
(the player walks and pulls boxes off the goals); the reversed pulls are legal pushes, so the
puzzle is solvable; the BFS solver then finds the shortest solution, and puzzles without a solution
of at most ``max_moves`` (60) moves, or with fewer than ``min_moves``, are rejected and re-drawn.
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
    "SokobanPuzzle",
    "SokobanSolution",
    "SokobanTask",
    "MIN_SIZE",
    "MAX_SIZE",
    "MAX_BOXES",
    "MAX_MOVES",
]

MIN_SIZE, MAX_SIZE = 6, 10
MIN_BOXES, MAX_BOXES = 1, 3
MAX_MOVES = 60
MOVES = "UDLR"
FLOOR, WALL, GOAL, BOX, BOX_ON_GOAL, PLAYER, PLAYER_ON_GOAL = range(7)
_XSB = "# $.*@+-_"


@dataclass(frozen=True)
class SokobanPuzzle(TextGridPuzzle):
    """A board as rectangular XSB rows (short rows padded with blanks)."""

    def to_text(self) -> str:
        return "\n".join(r.rstrip() for r in self.rows) + "\n"

    @cached_property
    def walls(self) -> np.ndarray:
        """bool [R, C]: walls, and the outside cells (rendered and treated as wall)."""
        return np.array([[ch == "#" for ch in row] for row in self.rows], bool) | self.outside

    @cached_property
    def outside(self) -> np.ndarray:
        """bool [R, C]: blank cells walled off from the player, every box and every goal (the
        area outside the board)."""
        R, C = self.shape
        inside = np.zeros((R, C), bool)
        seeds = [self.player, *self.boxes, *self.goals]
        for r, c in seeds:
            inside[r, c] = True
        q = deque(seeds)
        while q:
            r, c = q.popleft()
            for dr, dc in GRID_NEIGHBOURS:
                rr, cc = r + dr, c + dc
                if 0 <= rr < R and 0 <= cc < C and not inside[rr, cc] and self.rows[rr][cc] != "#":
                    inside[rr, cc] = True
                    q.append((rr, cc))
        return ~inside & np.array([[ch != "#" for ch in row] for row in self.rows], bool)

    @cached_property
    def goals(self) -> frozenset[tuple[int, int]]:
        return frozenset(_cells(self.rows, ".*+"))

    @cached_property
    def boxes(self) -> frozenset[tuple[int, int]]:
        return frozenset(_cells(self.rows, "$*"))

    @cached_property
    def player(self) -> tuple[int, int]:
        return _cells(self.rows, "@+")[0]


@dataclass(frozen=True)
class SokobanSolution:
    """A move string over U/D/L/R."""

    moves: str

    def __len__(self) -> int:
        return len(self.moves)


def _cells(rows, chars: str) -> list[tuple[int, int]]:
    return [(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in chars]


def _board_text(walls: np.ndarray, goals, boxes, player) -> tuple[str, ...]:
    R, C = walls.shape
    rows = []
    for r in range(R):
        row = []
        for c in range(C):
            p = (r, c)
            if walls[r, c]:
                row.append("#")
            elif p == player:
                row.append("+" if p in goals else "@")
            elif p in boxes:
                row.append("*" if p in goals else "$")
            else:
                row.append("." if p in goals else " ")
        rows.append("".join(row))
    return tuple(rows)


class _Board:
    """Cell indexing of a board's non-wall cells for the solver."""

    def __init__(self, walls: np.ndarray, goals):
        R, C = walls.shape
        self.index = -np.ones((R, C), np.int64)
        cells = list(zip(*np.nonzero(~walls)))
        for i, (r, c) in enumerate(cells):
            self.index[r, c] = i
        self.cells = [(int(r), int(c)) for r, c in cells]
        N = len(cells)
        self.nbr = -np.ones((N, 4), np.int64)
        for i, (r, c) in enumerate(self.cells):
            for d, (dr, dc) in enumerate(GRID_NEIGHBOURS):
                rr, cc = r + dr, c + dc
                if 0 <= rr < R and 0 <= cc < C and not walls[rr, cc]:
                    self.nbr[i, d] = self.index[rr, cc]
        self.goal = np.zeros(N, np.bool_)
        for g in goals:
            self.goal[self.index[g]] = True
        from vrlvr.tasks.sokoban_solver import live_cells

        self.dead = ~live_cells(self.nbr, self.goal)

    def solve(self, player, boxes, max_moves: int, max_states: int) -> tuple[int, str]:
        from vrlvr.tasks.sokoban_solver import bfs_solve

        N = len(self.cells)
        if float(N) ** (len(boxes) + 1) >= 2.0**62:
            raise ValueError(f"sokoban board too large for the solver: {N} cells and {len(boxes)} boxes")
        for b in boxes:
            if self.dead[self.index[b]] and not self.goal[self.index[b]]:
                return 0, ""  # a box already sits where it can never reach a goal
        status, moves = bfs_solve(
            self.nbr,
            self.goal,
            self.dead,
            int(self.index[player]),
            np.array(sorted(int(self.index[b]) for b in boxes), np.int64),
            int(max_moves),
            int(max_states),
        )
        return int(status), "".join(MOVES[int(d)] for d in moves)


class SokobanTask(Task):
    """Sokoban task: see the module docstring for formats, generation and the frame policy."""

    name = "sokoban"
    label_names = ("floor", "wall", "goal", "box", "box_on_goal", "player", "player_on_goal")
    background_label = WALL
    default_sizes = tuple(range(MIN_SIZE, MAX_SIZE + 1))
    #: solve() gives up (RuntimeError) beyond this many states
    max_states = 30_000_000

    # --- puzzles -------------------------------------------------------------------------
    def generate(
        self,
        seed: int,
        size: int = 8,
        boxes: int | None = None,
        min_moves: int | None = None,
        max_moves: int = MAX_MOVES,
        wall_fraction: float | None = None,
        attempts: int = 200,
        **difficulty: Any,
    ) -> SokobanPuzzle:
        """A ``size`` x ``size`` board (outer walls included, 6..10) with ``boxes`` boxes (1..3;
        None: drawn from the seed) whose shortest solution has between ``min_moves`` (None: a
        size-dependent default) and ``max_moves`` (<= 60) moves."""
        if difficulty:
            raise ValueError(f"sokoban.generate: unknown options {sorted(difficulty)}")
        size = int(size)
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(
                f"sokoban size is the board side including walls, in [{MIN_SIZE}, {MAX_SIZE}], got {size}"
            )
        rng = np.random.default_rng([int(seed), size, 0x50C0])
        if boxes is None:
            boxes = int(rng.integers(MIN_BOXES, MAX_BOXES + 1))
        if not MIN_BOXES <= int(boxes) <= MAX_BOXES:
            raise ValueError(f"boxes must lie in [{MIN_BOXES}, {MAX_BOXES}], got {boxes}")
        boxes = int(boxes)
        if not 1 <= int(max_moves) <= MAX_MOVES:
            raise ValueError(f"max_moves must lie in [1, {MAX_MOVES}], got {max_moves}")
        if min_moves is None:
            min_moves = min(int(max_moves), 4 + size + 2 * boxes)
        if not 1 <= int(min_moves) <= int(max_moves):
            raise ValueError(f"min_moves must lie in [1, max_moves={max_moves}], got {min_moves}")
        best = None
        for _ in range(int(attempts)):
            walls = self._room(rng, size, boxes, wall_fraction)
            for _ in range(4):  # several reverse plays per room, the longest solution wins
                candidate = self._reverse_play(rng, walls, boxes)
                if candidate is None:
                    continue
                goals, box_cells, player = candidate
                status, moves = _Board(walls, goals).solve(player, box_cells, max_moves, self.max_states)
                if status != 1 or not moves:
                    continue
                if best is None or len(moves) > best[0]:
                    best = (len(moves), SokobanPuzzle(_board_text(walls, goals, box_cells, player)))
            if best is not None and best[0] >= min_moves:
                return best[1]
        if best is None:
            raise RuntimeError(
                f"sokoban.generate: no solvable {size}x{size} board with {boxes} boxes in "
                f"{attempts} attempts (seed {seed})"
            )
        return best[1]

    @staticmethod
    def _room(rng: np.random.Generator, size: int, boxes: int, wall_fraction: float | None) -> np.ndarray:
        """bool [size, size] walls: border walls around an interior carved by a random walk (so the
        floor is connected by construction) until 1 - wall_fraction of the interior is floor."""
        n = size - 2
        if wall_fraction is None:
            wall_fraction = float(rng.uniform(0.1, 0.35))
        if not 0.0 <= wall_fraction < 1.0:
            raise ValueError(f"wall_fraction must lie in [0, 1), got {wall_fraction}")
        target = max(2 * boxes + 4, int(round((1.0 - wall_fraction) * n * n)))
        walls = np.ones((size, size), bool)
        r, c = int(rng.integers(n)), int(rng.integers(n))
        walls[r + 1, c + 1] = False
        carved = 1
        d = int(rng.integers(4))
        while carved < target:
            if rng.random() < 0.35:
                d = int(rng.integers(4))
            dr, dc = GRID_NEIGHBOURS[d]
            if not (0 <= r + dr < n and 0 <= c + dc < n):
                d = int(rng.integers(4))
                continue
            r, c = r + dr, c + dc
            if walls[r + 1, c + 1]:
                walls[r + 1, c + 1] = False
                carved += 1
        return walls

    @staticmethod
    def _reverse_play(rng: np.random.Generator, walls: np.ndarray, boxes: int):
        """Goals on random floor cells, boxes on the goals, then random pulls: the player goes
        (through free cells) next to a box and steps away from it, pulling it along. Returns
        (goals, boxes, player) or None when no box could be pulled off its goal."""
        floor = [(int(r), int(c)) for r, c in zip(*np.nonzero(~walls))]
        pick = rng.permutation(len(floor))
        goals = [floor[int(i)] for i in pick[:boxes]]
        box_set = set(goals)
        player = floor[int(pick[boxes])]
        for _ in range(int(rng.integers(2 * boxes + 2, 6 * boxes + 6))):
            reach = _reachable(walls, box_set, player)
            options = []
            for b in box_set:
                for dr, dc in GRID_NEIGHBOURS:
                    stand = (b[0] + dr, b[1] + dc)  # the player stands here and steps on to `to`
                    to = (b[0] + 2 * dr, b[1] + 2 * dc)
                    if stand in reach and not walls[to] and to not in box_set:
                        options.append((b, stand, to))
            if not options:
                break
            b, stand, to = options[int(rng.integers(len(options)))]
            # pull once, then keep pulling in the same direction with probability 1/2
            while True:
                box_set.remove(b)
                box_set.add(stand)
                b, stand, to = stand, to, (2 * to[0] - stand[0], 2 * to[1] - stand[1])
                if walls[to] or to in box_set or rng.random() < 0.5:
                    break
            player = stand
        if box_set == set(goals):
            return None
        reach = sorted(_reachable(walls, box_set, player))
        player = reach[int(rng.integers(len(reach)))]
        return frozenset(goals), frozenset(box_set), player

    def from_text(self, text: str) -> SokobanPuzzle:
        rows = parse_char_grid(text, _XSB, "sokoban", pad=" ")
        rows = [row.replace("-", " ").replace("_", " ") for row in rows]
        players = _cells(rows, "@+")
        if len(players) != 1:
            where = ", ".join(f"line {r + 1}, column {c + 1}" for r, c in players)
            raise ValueError(
                f"sokoban: expected exactly one player ('@' or '+'), found {len(players)}"
                + (f" ({where})" if where else "")
            )
        n_boxes, n_goals = len(_cells(rows, "$*")), len(_cells(rows, ".*+"))
        if n_boxes == 0:
            raise ValueError("sokoban: the board has no box ('$' or '*')")
        if n_boxes != n_goals:
            raise ValueError(f"sokoban: {n_boxes} boxes but {n_goals} goals; they must match")
        puzzle = SokobanPuzzle(tuple(rows))
        R, C = puzzle.shape
        inside = ~puzzle.outside & ~np.array([[ch == "#" for ch in row] for row in rows], bool)
        edge = np.zeros_like(inside)
        edge[[0, -1], :] = True
        edge[:, [0, -1]] = True
        if (inside & edge).any():
            r, c = (int(v) for v in np.argwhere(inside & edge)[0])
            raise ValueError(
                f"sokoban: line {r + 1}, column {c + 1} is reachable floor on the grid edge; "
                "the board must be enclosed by walls"
            )
        return puzzle

    def solve(self, puzzle: SokobanPuzzle, max_moves: int | None = None) -> SokobanSolution | None:
        """The shortest solution in moves (BFS), or None if there is none (within ``max_moves``
        when given). Raises RuntimeError if the search exceeds ``max_states`` states."""
        board = _Board(puzzle.walls, puzzle.goals)
        status, moves = board.solve(
            puzzle.player, puzzle.boxes, -1 if max_moves is None else max_moves, self.max_states
        )
        if status == -1:
            raise RuntimeError(f"sokoban.solve gave up after {self.max_states} states")
        return SokobanSolution(moves) if status == 1 else None

    def _as_moves(self, solution) -> str:
        if isinstance(solution, SokobanSolution):
            solution = solution.moves
        if isinstance(solution, (list, tuple)) and all(isinstance(m, str) for m in solution):
            solution = "".join(solution)
        if not isinstance(solution, str):
            raise ValueError(
                f"a sokoban solution is a move string over U/D/L/R, got {type(solution).__name__}"
            )
        moves = solution.upper()
        for i, ch in enumerate(moves):
            if ch not in MOVES:
                raise ValueError(
                    f"sokoban solution character {i + 1}: {solution[i]!r} is not one of U, D, L, R"
                )
        return moves

    @staticmethod
    def step(puzzle: SokobanPuzzle, player, boxes: frozenset, move: str):
        """One move: (player, boxes, "") after a legal move; (player, boxes, why) unchanged after an
        illegal one (walking into a wall, pushing a box into a wall or another box)."""
        dr, dc = GRID_NEIGHBOURS[MOVES.index(move)]
        nxt = (player[0] + dr, player[1] + dc)
        if puzzle.walls[nxt]:
            return player, boxes, f"walks into a wall at {nxt}"
        if nxt in boxes:
            beyond = (nxt[0] + dr, nxt[1] + dc)
            if puzzle.walls[beyond] or beyond in boxes:
                what = "a wall" if puzzle.walls[beyond] else "another box"
                return player, boxes, f"pushes the box at {nxt} into {what}"
            boxes = (boxes - {nxt}) | {beyond}
        return nxt, boxes, ""

    def simulate(self, puzzle: SokobanPuzzle, moves: str):
        """Play the moves (illegal ones leave the state unchanged). Returns (player, boxes,
        legal: list[bool], reasons: list[str])."""
        player, boxes = puzzle.player, frozenset(puzzle.boxes)
        legal, reasons = [], []
        for i, m in enumerate(moves):
            player, boxes, why = self.step(puzzle, player, boxes, m)
            legal.append(not why)
            if why:
                reasons.append(f"move {i + 1} ({m}) {why}")
        return player, boxes, legal, reasons

    def check_solution(self, puzzle: SokobanPuzzle, solution) -> Verdict:
        """Strict: every move must be legal (no walking into walls, no pushing a box into a wall or
        another box) and every box must be on a goal after the last move. reward = 0.5 x fraction
        of boxes on goals at the end + 0.5 x fraction of legal moves (illegal moves are skipped)."""
        try:
            moves = self._as_moves(solution)
        except ValueError as exc:
            return Verdict(False, 0.0, {"well_formed": 0.0}, reason=str(exc))
        _, boxes, legal, reasons = self.simulate(puzzle, moves)
        on_goal = len(boxes & puzzle.goals) / len(puzzle.goals)
        legal_frac = float(np.mean(legal)) if legal else 1.0
        comps = {"well_formed": 1.0, "boxes_on_goals": on_goal, "legal_moves": legal_frac}
        if on_goal < 1.0:
            left = len(puzzle.goals) - len(boxes & puzzle.goals)
            reasons.append(f"{left} box(es) not on a goal after the last move")
        ok = not reasons
        return Verdict(ok, 0.5 * on_goal + 0.5 * legal_frac, comps, reason="; ".join(reasons))

    def prompt(self, puzzle: SokobanPuzzle) -> str:
        R, C = puzzle.shape
        n = len(puzzle.boxes)
        return (
            f"The first frame shows a Sokoban board on a {R}x{C} grid of square cells: walls, floor, goal "
            f"cells, {n} box{'es' if n > 1 else ''} and the player, each in its own flat colour. Move the "
            "player one cell per step up, down, left or right; walking into a box pushes it one cell if "
            "the cell beyond is free. Boxes cannot be pulled and walls cannot be crossed. Push every box "
            "onto a goal cell."
        )

    def solution_actions(self, puzzle: SokobanPuzzle, solution=None) -> list[str]:
        """The moves, one character each."""
        if solution is None:
            solution = self._solve_or_raise(puzzle)
        return list(self._as_moves(solution))

    def plain_solution(self, solution) -> str:
        return self._as_moves(solution)

    # --- rendering -----------------------------------------------------------------------
    def grid_shape(self, puzzle: SokobanPuzzle) -> tuple[int, int]:
        return puzzle.shape

    def state_grid(self, puzzle: SokobanPuzzle, player, boxes) -> np.ndarray:
        """int8 [R, C] label grid of a board state."""
        grid = np.where(puzzle.walls, WALL, FLOOR).astype(np.int8)
        for g in puzzle.goals:
            grid[g] = GOAL
        for b in boxes:
            grid[b] = BOX_ON_GOAL if b in puzzle.goals else BOX
        grid[player] = PLAYER_ON_GOAL if player in puzzle.goals else PLAYER
        return grid

    def base_states(self, puzzle: SokobanPuzzle) -> np.ndarray:
        """int8 [R, C]: the puzzle's label grid (frame 0)."""
        return self.state_grid(puzzle, puzzle.player, puzzle.boxes)

    def action_states(self, puzzle: SokobanPuzzle, solution=None) -> np.ndarray:
        moves = "".join(self.solution_actions(puzzle, solution))
        player, boxes = puzzle.player, frozenset(puzzle.boxes)
        states = [self.state_grid(puzzle, player, boxes)]
        for i, m in enumerate(moves):
            player, boxes, why = self.step(puzzle, player, boxes, m)
            if why:
                raise ValueError(f"cannot render: move {i + 1} ({m}) is illegal: it {why}")
            states.append(self.state_grid(puzzle, player, boxes))
        return np.stack(states)

    def _base_palette(self, puzzle=None) -> np.ndarray:
        return np.array(
            [
                (225, 225, 225),  # floor
                (40, 40, 40),  # wall
                (250, 210, 0),  # goal
                (160, 80, 0),  # box
                (0, 180, 0),  # box on goal
                (0, 70, 255),  # player
                (210, 0, 210),  # player on goal
            ],
            np.uint8,
        )


def _reachable(walls: np.ndarray, boxes, start: tuple[int, int]) -> set[tuple[int, int]]:
    """Cells the player reaches from start without pushing (boxes block)."""
    seen = {start}
    stack = [start]
    while stack:
        r, c = stack.pop()
        for dr, dc in GRID_NEIGHBOURS:
            p = (r + dr, c + dc)
            if p not in seen and not walls[p] and p not in boxes:
                seen.add(p)
                stack.append(p)
    return seen
