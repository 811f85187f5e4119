"""Videos -> verdicts: geometry and palette of a puzzle's video, one parse, the task's rules.

The geometry is the one vrlvr renders with: ``task.layout(puzzle, H, W)`` for a video of H x W
frames (``Task.render(..., height, width)`` and ``cell_px`` renders both use it). A video drawn
some other way needs an explicit ``bbox`` (top, left, height, width of the grid in pixels). The
palette is the task's for the given theme; ``theme=None`` (the default) picks the theme whose
palette fits the first frame best (lowest mean colour distance; the first frame is the puzzle, the
conditioning image of a rollout). Pass the theme when it is known.

``verify_batch`` is the training form: all videos that share a geometry (grid shape, frame size,
bbox) are parsed by ONE native call (videos as a list of views: nothing is stacked or copied; one
palette per video), then each video's label grids go through its puzzle's rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vrlvr.tasks.base import Verdict
from vrlvr.verify.flowfree import FlowFreeRewardConfig, check_flowfree
from vrlvr.verify.maze import MazeRewardConfig, check_maze
from vrlvr.verify.parse import DEFAULT_MAX_DIST, as_frames_array, parse_frames
from vrlvr.verify.sokoban import SokobanRewardConfig, check_sokoban
from vrlvr.verify.truth import truth_for

__all__ = [
    "RULES",
    "PRESETS",
    "reward_config",
    "verify_states",
    "verify_video",
    "verify_batch",
    "detect_theme",
    "video_geometry",
]


@dataclass(frozen=True)
class Rules:
    check: Callable[..., Verdict]  # (states int8 [F, R, C], truth, config) -> Verdict
    config: type


RULES: dict[str, Rules] = {
    "maze": Rules(check_maze, MazeRewardConfig),
    "flowfree": Rules(check_flowfree, FlowFreeRewardConfig),
    "sokoban": Rules(check_sokoban, SokobanRewardConfig),
}


PRESETS = ("default", "paper")


def reward_config(task, preset: str = "default", **overrides: Any):
    """The reward config of ``task`` (a Task or its name) under a preset, with fields overridden.

    ``preset``: "default" (the rewards RL trains on: no credit for hacks, monotone honest
    progress) or "paper" (the VideoRLVR paper's decomposition and weights). ``overrides``: any field
    of the task's config class (MazeRewardConfig, FlowFreeRewardConfig, SokobanRewardConfig), e.g.
    ``reward_config("maze", "paper", precision_exponent=3.0)``."""
    task = _task(task)
    rules = _rules(task)
    if preset not in PRESETS:
        raise ValueError(f"unknown reward preset {preset!r}; choose from {list(PRESETS)}")
    fields = set(rules.config.__dataclass_fields__) - {"preset"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{rules.config.__name__} has no field(s) {unknown}; known: {sorted(fields)}")
    return rules.config.from_preset(preset, **overrides)


def _task(task):
    if isinstance(task, str):
        from vrlvr import tasks

        return tasks.get(task)
    return task


def _puzzle(task, puzzle):
    return task.from_text(puzzle) if isinstance(puzzle, str) else puzzle


def _rules(task) -> Rules:
    try:
        return RULES[task.name]
    except KeyError:
        raise ValueError(f"no verification rules for task {task.name!r}; known: {sorted(RULES)}") from None


def verify_states(task, puzzle, states: np.ndarray, config: Any = None) -> Verdict:
    """Label grids int8 [F, R, C] (already parsed) -> Verdict under the task's rules."""
    task = _task(task)
    puzzle = _puzzle(task, puzzle)
    rules = _rules(task)
    if config is not None and not isinstance(config, rules.config):
        raise ValueError(f"{task.name} config must be a {rules.config.__name__}, got {type(config).__name__}")
    states = np.asarray(states)
    if states.ndim != 3 or len(states) == 0:
        raise ValueError(f"states must be int8 [F, R, C] with F >= 1, got shape {states.shape}")
    return rules.check(states.astype(np.int8, copy=False), truth_for(task, puzzle), config)


def video_geometry(task, puzzle, height: int, width: int, bbox=None) -> tuple[tuple[int, int], tuple]:
    """(grid_shape, bbox) of a puzzle's H x W video: the task's layout unless bbox is given."""
    grid_shape = tuple(int(v) for v in task.grid_shape(puzzle))
    if bbox is None:
        bbox = task.layout(puzzle, int(height), int(width)).bbox
    return grid_shape, tuple(float(v) for v in bbox)


def _theme_names() -> list[str]:
    from vrlvr.tasks.themes import THEMES

    return list(THEMES)


def detect_theme(task, puzzle, frames, bbox=None, backend: str | None = None) -> int:
    """Index of the theme whose palette fits the video's first frame best (lowest mean distance)."""
    task = _task(task)
    puzzle = _puzzle(task, puzzle)
    arr = as_frames_array(frames)
    if isinstance(arr, list) or arr.ndim != 4:
        raise ValueError("detect_theme takes one video [F, H, W, 3]")
    grid_shape, box = video_geometry(task, puzzle, arr.shape[1], arr.shape[2], bbox)
    return _detect_themes(task, [puzzle], [arr], grid_shape, box, backend)[0]


def _detect_themes(task, puzzles, views, grid_shape, box, backend) -> list[int]:
    """Best-fitting theme of each video (same geometry): one parse of all first frames per theme."""
    firsts = [v[:1] for v in views]  # views [1, H, W, 3]
    scores = []
    for t in range(len(_theme_names())):
        pals = np.stack([task.palette(t, p) for p in puzzles])  # [n, K, 3]
        _, dist = parse_frames(firsts, grid_shape, pals, bbox=box, backend=backend)  # [n, 1, R, C]
        scores.append(dist.reshape(len(views), -1).mean(axis=1))
    return [int(i) for i in np.argmin(np.stack(scores), axis=0)]


def verify_video(
    task,
    puzzle,
    frames,
    *,
    theme: int | str | None = None,
    bbox: Sequence[float] | None = None,
    config: Any = None,
    patch: float = 0.5,
    max_dist: float | None = DEFAULT_MAX_DIST,
    backend: str | None = None,
) -> Verdict:
    """One video uint8 [F, H, W, 3] of ``puzzle`` -> Verdict (pixels -> label grids -> rules).

    task: a Task or its name. puzzle: a puzzle object or its text.
    theme: the palette's theme, index or name; None (the default): the theme whose palette fits the
        first frame best.
    bbox: the grid's (top, left, height, width) in pixels; default: the task's layout for the frame
        size.
    config: the task's reward config (MazeRewardConfig, FlowFreeRewardConfig, SokobanRewardConfig).
    patch, max_dist, backend: passed to parse_frames (max_dist: cells farther than this from every
        palette colour read as unknown; None turns that off).
    """
    return verify_batch(
        task,
        [puzzle],
        [frames],
        themes=[theme],
        bboxes=[bbox],
        config=config,
        patch=patch,
        max_dist=max_dist,
        backend=backend,
    )[0]


def verify_batch(
    task,
    puzzles: Sequence[Any],
    videos,
    *,
    themes: Sequence[int | str | None] | int | str | None = None,
    bboxes: Sequence[Sequence[float] | None] | None = None,
    config: Any = None,
    patch: float = 0.5,
    max_dist: float | None = DEFAULT_MAX_DIST,
    backend: str | None = None,
) -> list[Verdict]:
    """Verify N videos of N puzzles (e.g. a GRPO group: B puzzles x G rollouts, puzzles repeated).

    videos: uint8 [N, F, H, W, 3] (numpy or torch CPU) or a list of N videos [F_i, H_i, W_i, 3].
    Videos sharing (frame count, frame size, grid shape, bbox) are parsed by one native call.
    themes: one theme for all, or one per video (None, the default: detect each from its first
    frame, one parse per theme for the whole group). Returns N verdicts, in order.
    """
    task = _task(task)
    rules = _rules(task)
    if config is not None and not isinstance(config, rules.config):
        raise ValueError(f"{task.name} config must be a {rules.config.__name__}, got {type(config).__name__}")
    parsed: dict[str, Any] = {}  # a GRPO group repeats each puzzle text G times: parse it once
    for p in puzzles:
        if isinstance(p, str) and p not in parsed:
            parsed[p] = task.from_text(p)
    puzzles = [parsed[p] if isinstance(p, str) else p for p in puzzles]
    if isinstance(videos, (list, tuple)):
        views = [as_frames_array(v) for v in videos]
        for i, v in enumerate(views):
            if isinstance(v, list) or v.ndim != 4:
                raise ValueError(f"videos[{i}] must be one video [F, H, W, 3], got shape {np.shape(v)}")
    else:
        arr = as_frames_array(videos)
        if isinstance(arr, list) or arr.ndim != 5:
            raise ValueError(f"videos must be [N, F, H, W, 3] or a list of [F, H, W, 3], got {arr.shape}")
        views = list(arr)  # views, no copy
    N = len(views)
    if len(puzzles) != N:
        raise ValueError(f"got {len(puzzles)} puzzles for {N} videos; give one puzzle per video")
    if N == 0:
        return []
    theme_list = list(themes) if isinstance(themes, (list, tuple)) else [themes] * N
    bbox_list = list(bboxes) if bboxes is not None else [None] * N
    if len(theme_list) != N or len(bbox_list) != N:
        raise ValueError(f"themes and bboxes must have one entry per video ({N})")

    # group by geometry: (F, H, W, grid_shape, bbox) -> video indices
    groups: dict[tuple, list[int]] = {}
    for i, (v, p) in enumerate(zip(views, puzzles)):
        grid_shape, box = video_geometry(task, p, v.shape[1], v.shape[2], bbox_list[i])
        groups.setdefault((v.shape[0], v.shape[1], v.shape[2], grid_shape, box), []).append(i)

    verdicts: list[Verdict | None] = [None] * N
    for (_, _, _, grid_shape, box), idx in groups.items():
        group_views = [views[i] for i in idx]
        auto = [i for i in idx if theme_list[i] is None]
        if auto:
            found = _detect_themes(
                task, [puzzles[i] for i in auto], [views[i] for i in auto], grid_shape, box, backend
            )
            for i, t in zip(auto, found):
                theme_list[i] = t
        palettes = [task.palette(theme_list[i], puzzles[i]) for i in idx]
        if len({p.shape for p in palettes}) != 1:
            raise ValueError(
                f"{task.name}: palettes of one group differ in size {[p.shape for p in palettes]}"
            )
        labels, dist = parse_frames(
            group_views,
            grid_shape,
            np.stack(palettes),
            bbox=box,
            patch=patch,
            max_dist=max_dist,
            backend=backend,
        )  # int8 / float32 [n, F, R, C]
        for j, i in enumerate(idx):
            verdict = rules.check(labels[j], truth_for(task, puzzles[i]), config)
            verdict.components["mean_colour_distance"] = float(dist[j].mean())
            verdicts[i] = verdict
    return verdicts  # type: ignore[return-value]
