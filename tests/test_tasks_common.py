"""Shared task machinery: registry, themes, frame policy, painting and rendering geometry."""

import textwrap

import numpy as np
import pytest

from vrlvr import tasks
from vrlvr.tasks.base import Layout, action_frame_indices, fit_layout, paint_grids
from vrlvr.tasks.themes import MIN_PALETTE_DISTANCE, THEMES, apply_theme, min_pairwise_distance, theme_index

SIZES = {"maze": 9, "flowfree": 6, "sokoban": 7}


@pytest.fixture(scope="module", params=sorted(SIZES))
def task_case(request):
    task = tasks.get(request.param)
    puzzle, solution = task.generate_with_solution(3, SIZES[request.param])
    return task, puzzle, solution


def test_builtin_tasks_and_labels():
    assert tasks.get("maze").label_names == ("open", "wall", "start", "goal", "path")
    assert tasks.get("sokoban").label_names == (
        "floor",
        "wall",
        "goal",
        "box",
        "box_on_goal",
        "player",
        "player_on_goal",
    )
    ff = tasks.get("flowfree")
    assert ff.label_names[0] == "empty" and len(ff.label_names) == 13
    assert tasks.get("maze") is tasks.get("maze")
    assert {"maze", "flowfree", "sokoban"} <= set(tasks.available())


def test_user_task_by_dotted_path(tmp_path, monkeypatch):
    (tmp_path / "my_user_tasks.py").write_text(
        textwrap.dedent("""
        from vrlvr.tasks.maze import MazeTask

        class TinyMaze(MazeTask):
            name = "tinymaze"
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    t1 = tasks.get("my_user_tasks:TinyMaze")
    t2 = tasks.get("my_user_tasks.TinyMaze")
    assert t1.name == t2.name == "tinymaze"
    tasks.register("tiny-by-path", "my_user_tasks:TinyMaze")
    assert tasks.get("tiny-by-path").name == "tinymaze"
    with pytest.raises(ValueError, match="already registered"):
        tasks.register("maze", t1)
    with pytest.raises(ValueError, match="no attribute"):
        tasks.get("my_user_tasks:Missing")
    with pytest.raises(ValueError, match="cannot import"):
        tasks.get("no_such_module_xyz:Task")
    with pytest.raises(ValueError, match="unknown task"):
        tasks.get("mazee")
    with pytest.raises(ValueError, match="is not a task"):
        tasks.register("not-a-task", object())


def test_themes_are_distinct_and_far_apart():
    assert len(THEMES) >= 4
    for name in ("maze", "flowfree", "sokoban"):
        task = tasks.get(name)
        palettes = [task.palette(t) for t in range(len(THEMES))]
        for pal in palettes:
            assert pal.dtype == np.uint8 and pal.shape == (len(task.label_names), 3)
            assert min_pairwise_distance(pal) >= MIN_PALETTE_DISTANCE
        # themes really change colours: no two themes share a palette
        flat = {p.tobytes() for p in palettes}
        assert len(flat) == len(palettes)
    assert min_pairwise_distance(tasks.get("flowfree").palette(0)) >= 127
    assert theme_index("inverted") == 3 and theme_index("2") == 2
    with pytest.raises(ValueError):
        theme_index(99)
    with pytest.raises(ValueError):
        theme_index("sepia")
    base = np.array([[10, 20, 30]], np.uint8)
    assert apply_theme(base, "inverted").tolist() == [[245, 235, 225]]


def test_action_frame_indices_policy():
    idx = action_frame_indices(5, 9)
    assert idx.tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 5]
    idx = action_frame_indices(160, 81)
    assert idx[0] == 0 and idx[-1] == 160 and np.all(np.diff(idx) == 2)
    assert action_frame_indices(0, 4).tolist() == [0, 0, 0, 0]


def _reference_paint(states, layout, palette, bg):
    F = states.shape[0]
    out = np.empty((F, layout.height, layout.width, 3), np.uint8)
    out[:] = bg
    R, C = layout.grid_shape
    for f in range(F):
        for r in range(R):
            for c in range(C):
                y0, y1, x0, x1 = layout.cell_bounds(r, c)
                out[f, y0:y1, x0:x1] = palette[states[f, r, c]]
    return out


@pytest.mark.parametrize("hw", [(37, 53), (480, 832), (5, 7)])
def test_paint_grids_matches_cell_bounds(hw):
    rng = np.random.default_rng(0)
    states = rng.integers(0, 4, size=(6, 5, 7)).astype(np.int8)
    states[2] = states[1]  # held frame
    states[3] = states[2]
    states[3, 1, 1] = (states[2, 1, 1] + 1) % 4  # one changed cell
    palette = rng.integers(0, 256, size=(4, 3)).astype(np.uint8)
    layout = fit_layout((5, 7), *hw)
    bg = np.array([1, 2, 3], np.uint8)
    got = paint_grids(states, layout, palette, background=bg)
    assert np.array_equal(got, _reference_paint(states, layout, palette, bg))


def test_render_shapes(task_case):
    task, puzzle, solution = task_case
    R, C = task.grid_shape(puzzle)
    assert task.render(puzzle, solution, num_frames=81, cell_px=4).shape == (81, 4 * R, 4 * C, 3)
    frames = task.render(puzzle, solution, num_frames=9, height=480, width=832)
    assert frames.shape == (9, 480, 832, 3) and frames.dtype == np.uint8
    st = task.frame_states(puzzle, solution, num_frames=81)
    assert st.dtype == np.int8 and st.shape == (81, R, C)
    with pytest.raises(ValueError):
        task.render(puzzle, solution, height=480)
    with pytest.raises(ValueError):
        task.render(puzzle, solution, cell_px=4, height=480, width=832)


@pytest.mark.parametrize("theme", [0, 3, "inverted-gbr"])
def test_cell_centres_have_label_colours(task_case, theme):
    task, puzzle, solution = task_case
    st = task.frame_states(puzzle, solution, num_frames=12)
    pal = task.palette(theme, puzzle)
    for kwargs in ({"height": 480, "width": 832}, {"cell_px": 4}, {"height": 97, "width": 131}):
        frames = task.render(puzzle, solution, num_frames=12, theme=theme, **kwargs)
        layout = task.render_layout(puzzle, **kwargs)
        R, C = layout.grid_shape
        for f in (0, 5, 11):
            for r in range(R):
                for c in range(C):
                    y0, y1, x0, x1 = layout.cell_bounds(r, c)
                    centre = frames[f, (y0 + y1) // 2, (x0 + x1) // 2]
                    assert centre.tolist() == pal[st[f, r, c]].tolist(), (f, r, c)


def test_first_and_last_frames(task_case):
    task, puzzle, solution = task_case
    st = task.frame_states(puzzle, solution, num_frames=81)
    acts = task.action_states(puzzle, solution)
    assert np.array_equal(st[0], acts[0]) and np.array_equal(st[-1], acts[-1])
    assert np.array_equal(task.base_states(puzzle), acts[0])  # frame 0 without solving
    assert len(acts) == len(task.solution_actions(puzzle, solution)) + 1
    # one action per transition: consecutive action states differ (sokoban: player moves every step)
    for a, b in zip(acts[:-1], acts[1:]):
        assert not np.array_equal(a, b)
    # solution None -> solved internally, same states when the solution is unique (maze, sokoban)
    if task.name != "flowfree":
        assert np.array_equal(task.frame_states(puzzle, None, 81), st)


def test_canonical_key(task_case):
    task, puzzle, _ = task_case
    key = task.canonical_key(puzzle)
    assert key == task.canonical_key(task.from_text(puzzle.to_text()))
    assert key == task.canonical_key(puzzle.to_text())
    other = task.generate(4, SIZES[task.name])
    assert key != task.canonical_key(other)


def test_layout_to_dict():
    lay = fit_layout((7, 7), 480, 832)
    assert isinstance(lay, Layout)
    d = lay.to_dict()
    assert d["grid_shape"] == [7, 7] and d["height"] == 480 and d["bbox"][2] == 7 * 68


@pytest.mark.slow
@pytest.mark.parametrize("name", ["maze", "flowfree", "sokoban"])
def test_many_generated_puzzles_are_valid(name):
    task = tasks.get(name)
    for size in task.default_sizes:
        for seed in range(60):
            puzzle, solution = task.generate_with_solution(seed, size)
            assert task.check_solution(puzzle, solution).success, (size, seed)
            parsed = task.from_text(puzzle.to_text())
            assert parsed == puzzle
            solved = task.solve(parsed)
            assert solved is not None and task.check_solution(parsed, solved).success
            states = task.frame_states(puzzle, solution, num_frames=81)
            assert states.shape[0] == 81 and states.min() >= 0 and states.max() < len(task.label_names)


def test_incomplete_user_task_fails_at_construction_naming_what_is_missing():
    from vrlvr.tasks.base import Task

    class HalfTask(Task):
        name = "half"

        def generate(self, seed, size, **difficulty):
            return None

    with pytest.raises(TypeError, match="abstract method.*solve"):
        HalfTask()


@pytest.mark.parametrize("name", ["maze", "flowfree", "sokoban"])
def test_base_states_equal_the_first_action_state(name):
    from vrlvr.tasks.base import Task

    task = tasks.get(name)
    puzzle = task.generate(seed=5, size=task.default_sizes[0])
    # the task's own (solve-free) frame 0 and the base class's default agree
    np.testing.assert_array_equal(task.base_states(puzzle), Task.base_states(task, puzzle))
