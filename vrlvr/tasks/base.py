"""The task contract shared by Maze, FlowFree and Sokoban, and the rendering geometry that the
verifier inverts.

A task renders a video in two steps: ``frame_states`` turns (puzzle, solution) into one label grid
per frame (int8 [F, R, C], each value an index into the task's ``label_names``), and
``paint_grids`` turns label grids into pixels with a theme's palette (uint8 [K, 3], K =
len(label_names)). The verifier does the inverse: it parses pixels back into label grids using the
same ``Layout`` (where the grid sits in the frame) and the same palette, so render and parse share
one definition of the geometry.
"""

from __future__ import annotations

import abc
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Layout",
    "Verdict",
    "Task",
    "fit_layout",
    "paint_grids",
    "action_frame_indices",
]


@dataclass(frozen=True)
class Layout:
    """Where a grid of ``grid_shape`` = (R, C) cells sits in a frame of (height, width) pixels.

    ``bbox`` = (top, left, box_height, box_width) in pixels; cells are box_height / R by
    box_width / C pixels and may be fractional. Cell (r, c) covers rows
    [top + r * cell_h, top + (r + 1) * cell_h) and the matching columns.
    """

    grid_shape: tuple[int, int]
    height: int
    width: int
    bbox: tuple[float, float, float, float]

    @property
    def cell_size(self) -> tuple[float, float]:
        return self.bbox[2] / self.grid_shape[0], self.bbox[3] / self.grid_shape[1]

    def cell_bounds(self, r: int, c: int) -> tuple[int, int, int, int]:
        """Integer pixel bounds (y0, y1, x0, x1) of cell (r, c): rounding of the exact edges, so
        neighbouring cells tile the box without gaps or overlap."""
        top, left, bh, bw = self.bbox
        R, C = self.grid_shape
        y0 = int(round(top + r * bh / R))
        y1 = int(round(top + (r + 1) * bh / R))
        x0 = int(round(left + c * bw / C))
        x1 = int(round(left + (c + 1) * bw / C))
        return y0, y1, x0, x1

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid_shape": list(self.grid_shape),
            "height": self.height,
            "width": self.width,
            "bbox": list(self.bbox),
        }


def fit_layout(grid_shape: tuple[int, int], height: int, width: int, margin: float = 0.0) -> Layout:
    """Largest square-celled grid that fits the frame, centred, with integer cell size when the
    frame allows at least one pixel per cell (crisper edges, exact tiling)."""
    R, C = int(grid_shape[0]), int(grid_shape[1])
    if R < 1 or C < 1:
        raise ValueError(f"grid_shape must be positive, got {grid_shape}")
    if height < R or width < C:
        raise ValueError(f"a {R}x{C} grid needs a frame of at least {R}x{C} pixels, got {height}x{width}")
    avail_h = height * (1.0 - 2 * margin)
    avail_w = width * (1.0 - 2 * margin)
    cell = min(avail_h / R, avail_w / C)
    if cell >= 1.0:
        cell = float(math.floor(cell))
    bh, bw = cell * R, cell * C
    top = float(math.floor((height - bh) / 2))
    left = float(math.floor((width - bw) / 2))
    return Layout((R, C), int(height), int(width), (top, left, bh, bw))


def paint_grids(
    states: np.ndarray,
    layout: Layout,
    palette: np.ndarray,
    background: np.ndarray | None = None,
    decorations: np.ndarray | None = None,
    ring_colour: np.ndarray | None = None,
) -> np.ndarray:
    """Label grids int [F, R, C] -> frames uint8 [F, H, W, 3].

    Every cell is a flat palette colour. ``decorations`` (bool [R, C], optional) marks cells that
    get a ring of ``ring_colour`` in their outer 15% (e.g. FlowFree endpoints) — outside the centre
    patch the verifier reads, so decoration never changes what is parsed. Rings are drawn only
    when cells are at least 8 px.
    """
    states = np.asarray(states)
    palette = np.asarray(palette, dtype=np.uint8)
    if states.ndim != 3 or tuple(states.shape[1:]) != tuple(layout.grid_shape):
        raise ValueError(
            f"states must be [F, {layout.grid_shape[0]}, {layout.grid_shape[1]}], got {states.shape}"
        )
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must be uint8 [K, 3], got shape {palette.shape}")
    if states.size and (states.min() < 0 or states.max() >= len(palette)):
        raise ValueError(
            f"state labels must lie in [0, {len(palette)}), got [{states.min()}, {states.max()}]"
        )
    F = states.shape[0]
    R, C = layout.grid_shape
    bg = np.zeros(3, np.uint8) if background is None else np.asarray(background, np.uint8)
    frames = np.empty((F, layout.height, layout.width, 3), np.uint8)
    # Pixel -> cell index maps (from the same rounded edges as Layout.cell_bounds), then one
    # gather per frame: palette[states[f][row_of_pixel][:, col_of_pixel]].
    top, left, bh, bw = layout.bbox
    y_edges = [int(round(top + r * bh / R)) for r in range(R + 1)]
    x_edges = [int(round(left + c * bw / C)) for c in range(C + 1)]
    rows = np.repeat(np.arange(R), np.diff(y_edges))
    cols = np.repeat(np.arange(C), np.diff(x_edges))
    y0, y1, x0, x1 = y_edges[0], y_edges[-1], x_edges[0], x_edges[-1]
    for f in range(F):
        if f == 0:
            if F:
                frames[0].reshape(-1, 3)[:] = bg
        else:
            # every frame starts as a copy of the previous one (background included); when few
            # cells changed (the usual case: one action per transition, held frames) only those
            # cells are repainted, with the same rounded edges as the full gather below
            frames[f] = frames[f - 1]
            changed = np.argwhere(states[f] != states[f - 1])
            if len(changed) * 8 < R * C:
                for r, c in changed:
                    frames[f, y_edges[r] : y_edges[r + 1], x_edges[c] : x_edges[c + 1]] = palette[
                        states[f, r, c]
                    ]
                continue
        frames[f, y0:y1, x0:x1] = palette[states[f][rows][:, cols]]
    if decorations is not None and ring_colour is not None:
        ch, cw = layout.cell_size
        if min(ch, cw) >= 8:
            ring = np.asarray(ring_colour, np.uint8)
            for r, c in zip(*np.nonzero(decorations)):
                a0, a1, b0, b1 = layout.cell_bounds(int(r), int(c))
                t = max(1, int(round(0.15 * min(a1 - a0, b1 - b0))))
                frames[:, a0 : a0 + t, b0:b1] = ring
                frames[:, a1 - t : a1, b0:b1] = ring
                frames[:, a0:a1, b0 : b0 + t] = ring
                frames[:, a0:a1, b1 - t : b1] = ring
    return frames


def action_frame_indices(num_actions: int, num_frames: int) -> np.ndarray:
    """The frame policy: which action count each frame shows. int64 [num_frames].

    Frame 0 shows the puzzle (0 actions) and the last frame the finished solution (all actions).
    Frame k shows the state after round(k * A / (F - 1)) actions: with A <= F - 1 every action is
    its own frame transition and the solution holds for the remaining frames' share; with more
    actions than transitions, several actions share one transition (the verifier bridges them).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_actions < 0:
        raise ValueError(f"num_actions must be >= 0, got {num_actions}")
    if num_frames == 1:
        return np.zeros(1, np.int64)
    k = np.arange(num_frames, dtype=np.float64)
    if num_actions <= num_frames - 1:
        # one action per transition, first; then hold the finished state
        return np.minimum(np.arange(num_frames), num_actions).astype(np.int64)
    return np.floor(k * num_actions / (num_frames - 1) + 0.5).astype(np.int64)


@dataclass
class Verdict:
    """Result of checking a solution (symbolic) or a video (pixels -> states -> rules).

    ``reward`` is dense in [0, 1]; ``success`` the sparse all-rules-hold outcome; ``components``
    every reward term and diagnostic (all floats); precision / recall / f1 against the ground-truth
    solution for video verdicts (None for symbolic checks). ``reason`` says why success is False.
    """

    success: bool
    reward: float
    components: dict[str, float] = field(default_factory=dict)
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": bool(self.success),
            "reward": float(self.reward),
            "components": {k: float(v) for k, v in self.components.items()},
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "reason": self.reason,
        }


class Task(abc.ABC):
    """Base class of a puzzle task. Subclasses set ``name`` and ``label_names`` and implement the
    puzzle methods plus ``action_states``, ``solution_actions``, ``grid_shape`` and ``_base_palette``;
    ``frame_states``, ``palette``, ``layout``, ``render`` and ``canonical_key`` then work as defined
    here (see vrlvr.tasks.maze for a complete example)."""

    name: ClassVar[str] = ""
    #: meaning of each label value in frame_states grids, index = label
    label_names: ClassVar[tuple[str, ...]] = ()
    #: label painted outside the grid's box (the frame background)
    background_label: ClassVar[int] = 0
    #: the sizes `vrlvr data` cycles through by default (the paper's range)
    default_sizes: ClassVar[tuple[int, ...]] = ()

    # --- puzzles -------------------------------------------------------------------------
    @abc.abstractmethod
    def generate(self, seed: int, size: int, **difficulty: Any): ...

    @abc.abstractmethod
    def solve(self, puzzle): ...

    def generate_with_solution(self, seed: int, size: int, **difficulty: Any):
        """(puzzle, ground-truth solution): generate, then solve (a task whose generator builds a
        solution, like FlowFree, returns that one)."""
        puzzle = self.generate(seed, size, **difficulty)
        solution = self.solve(puzzle)
        if solution is None:  # generators only emit solvable puzzles
            raise RuntimeError(f"{self.name}: generated puzzle (seed {seed}, size {size}) has no solution")
        return puzzle, solution

    def _solve_or_raise(self, puzzle):
        """solve(puzzle), or ValueError when there is no solution (for rendering without one)."""
        sol = self.solve(puzzle)
        if sol is None:
            raise ValueError(f"{self.name} puzzle has no solution; pass one explicitly to render it")
        return sol

    @abc.abstractmethod
    def from_text(self, text: str): ...

    @abc.abstractmethod
    def check_solution(self, puzzle, solution) -> Verdict: ...

    @abc.abstractmethod
    def prompt(self, puzzle) -> str: ...

    @abc.abstractmethod
    def solution_actions(self, puzzle, solution=None) -> list:
        """The solution as its discrete actions, one per frame transition before frame-policy
        resampling (solution None: solve it)."""
        ...

    @abc.abstractmethod
    def plain_solution(self, solution) -> Any:
        """The solution in its plain JSON-able form (the form check_solution also accepts)."""
        ...

    def canonical_key(self, puzzle) -> str:
        """Hex sha256 of the task name and the puzzle's normalised text: equal for equal puzzles
        (whatever the source: generated or parsed), so evaluation puzzles can be kept out of
        training sets."""
        if isinstance(puzzle, str):
            puzzle = self.from_text(puzzle)
        text = puzzle.to_text()
        lines = [line.rstrip() for line in text.strip("\n").split("\n")]
        return hashlib.sha256((self.name + "\n" + "\n".join(lines)).encode()).hexdigest()

    # --- rendering -----------------------------------------------------------------------
    @abc.abstractmethod
    def grid_shape(self, puzzle) -> tuple[int, int]:
        """(R, C) of the rendered label grid."""
        ...

    @abc.abstractmethod
    def action_states(self, puzzle, solution=None) -> np.ndarray:
        """int8 [A + 1, R, C]: the label grid after 0, 1, ..., A actions (solution None: solve it).
        The verifier's ground truth for every intermediate state."""
        ...

    def base_states(self, puzzle) -> np.ndarray:
        """int8 [R, C]: the puzzle's own label grid (frame 0). Tasks override this to skip the
        solve that this default spends on action_states."""
        return self.action_states(puzzle)[0]

    def frame_states(self, puzzle, solution=None, num_frames: int = 81) -> np.ndarray:
        """int8 [F, R, C] label grids following the frame policy (action_frame_indices)."""
        states = self.action_states(puzzle, solution)
        return np.ascontiguousarray(states[action_frame_indices(len(states) - 1, num_frames)])

    @abc.abstractmethod
    def _base_palette(self, puzzle=None) -> np.ndarray:
        """uint8 [K, 3]: the palette of the "classic" theme."""
        ...

    def palette(self, theme: int | str = 0, puzzle=None) -> np.ndarray:
        """uint8 [K, 3], K = len(label_names): the base palette under the theme (see themes.py)."""
        from vrlvr.tasks.themes import apply_theme

        return apply_theme(self._base_palette(puzzle), theme)

    def decorations(self, puzzle) -> np.ndarray | None:
        """bool [R, C] cells that get a ring (outside the parsed centre patch), or None."""
        return None

    def ring_colour(self, theme: int | str = 0) -> np.ndarray | None:
        """uint8 [3] colour of decoration rings, or None."""
        return None

    def layout(self, puzzle, height: int, width: int) -> Layout:
        return fit_layout(self.grid_shape(puzzle), height, width)

    def render_layout(
        self, puzzle, height: int | None = None, width: int | None = None, cell_px: int | None = None
    ) -> Layout:
        """The Layout render uses for these arguments: cell_px gives a frame that is exactly the grid
        at cell_px pixels per cell; otherwise height and width are both required."""
        R, C = self.grid_shape(puzzle)
        if cell_px is not None:
            if height is not None or width is not None:
                raise ValueError("give either cell_px or height and width, not both")
            if int(cell_px) < 1:
                raise ValueError(f"cell_px must be >= 1, got {cell_px}")
            return fit_layout((R, C), R * int(cell_px), C * int(cell_px))
        if height is None or width is None:
            raise ValueError("render needs height and width (e.g. 480 and 832) or cell_px (e.g. 4)")
        return self.layout(puzzle, int(height), int(width))

    def render(
        self,
        puzzle,
        solution=None,
        num_frames: int = 81,
        height: int | None = None,
        width: int | None = None,
        theme: int | str = 0,
        cell_px: int | None = None,
    ) -> np.ndarray:
        """uint8 [F, H, W, 3]. Give height and width (e.g. Wan's 480 x 832), or cell_px for a frame
        that is exactly the grid at cell_px pixels per cell (e.g. 4 px: a 7x7 maze at 28x28)."""
        layout = self.render_layout(puzzle, height, width, cell_px)
        return self.paint(puzzle, self.frame_states(puzzle, solution, num_frames), layout, theme)

    def paint(self, puzzle, states: np.ndarray, layout: Layout, theme: int | str = 0) -> np.ndarray:
        """Label grids [F, R, C] of this puzzle -> frames, with the theme's palette, background and
        decorations (what render does after frame_states)."""
        pal = self.palette(theme, puzzle)
        return paint_grids(
            states,
            layout,
            pal,
            background=pal[self.background_label],
            decorations=self.decorations(puzzle),
            ring_colour=self.ring_colour(theme),
        )

    # --- verification (vrlvr.verify builds these) ----------------------------------------
    def verify_video(self, puzzle, frames, **kwargs) -> Verdict:
        # verification hook (issue 4): pixels -> label grids -> this task's rules, in vrlvr.verify
        # (keyword arguments: theme, bbox, config, patch, max_dist, backend; see verify_video there)
        from vrlvr.verify import verify_video

        return verify_video(self, puzzle, frames, **kwargs)
