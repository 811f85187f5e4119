"""FlowFree: Hamiltonian-path generation, an exact DFS solver, colour-by-colour path videos.

Text format (docs/contracts.md): one string per row, a letter is a colour's endpoint (each letter exactly
twice), ``.`` is empty. Letters are A-Z, a-z (case-sensitive) and digits 0-9. A solution is the
filled grid in the same letters. Valid: every cell filled, each colour one simple path joining its
two endpoints (endpoints have exactly one same-colour neighbour, path cells exactly two).

Colours: label 0 is "empty"; the puzzle's distinct letters, sorted by code point ("0" < "A" < "a"),
get labels 1, 2, ... in that order, so a letter's colour depends only on the puzzle's letter set.
Rendering supports up to MAX_COLOURS colours (the fixed palette); checking and solving have no limit.

Generation (``size`` 5..8): a random Hamiltonian path of the size x size grid (backbite moves from a
serpentine), cut into ``colours`` segments (DEFAULT_COLOURS, within colour_bounds) of at least 3
cells each, chosen uniformly among the cuts whose every segment is an induced path (no two
non-consecutive cells adjacent), so the construction itself is a valid solution under the degree
rule. Puzzles may have other solutions too; any valid one passes check_solution.

Frames: frame 0 shows the endpoints; then the colours in label order, each growing from its first
endpoint (row-major) one cell per action until it meets the other endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from vrlvr.tasks.base import Task, Verdict
from vrlvr.tasks.textgrid import GRID_NEIGHBOURS, TextGridPuzzle, parse_char_grid

__all__ = [
    "FlowFreePuzzle",
    "FlowFreeSolution",
    "FlowFreeTask",
    "MIN_SIZE",
    "MAX_SIZE",
    "MAX_COLOURS",
    "LETTERS",
]

MIN_SIZE, MAX_SIZE = 5, 8
MAX_COLOURS = 12
MIN_SEGMENT = 3
LETTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class FlowFreePuzzle(TextGridPuzzle):
    """Letter-grid rows: each letter twice (its endpoints), ``.`` empty."""

    @cached_property
    def letters(self) -> tuple[str, ...]:
        """Distinct letters sorted by code point; letters[i] has label i + 1."""
        return tuple(sorted({ch for row in self.rows for ch in row if ch != "."}))

    @cached_property
    def endpoints(self) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
        """letter -> its two endpoint cells, in row-major order."""
        found: dict[str, list[tuple[int, int]]] = {}
        for r, row in enumerate(self.rows):
            for c, ch in enumerate(row):
                if ch != ".":
                    found.setdefault(ch, []).append((r, c))
        return {k: (v[0], v[1]) for k, v in sorted(found.items())}

    def label_of(self, letter: str) -> int:
        return self.letters.index(letter) + 1


@dataclass(frozen=True)
class FlowFreeSolution:
    """The filled grid, one string per row."""

    rows: tuple[str, ...]

    def to_text(self) -> str:
        return "\n".join(self.rows) + "\n"


# --- generation -------------------------------------------------------------------------------


def _serpentine(R: int, C: int) -> list[tuple[int, int]]:
    return [(r, c if r % 2 == 0 else C - 1 - c) for r in range(R) for c in range(C)]


def _backbite(path: list[tuple[int, int]], R: int, C: int, moves: int, rng: np.random.Generator) -> list:
    """Random Hamiltonian path by backbite moves: pick an end, join it to a random grid neighbour
    already on the path, and reverse the stretch between (Mansfield's backbite)."""
    path = list(path)
    pos = {p: i for i, p in enumerate(path)}
    n = len(path)
    ends = rng.integers(0, 2, size=moves)
    dirs = rng.integers(0, 4, size=moves)
    for e, d in zip(ends, dirs):
        dr, dc = GRID_NEIGHBOURS[int(d)]
        if e == 0:
            r, c = path[0]
            q = (r + dr, c + dc)
            if not (0 <= q[0] < R and 0 <= q[1] < C):
                continue
            j = pos[q]
            if j == 1:
                continue
            # new path: path[j-1], ..., path[0], path[j], ...
            path[:j] = path[:j][::-1]
            for i in range(j):
                pos[path[i]] = i
        else:
            r, c = path[-1]
            q = (r + dr, c + dc)
            if not (0 <= q[0] < R and 0 <= q[1] < C):
                continue
            j = pos[q]
            if j == n - 2:
                continue
            path[j + 1 :] = path[j + 1 :][::-1]
            for i in range(j + 1, n):
                pos[path[i]] = i
    return path


def _max_induced_end(path: list[tuple[int, int]]) -> list[int]:
    """For each start i, the largest j such that path[i..j] is an induced path (no chord)."""
    n = len(path)
    pos = {p: i for i, p in enumerate(path)}
    last_chord = [-1] * n  # largest a < b - 1 with path[a] adjacent to path[b]
    for b, (r, c) in enumerate(path):
        for dr, dc in GRID_NEIGHBOURS:
            a = pos.get((r + dr, c + dc), -1)
            if 0 <= a < b - 1:
                last_chord[b] = max(last_chord[b], a)
    out = [0] * n
    j = 0
    for i in range(n):
        j = max(j, i)
        while j + 1 < n and last_chord[j + 1] < i:
            j += 1
        out[i] = j
    return out


def _sample_cuts(path, k: int, rng: np.random.Generator) -> list[int] | None:
    """Segment lengths (k of them, each >= MIN_SEGMENT, each an induced path) drawn uniformly from
    all such splits of the path, or None if there is none."""
    n = len(path)
    end = _max_induced_end(path)
    # ways[i][m]: splits of path[i:] into m valid segments
    ways = [[0] * (k + 1) for _ in range(n + 1)]
    ways[n][0] = 1
    for i in range(n - 1, -1, -1):
        for L in range(MIN_SEGMENT, end[i] - i + 2):
            if i + L > n:
                break
            nxt = ways[i + L]
            row = ways[i]
            for m in range(1, k + 1):
                row[m] += nxt[m - 1]
    if ways[0][k] == 0:
        return None
    lengths = []
    i, m = 0, k
    while m > 0:
        total = ways[i][m]
        pick = int(rng.integers(0, 2**62)) % total if total < 2**62 else int(rng.random() * total)
        for L in range(MIN_SEGMENT, end[i] - i + 2):
            if i + L > n:
                break
            w = ways[i + L][m - 1]
            if pick < w:
                lengths.append(L)
                i += L
                m -= 1
                break
            pick -= w
    return lengths


#: size -> fewest colours generate accepts. The degree rule makes every colour an induced path
#: (it never touches itself), and few long induced paths rarely tile a board: with fewer colours
#: than this, random Hamiltonian-path splits almost never qualify (measured: 8x8 with 8 colours,
#: 1 path in 60; with 9, 12 in 60).
MIN_COLOURS = {5: 3, 6: 4, 7: 6, 8: 8}
#: size -> the range the number of colours is drawn from when not given (about one per 6 cells)
DEFAULT_COLOURS = {5: (4, 6), 6: (5, 7), 7: (7, 9), 8: (9, 11)}


def colour_bounds(size: int) -> tuple[int, int]:
    """Allowed number of colours for a size x size board: (MIN_COLOURS, min(MAX_COLOURS, cells / 3))."""
    return MIN_COLOURS.get(size, 2), min(MAX_COLOURS, size * size // MIN_SEGMENT)


# --- the task ---------------------------------------------------------------------------------


class FlowFreeTask(Task):
    """FlowFree task: see the module docstring for formats, generation and the frame policy."""

    name = "flowfree"
    label_names = ("empty",) + tuple(f"colour{i}" for i in range(1, MAX_COLOURS + 1))
    background_label = 0
    default_sizes = tuple(range(MIN_SIZE, MAX_SIZE + 1))

    # --- puzzles -------------------------------------------------------------------------
    def generate(
        self, seed: int, size: int = 6, colours: int | None = None, **difficulty: Any
    ) -> FlowFreePuzzle:
        """A ``size`` x ``size`` puzzle (5..8) with ``colours`` colours (None: drawn from the seed in
        DEFAULT_COLOURS[size]; bounds from colour_bounds)."""
        return self.generate_with_solution(seed, size, colours, **difficulty)[0]

    def generate_with_solution(
        self, seed: int, size: int = 6, colours: int | None = None, **difficulty: Any
    ) -> tuple[FlowFreePuzzle, FlowFreeSolution]:
        """generate() plus the construction's own solution (valid; not necessarily unique)."""
        if difficulty:
            raise ValueError(f"flowfree.generate: unknown options {sorted(difficulty)}")
        size = int(size)
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"flowfree size must lie in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
        lo, hi = colour_bounds(size)
        rng = np.random.default_rng([int(seed), size, 0xF10F])
        if colours is None:
            a, b = DEFAULT_COLOURS[size]
            colours = int(rng.integers(a, b + 1))
        if not lo <= int(colours) <= hi:
            raise ValueError(f"colours for a {size}x{size} board must lie in [{lo}, {hi}], got {colours}")
        colours = int(colours)
        path = _serpentine(size, size)
        if rng.random() < 0.5:
            path = [(c, r) for r, c in path]
        path = _backbite(path, size, size, 20 * size * size, rng)
        for _ in range(2000):
            lengths = _sample_cuts(path, colours, rng)
            if lengths is not None:
                break
            path = _backbite(path, size, size, 4 * size * size, rng)
        else:
            raise RuntimeError(
                f"flowfree.generate: no split of a {size}x{size} board into {colours} induced paths found "
                f"(seed {seed}); more colours make this easier"
            )
        letters = [LETTERS[10 + i] for i in rng.permutation(colours)]  # "A", "B", ... in random order
        grid = [["."] * size for _ in range(size)]
        solved = [[""] * size for _ in range(size)]
        i = 0
        for letter, L in zip(letters, lengths):
            seg = path[i : i + L]
            i += L
            for r, c in seg:
                solved[r][c] = letter
            for r, c in (seg[0], seg[-1]):
                grid[r][c] = letter
        puzzle = FlowFreePuzzle(tuple("".join(r) for r in grid))
        return puzzle, FlowFreeSolution(tuple("".join(r) for r in solved))

    def from_text(self, text: str) -> FlowFreePuzzle:
        rows = parse_char_grid(text, "." + LETTERS, "flowfree")
        seen: dict[str, list[tuple[int, int]]] = {}
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                if ch != ".":
                    seen.setdefault(ch, []).append((r, c))
                    if len(seen[ch]) == 3:
                        raise ValueError(
                            f"flowfree: line {r + 1}, column {c + 1}: a third {ch!r}; each letter "
                            "marks exactly two endpoints"
                        )
        for ch, cells in sorted(seen.items()):
            if len(cells) != 2:
                r, c = cells[0]
                raise ValueError(
                    f"flowfree: line {r + 1}, column {c + 1}: {ch!r} appears once; each letter "
                    "marks exactly two endpoints"
                )
        if not seen:
            raise ValueError("flowfree: the grid has no endpoints (letters)")
        return FlowFreePuzzle(tuple(rows))

    def canonical_key(self, puzzle) -> str:
        """As Task.canonical_key, with letters renamed in order of first appearance (row-major),
        so the same puzzle with its colours permuted has the same key."""
        if isinstance(puzzle, str):
            puzzle = self.from_text(puzzle)
        rename: dict[str, str] = {}
        for row in puzzle.rows:
            for ch in row:
                if ch != "." and ch not in rename:
                    rename[ch] = LETTERS[len(rename)]
        rows = tuple("".join(rename.get(ch, ch) for ch in row) for row in puzzle.rows)
        return super().canonical_key(FlowFreePuzzle(rows))

    def solve(self, puzzle: FlowFreePuzzle) -> FlowFreeSolution | None:
        """A valid full solution by exact DFS (see flowfree_solver), or None if there is none."""
        from vrlvr.tasks.flowfree_solver import solve_grid

        R, C = puzzle.shape
        grid = [0] * (R * C)
        ends = {}
        for letter, ((r0, c0), (r1, c1)) in puzzle.endpoints.items():
            lab = puzzle.label_of(letter)
            grid[r0 * C + c0] = grid[r1 * C + c1] = lab
            ends[lab] = (r0 * C + c0, r1 * C + c1)
        out = solve_grid(grid, R, C, ends)
        if out is None:
            return None
        return FlowFreeSolution(
            tuple("".join(puzzle.letters[out[r * C + c] - 1] for c in range(C)) for r in range(R))
        )

    def _as_rows(self, puzzle: FlowFreePuzzle, solution) -> list[str]:
        if isinstance(solution, FlowFreeSolution):
            rows = list(solution.rows)
        elif isinstance(solution, str):
            rows = parse_char_grid(solution, None, "flowfree solution")
        elif isinstance(solution, (list, tuple)) and all(isinstance(r, str) for r in solution):
            rows = list(solution)
        else:
            raise ValueError(f"a flowfree solution is a list of row strings, got {type(solution).__name__}")
        R, C = puzzle.shape
        if len(rows) != R or any(len(r) != C for r in rows):
            raise ValueError(
                f"flowfree solution must be {R} rows of {C} characters, got "
                f"{len(rows)} rows of lengths {sorted({len(r) for r in rows})}"
            )
        return rows

    def check_solution(self, puzzle: FlowFreePuzzle, solution) -> Verdict:
        """Strict: endpoints unchanged, every cell filled with a puzzle letter, and each colour's
        cells one simple path joining its endpoints (endpoints: exactly one same-colour neighbour,
        other cells exactly two; which rules out crossings, branches, loops and paths touching
        themselves). reward = 0.15 path validity + 0.35 endpoint preservation + 0.30 colour
        connectivity + 0.20 fill (the paper's weights; each term a fraction)."""
        try:
            rows = self._as_rows(puzzle, solution)
        except ValueError as exc:
            return Verdict(False, 0.0, {"well_formed": 0.0}, reason=str(exc))
        R, C = puzzle.shape
        reasons = []
        letters = set(puzzle.letters)
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                if ch != "." and ch not in letters:
                    reasons.append(f"cell {(r, c)} holds {ch!r}, which is not a colour of the puzzle")
        filled = sum(1 for row in rows for ch in row if ch in letters)
        fill = filled / (R * C)
        if filled < R * C:
            reasons.append(f"{R * C - filled} cell(s) unfilled")
        kept = 0
        valid = connected = 0
        for letter, ends in puzzle.endpoints.items():
            for r, c in ends:
                if rows[r][c] == letter:
                    kept += 1
                else:
                    reasons.append(f"endpoint {letter} at {(r, c)} overwritten by {rows[r][c]!r}")
            cells = {(r, c) for r in range(R) for c in range(C) if rows[r][c] == letter}
            ok_degree = True
            for cell in cells:
                deg = sum(1 for dr, dc in GRID_NEIGHBOURS if (cell[0] + dr, cell[1] + dc) in cells)
                want = 1 if cell in ends else 2
                if deg != want:
                    ok_degree = False
                    reasons.append(
                        f"colour {letter}: cell {cell} has {deg} same-colour neighbours, expected {want}"
                        + (" (a crossing, branch or self-touching path)" if deg > want else "")
                    )
                    break
            valid += ok_degree
            if ends[0] in cells and ends[1] in cells:
                seen = {ends[0]}
                stack = [ends[0]]
                while stack:
                    r, c = stack.pop()
                    for dr, dc in GRID_NEIGHBOURS:
                        q = (r + dr, c + dc)
                        if q in cells and q not in seen:
                            seen.add(q)
                            stack.append(q)
                if ends[1] in seen:
                    connected += 1
                    if len(seen) != len(cells):
                        reasons.append(f"colour {letter}: {len(cells) - len(seen)} cell(s) not on its path")
                else:
                    reasons.append(f"colour {letter}: endpoints not connected")
            else:
                reasons.append(f"colour {letter}: endpoints not connected")
        k = len(puzzle.endpoints)
        comps = {
            "well_formed": 1.0,
            "path_validity": valid / k,
            "endpoints": kept / (2 * k),
            "connectivity": connected / k,
            "fill": fill,
        }
        reward = 0.15 * comps["path_validity"] + 0.35 * comps["endpoints"] + 0.30 * comps["connectivity"]
        reward += 0.20 * fill
        ok = not reasons
        return Verdict(ok, 1.0 if ok else reward, comps, reason="; ".join(reasons))

    def prompt(self, puzzle: FlowFreePuzzle) -> str:
        R, C = puzzle.shape
        k = len(puzzle.endpoints)
        return (
            f"The first frame shows a Flow Free puzzle on a {R}x{C} grid: {k} pairs of coloured endpoint "
            "cells on an empty board. Connect each pair with a path of its own colour, drawing one colour"
            " at a time and one cell per step, moving only up, down, left or right. Paths may not cross, "
            "branch or touch themselves, and when all are drawn every cell of the grid must be filled."
        )

    def solution_actions(self, puzzle: FlowFreePuzzle, solution=None) -> list[tuple[int, int, int]]:
        """(row, col, label) per painted cell: colours in label order, each traced from its first
        endpoint (row-major) to the other, endpoints excluded (they are in frame 0). Cells of a
        colour that the trace does not reach (an invalid solution) follow in row-major order."""
        if solution is None:
            solution = self._solve_or_raise(puzzle)
        rows = self._as_rows(puzzle, solution)
        R, C = puzzle.shape
        actions = []
        for letter, (a, b) in puzzle.endpoints.items():
            lab = puzzle.label_of(letter)
            cells = {(r, c) for r in range(R) for c in range(C) if rows[r][c] == letter} - {a, b}
            order = []
            cur = a
            while True:
                nxt = [q for dr, dc in GRID_NEIGHBOURS if (q := (cur[0] + dr, cur[1] + dc)) in cells]
                if not nxt:
                    break
                cur = nxt[0]
                cells.discard(cur)
                order.append(cur)
            order += sorted(cells)
            actions += [(r, c, lab) for r, c in order]
        return actions

    def plain_solution(self, solution) -> list[str]:
        if isinstance(solution, FlowFreeSolution):
            return list(solution.rows)
        return list(solution)

    # --- rendering -----------------------------------------------------------------------
    def grid_shape(self, puzzle: FlowFreePuzzle) -> tuple[int, int]:
        return puzzle.shape

    def base_states(self, puzzle: FlowFreePuzzle) -> np.ndarray:
        """int8 [R, C]: endpoints in their colour labels, everything else empty (frame 0)."""
        if len(puzzle.letters) > MAX_COLOURS:
            raise ValueError(
                f"flowfree rendering supports up to {MAX_COLOURS} colours, got {len(puzzle.letters)}"
            )
        grid = np.zeros(puzzle.shape, np.int8)
        for letter, ends in puzzle.endpoints.items():
            for cell in ends:
                grid[cell] = puzzle.label_of(letter)
        return grid

    def action_states(self, puzzle: FlowFreePuzzle, solution=None) -> np.ndarray:
        base = self.base_states(puzzle)
        actions = self.solution_actions(puzzle, solution)
        states = np.repeat(base[None], len(actions) + 1, axis=0)
        for k, (r, c, lab) in enumerate(actions, start=1):
            states[k:, r, c] = lab
        return states

    def decorations(self, puzzle: FlowFreePuzzle) -> np.ndarray:
        """Endpoints get a ring (outside the centre patch the verifier reads)."""
        mask = np.zeros(puzzle.shape, bool)
        for ends in puzzle.endpoints.values():
            for cell in ends:
                mask[cell] = True
        return mask

    def ring_colour(self, theme: int | str = 0) -> np.ndarray:
        from vrlvr.tasks.themes import apply_theme

        return apply_theme(np.array([[192, 192, 192]], np.uint8), theme)[0]

    def _base_palette(self, puzzle=None) -> np.ndarray:
        # empty + 12 colours, all on the {0, 128, 255}^3 lattice: pairwise distance >= 127
        return np.array(
            [
                (0, 0, 0),  # empty
                (255, 0, 0),  # red
                (0, 128, 0),  # green
                (0, 0, 255),  # blue
                (255, 255, 0),  # yellow
                (255, 128, 0),  # orange
                (0, 255, 255),  # cyan
                (255, 0, 255),  # magenta
                (128, 0, 0),  # maroon
                (128, 0, 128),  # purple
                (255, 255, 255),  # white
                (128, 128, 128),  # grey
                (0, 255, 0),  # lime
            ],
            np.uint8,
        )
