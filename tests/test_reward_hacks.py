"""The adversarial suite: what a policy under RL would try, painted at the pixel level and verified
through ``verify_video`` (parser included), per task and several sizes.

For the default reward presets, on every case:
- the honest solution video scores 1 with success; holding the puzzle still scores about 0;
- every hack earns no success and less than the honest video that stops half-way;
- honest progress is monotone: each further correct action earns more.
The paper presets are kept for reproducibility; a few asserts document what they pay for hacks.
"""

import numpy as np
import pytest

from vrlvr import tasks, verify
from vrlvr.tasks.base import action_frame_indices
from vrlvr.tasks.maze import OPEN, PATH
from vrlvr.verify.baselines import BASELINES, baseline_states

F = 17  # frames per video (the Sokoban dilution video has 17)
CELL = 6  # pixels per cell
CASES = [("maze", 7), ("maze", 11), ("maze", 21)]
CASES += [("flowfree", 5), ("flowfree", 6), ("flowfree", 8)]
CASES += [("sokoban", 6), ("sokoban", 8), ("sokoban", 10)]
SEEDS = (0, 1)


def _paint(task, puzzle, states):
    layout = task.render_layout(puzzle, cell_px=CELL)
    return task.paint(puzzle, np.asarray(states, np.int8), layout, 0)


def _prefix(task, puzzle, k):
    """int8 [F, R, C]: the honest video that makes the first k actions, then holds."""
    st = task.action_states(puzzle)[: k + 1]
    return st[action_frame_indices(len(st) - 1, F)]


def _noise(task, puzzle, n_noise, seed=0):
    """The puzzle, n_noise frames of uniform pixel noise, then the solved state held."""
    full = task.render(puzzle, num_frames=F, cell_px=CELL)
    vid = np.repeat(full[-1:], F, axis=0)
    vid[0] = full[0]
    rng = np.random.default_rng(seed)
    vid[1 : 1 + n_noise] = rng.integers(0, 256, vid[1 : 1 + n_noise].shape, dtype=np.uint8)
    return vid


def _hacks(task, puzzle, A):
    """name -> video uint8 [F, H, W, 3]: every cheap or exploiting strategy we know of."""
    init = np.asarray(task.base_states(puzzle), np.int8)
    full = _prefix(task, puzzle, A)
    half = _prefix(task, puzzle, A // 2)
    out = {
        name: _paint(task, puzzle, baseline_states(task, puzzle, name, F)) for name in BASELINES[task.name]
    }
    out["noise_between"] = _noise(task, puzzle, F - 2)  # unreadable frames, then the solution
    out["noise_3_frames"] = _noise(task, puzzle, 3)
    if task.name == "maze":
        st = full.copy()
        st[-3:, puzzle.start[0], puzzle.start[1]] = PATH
        st[-3:, puzzle.goal[0], puzzle.goal[1]] = PATH
        out["path_over_markers"] = _paint(task, puzzle, st)
        st = full.copy()
        st[-3:, puzzle.goal[0], puzzle.goal[1]] = PATH
        out["path_over_goal"] = _paint(task, puzzle, st)
        st = np.repeat(init[None], F, 0)  # an L-shaped line from S to G straight through walls
        (r0, c0), (r1, c1) = puzzle.start, puzzle.goal
        line = [(r, c0) for r in range(min(r0, r1), max(r0, r1) + 1)]
        line += [(r1, c) for c in range(min(c0, c1), max(c0, c1) + 1)]
        for cell in line:
            if cell not in (puzzle.start, puzzle.goal):
                st[1:, cell[0], cell[1]] = PATH
        out["through_walls"] = _paint(task, puzzle, st)
        st = half.copy()
        st[-3:][:, init == OPEN] = PATH
        out["half_then_flood"] = _paint(task, puzzle, st)
        st = np.repeat(init[None], F, 0)  # S, G and every corridor painted in the start colour
        st[1:][:, init == OPEN] = init[puzzle.start]
        out["flood_in_start_colour"] = _paint(task, puzzle, st)
    elif task.name == "flowfree":
        colours = np.unique(init[init > 0])
        st = np.repeat(init[None], F, 0)
        st[1:][:, init == 0] = np.random.default_rng(1).choice(colours, size=int((init == 0).sum()))
        out["random_colours"] = _paint(task, puzzle, st)
        st = full.copy()
        end = np.argwhere(init > 0)[0]
        st[-3:, end[0], end[1]] = 0
        out["solution_endpoint_erased"] = _paint(task, puzzle, st)
        first = colours.min()
        st = full.copy()  # the first colour done honestly, then flooding the rest of the board
        st[-3:][:, (init == 0) & (full[-1] != first)] = first
        out["one_colour_then_flood"] = _paint(task, puzzle, st)
    else:
        tele = baseline_states(task, puzzle, "teleport", F)
        st = half.copy()
        st[-3:] = tele[-1]
        out["half_then_boxes_jump"] = _paint(task, puzzle, st)
        st = half.copy()
        st[-3:] = full[-1]
        out["half_then_solved_jump"] = _paint(task, puzzle, st)
        st = full.copy()  # solve, then jump back to the puzzle: the furthest state must not pay
        st[-1] = init
        out["solve_then_revert_last_frame"] = _paint(task, puzzle, st)
        st = full.copy()
        st[-3:] = init
        out["solve_then_revert"] = _paint(task, puzzle, st)
    if task.name == "maze":
        st = full.copy()  # solve, then erase the path in the last frames
        st[-2:] = init
        out["solve_then_erase"] = _paint(task, puzzle, st)
    return out


@pytest.fixture(scope="module", params=[(n, s, seed) for n, s in CASES for seed in SEEDS], ids=str)
def case(request):
    name, size, seed = request.param
    task = tasks.get(name)
    puzzle = task.generate(seed, size)
    A = len(task.solution_actions(puzzle))
    honest = verify.verify_video(task, puzzle, _paint(task, puzzle, _prefix(task, puzzle, A)), theme=0)
    half = verify.verify_video(task, puzzle, _paint(task, puzzle, _prefix(task, puzzle, A // 2)), theme=0)
    return task, puzzle, A, honest, half


def test_honest_solution_scores_one_and_doing_nothing_zero(case):
    task, puzzle, A, honest, half = case
    assert honest.success and honest.reward == pytest.approx(1.0), honest.reason
    assert not half.success and 0.15 < half.reward < 1.0
    still = verify.verify_video(task, puzzle, _paint(task, puzzle, _prefix(task, puzzle, 0)), theme=0)
    assert not still.success and still.reward <= 0.01


def test_every_hack_fails_and_earns_less_than_the_honest_half(case):
    task, puzzle, A, honest, half = case
    for name, video in _hacks(task, puzzle, A).items():
        v = verify.verify_video(task, puzzle, video, theme=0)
        assert not v.success, f"{task.name}: hack {name!r} succeeded"
        assert v.reward < half.reward, (
            f"{task.name}: hack {name!r} earned {v.reward:.3f} >= half {half.reward:.3f}"
        )


def test_honest_progress_is_monotone(case):
    task, puzzle, A, _, _ = case
    rewards = [
        verify.verify_video(task, puzzle, _paint(task, puzzle, _prefix(task, puzzle, k)), theme=0).reward
        for k in range(A + 1)
    ]
    assert all(b > a for a, b in zip(rewards, rewards[1:])), np.round(rewards, 3)
    assert rewards[0] <= 0.01 and rewards[-1] == pytest.approx(1.0)


def test_the_paper_presets_are_what_the_hacks_exploited():
    """The paper's rule sets stay reproducible (and so does what they paid for the hacks)."""
    maze = tasks.get("maze")
    p = maze.generate(0, 11)
    flood = _paint(maze, p, baseline_states(maze, p, "flood", F))
    paper = verify.verify_video(maze, p, flood, theme=0, config=verify.reward_config("maze", "paper"))
    assert paper.reward == 1.0 and paper.components["paper_success"] == 1.0
    assert verify.verify_video(maze, p, flood, theme=0).reward < 0.05

    flow = tasks.get("flowfree")
    p = flow.generate(0, 5)
    still = _paint(flow, p, baseline_states(flow, p, "still", F))
    assert (
        verify.verify_video(flow, p, still, theme=0, config=verify.reward_config("flowfree", "paper")).reward
        > 0.4
    )

    soko = tasks.get("sokoban")
    p = soko.generate(0, 8)
    dil = _paint(soko, p, baseline_states(soko, p, "dilution", F))
    assert (
        verify.verify_video(soko, p, dil, theme=0, config=verify.reward_config("sokoban", "paper")).reward
        > 0.9
    )
    assert verify.verify_video(soko, p, dil, theme=0).reward < 0.05


@pytest.mark.parametrize("name, size", [("maze", 9), ("flowfree", 6), ("sokoban", 7)])
def test_success_requires_readable_frames(name, size):
    task = tasks.get(name)
    p = task.generate(2, size)
    video = task.render(p, num_frames=F, cell_px=CELL).copy()
    assert verify.verify_video(task, p, video, theme=0).success
    one = video.copy()  # one blurred frame (grey noise) in the middle is tolerated
    rng = np.random.default_rng(0)
    one[8] = rng.integers(0, 256, one[8].shape, dtype=np.uint8)
    v1 = verify.verify_video(task, p, one, theme=0)
    assert v1.components["readable_frames"] < 1.0
    two = one.copy()  # two in a row are not
    two[9] = rng.integers(0, 256, two[9].shape, dtype=np.uint8)
    v2 = verify.verify_video(task, p, two, theme=0)
    assert not v2.success and "unreadable" in v2.reason
    assert v2.reward < v1.reward <= 1.0


def test_unknown_label_is_on_by_default():
    maze = tasks.get("maze")
    p = maze.generate(0, 7)
    frames = maze.render(p, num_frames=2, cell_px=CELL).copy()
    frames[1] = 128  # grey: far from every maze colour
    labels, _ = verify.parse_frames(frames, p.shape, maze.palette(0))
    assert (labels[0] >= 0).all() and (labels[1] == -1).all()
    labels, _ = verify.parse_frames(frames, p.shape, maze.palette(0), max_dist=None)
    assert (labels[1] >= 0).all()


def test_reward_config_presets_and_errors():
    cfg = verify.reward_config("maze", "paper", wall_cost=0.25)
    assert cfg.preset == "paper" and cfg.precision_exponent == 0.0 and cfg.wall_cost == 0.25
    assert verify.reward_config(tasks.get("sokoban")) == verify.SokobanRewardConfig()
    assert verify.FlowFreeRewardConfig.from_preset("paper").preset == "paper"
    with pytest.raises(ValueError, match="unknown reward preset"):
        verify.reward_config("maze", "strict")
    with pytest.raises(ValueError, match="no field"):
        verify.reward_config("flowfree", colour_weight=1.0)
    with pytest.raises(ValueError, match="unknown maze reward preset"):
        verify.MazeRewardConfig(preset="nope")


def test_baseline_states_reject_bad_input():
    maze = tasks.get("maze")
    p = maze.generate(0, 7)
    with pytest.raises(ValueError, match="unknown maze baseline"):
        baseline_states(maze, p, "teleport", F)
    with pytest.raises(ValueError, match="at least 2 frames"):
        baseline_states(maze, p, "flood", 1)
    st = baseline_states(maze, p, "flood", 5)
    assert st.shape == (5, 7, 7) and (st[0] == maze.base_states(p)).all() and (st[1:] != OPEN).all()


def _flowfree_shortest_paths(task, puzzle):
    """int8 [F, R, C]: each colour in turn joined by a BFS shortest path through empty cells (no
    search over the whole board, cells left empty): the video a policy could learn without solving."""
    from collections import deque

    init = np.asarray(task.base_states(puzzle), np.int8)
    grid = init.copy()
    R, C = grid.shape
    for colour in np.unique(init[init > 0]):
        a, b = (tuple(int(v) for v in p) for p in np.argwhere(init == colour))
        parent = {a: None}
        queue = deque([a])
        while queue and b not in parent:
            r, c = queue.popleft()
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                nxt = (r + dr, c + dc)
                if 0 <= nxt[0] < R and 0 <= nxt[1] < C and nxt not in parent:
                    if grid[nxt] == 0 or nxt == b:
                        parent[nxt] = (r, c)
                        queue.append(nxt)
        cur = parent.get(b)
        while cur is not None and cur != a:
            grid[cur] = colour
            cur = parent[cur]
    out = np.repeat(init[None], F, axis=0)
    out[1:] = grid
    return out


@pytest.mark.parametrize("size, seed", [(5, 0), (8, 0), (8, 2)])
def test_flowfree_joining_colours_by_shortest_paths_is_not_a_solution(size, seed):
    """Every colour joined by a shortest path, the board left unfilled (these seeds): a valid path
    that is not the reference's earns only partial credit, so this earns less than the honest
    half-way video (before the fix it earned 0.74-0.88, no success)."""
    ff = tasks.get("flowfree")
    p = ff.generate(seed, size)
    A = len(ff.solution_actions(p))
    half = verify.verify_video(ff, p, _paint(ff, p, _prefix(ff, p, A // 2)), theme=0)
    st = _flowfree_shortest_paths(ff, p)
    v = verify.verify_video(ff, p, _paint(ff, p, st), theme=0)
    assert (st[-1] == 0).any() and not v.success
    assert v.reward < half.reward, (v.reward, half.reward)


def test_sokoban_boxes_vanishing_in_every_other_frame_cost_reward_and_success():
    """Frames the decoder cannot read (a box missing) are skipped by the legality check; they still
    cost readability, and half of the frames unreadable is no success."""
    soko = tasks.get("sokoban")
    p = soko.generate(3, 7)
    A = len(soko.solution_actions(p))
    st = _prefix(soko, p, A).copy()
    from vrlvr.tasks.sokoban import BOX, BOX_ON_GOAL, FLOOR, GOAL

    for f in range(1, F - 1, 2):
        st[f][st[f] == BOX] = FLOOR
        st[f][st[f] == BOX_ON_GOAL] = GOAL
    v = verify.verify_video(soko, p, _paint(soko, p, st), theme=0)
    assert not v.success and "unreadable" in v.reason
    assert v.reward < 0.95


def test_readability_helpers():
    from vrlvr.verify.window import frames_readable_enough, longest_run, readability, readability_term

    states = np.zeros((4, 2, 2), np.int8)
    states[1, 0, 0] = -1  # one unknown cell
    states[2] = 7  # a label the puzzle never shows
    cells, full = readability(states, allowed=[0])
    np.testing.assert_allclose(cells, [1.0, 0.75, 0.0, 1.0])
    assert full.tolist() == [True, False, False, True]
    assert readability_term(cells, 0.35) == pytest.approx(1 - 0.35 * 1.25)
    assert readability_term(np.zeros(5), 0.35) == 0.0
    assert longest_run(~full) == 2 and longest_run(np.zeros(3, bool)) == 0
    assert not frames_readable_enough(full, 0.5, 1) and frames_readable_enough(full, 0.5, 2)
