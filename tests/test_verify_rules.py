"""The rule checkers on label grids (no pixels): success, reward components, hacks that must not
pay, flicker, bridging, precision / recall."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrlvr import tasks
from vrlvr.tasks.base import action_frame_indices
from vrlvr.verify import (
    FlowFreeRewardConfig,
    MazeRewardConfig,
    SokobanRewardConfig,
    truth_for,
    verify_states,
)
from vrlvr.verify.grid import components, majority_state, neighbour_counts, prf
from vrlvr.verify.window import final_window


def _frames(task, puzzle, num_frames=33):
    return task.frame_states(puzzle, None, num_frames)  # int8 [F, R, C]


# --- helpers -----------------------------------------------------------------------------------


def test_components_and_neighbour_counts():
    mask = np.array([[1, 1, 0, 1], [0, 1, 0, 1], [1, 0, 0, 0]], bool)
    comp = components(mask)
    assert comp.max() == 3
    assert comp[0, 0] == comp[1, 1] != comp[0, 3] and comp[2, 0] not in (0, comp[0, 0], comp[0, 3])
    assert np.all(comp[~mask] == 0)
    deg = neighbour_counts(mask)
    assert deg[0, 1] == 2 and deg[0, 0] == 1 and deg[2, 0] == 0 and deg[1, 0] == 3


def test_majority_state_outvotes_one_frame_flicker_ties_go_to_latest():
    s = np.zeros((4, 1, 3), np.int8)
    s[-1, 0, 0] = 5  # flicker in the last frame
    s[-2, 0, 1] = 6  # flicker one frame earlier
    s[-1, 0, 2] = 7
    s[-2, 0, 2] = 7  # a real change two frames ago
    np.testing.assert_array_equal(majority_state(s, 3), [[0, 0, 7]])
    np.testing.assert_array_equal(majority_state(s, 1), s[-1])
    np.testing.assert_array_equal(majority_state(s, 2), s[-1])  # ties: most recent


def test_final_window_follows_the_frame_policy():
    assert final_window(33, 10, 3) == 3
    assert final_window(33, 31, 3) == 2  # finished state shown in frames 31 and 32 only
    assert final_window(33, 32, 3) == 1
    assert final_window(33, 90, 3) == 1  # actions outnumber frames: only the last frame
    assert final_window(1, 0, 3) == 1
    for A in (5, 31, 32, 40):  # the reference video holds its final state over the whole window
        idx = action_frame_indices(A, 33)
        assert np.all(idx[-final_window(33, A, 3) :] == A)


def test_prf_conventions():
    assert prf(0, 0, 0) == (1.0, 1.0, 1.0)
    assert prf(0, 0, 5) == (0.0, 0.0, 0.0)
    p, r, f = prf(3, 4, 6)
    assert (p, r) == (0.75, 0.5) and f == pytest.approx(0.6)


# --- maze -------------------------------------------------------------------------------------

MAZE = tasks.get("maze")


@pytest.fixture(scope="module")
def maze_puzzle():
    return MAZE.generate(seed=3, size=13)


def test_maze_solution_succeeds(maze_puzzle):
    v = verify_states(MAZE, maze_puzzle, _frames(MAZE, maze_puzzle))
    assert v.success and v.reward == 1.0 and (v.precision, v.recall, v.f1) == (1.0, 1.0, 1.0)
    assert v.components["paper_success"] == 1.0 and v.components["simple_path"] == 1.0


@pytest.mark.parametrize("algorithm, bound", [("kruskal", 0.3), ("backtracker", 0.75)])
def test_maze_painting_every_corridor_does_not_pay(algorithm, bound):
    puzzle = MAZE.generate(seed=7, size=13, algorithm=algorithm)
    states = _frames(MAZE, puzzle)
    flood = states[-1].copy()
    flood[flood == 0] = 4  # every open cell painted: S and G are joined, no wall touched
    v = verify_states(MAZE, puzzle, np.concatenate([states, flood[None].repeat(3, 0)]))
    assert not v.success
    assert v.components["paper_success"] == 1.0  # the paper's looser success is fooled ...
    assert v.components["connectivity"] == 1.0 and v.recall == 1.0
    assert v.precision < 1.0 and v.reward == pytest.approx(v.precision**3)  # ... our reward is not
    assert v.reward < bound
    linear = verify_states(MAZE, puzzle, flood[None], MazeRewardConfig(precision_exponent=1.0))
    assert linear.reward == pytest.approx(v.precision) and linear.reward > v.reward


def test_maze_wall_paint_and_shortcuts_fail(maze_puzzle):
    states = _frames(MAZE, maze_puzzle)
    final = states[-1].copy()
    wall = tuple(np.argwhere(final == 1)[5])
    final[wall] = 4
    v = verify_states(MAZE, maze_puzzle, final[None].repeat(3, 0))
    assert not v.success and v.components["no_wall_paint"] == 0.0 and v.components["paper_success"] == 0.0
    assert v.components["wall_term"] == pytest.approx(0.5) and v.reward < 0.5
    cfg = MazeRewardConfig(wall_cost=0.25)
    assert verify_states(MAZE, maze_puzzle, final[None].repeat(3, 0), cfg).components["wall_term"] == 0.75


def test_maze_partial_path_gets_partial_credit(maze_puzzle):
    truth = truth_for(MAZE, maze_puzzle)
    half = truth.states[len(truth.states) // 2]
    v = verify_states(MAZE, maze_puzzle, half[None].repeat(3, 0))
    assert not v.success and 0.0 < v.reward < 0.5
    assert v.precision == 1.0 and 0.3 < v.recall < 0.7
    v2 = verify_states(MAZE, maze_puzzle, half[None], MazeRewardConfig(partial_connectivity=1.0))
    assert v2.reward == pytest.approx(2 * v.reward)
    none = verify_states(MAZE, maze_puzzle, truth.states[:1].repeat(3, 0))
    assert none.reward == 0.0 and none.precision == 0.0


def test_maze_extra_branch_breaks_the_degree_rule(maze_puzzle):
    truth = truth_for(MAZE, maze_puzzle)
    final = truth.final.copy()
    path = final == 4
    deg_open = neighbour_counts(path | (final == 2) | (final == 3))
    # an open cell next to the path that is not on it: painting it adds a branch
    cand = np.argwhere((final == 0) & (deg_open >= 1))
    final[tuple(cand[0])] = 4
    v = verify_states(MAZE, maze_puzzle, final[None].repeat(3, 0))
    assert not v.success and v.components["connected"] == 1.0 and v.components["degree_rule"] == 0.0
    assert v.reward < 1.0


def test_maze_start_marker_change_fails(maze_puzzle):
    final = truth_for(MAZE, maze_puzzle).final.copy()
    final[final == 2] = 4
    v = verify_states(MAZE, maze_puzzle, final[None].repeat(3, 0))
    assert not v.success and v.components["markers_intact"] == 0.0


def test_maze_flicker_in_the_last_frame_is_outvoted(maze_puzzle):
    states = _frames(MAZE, maze_puzzle, 81)  # the solution holds over many final frames
    states[-1] = states[0]  # the whole last frame flickers back to the puzzle
    assert verify_states(MAZE, maze_puzzle, states).success


# --- flowfree ---------------------------------------------------------------------------------

FLOW = tasks.get("flowfree")


@pytest.fixture(scope="module")
def flow_puzzle():
    return FLOW.generate(seed=4, size=6)


def test_flowfree_solution_succeeds(flow_puzzle):
    v = verify_states(FLOW, flow_puzzle, _frames(FLOW, flow_puzzle, 40))
    assert v.success and v.reward == pytest.approx(1.0) and v.f1 == 1.0
    for key in ("path_validity", "endpoints", "connectivity", "fill"):
        assert v.components[key] == 1.0


def test_flowfree_components_and_weights(flow_puzzle):
    truth = truth_for(FLOW, flow_puzzle)
    paper = FlowFreeRewardConfig.from_preset("paper")
    still = verify_states(FLOW, flow_puzzle, truth.states[:1].repeat(3, 0), paper)
    n = still.components["colours"]
    assert not still.success
    assert still.components["endpoints"] == 1.0 and still.components["connectivity"] == 0.0
    # the paper's weights: only adjacent endpoints could be joined already; fill counts the endpoints
    assert still.reward == pytest.approx(0.35 + 0.20 * still.components["fill"])
    # the default preset pays nothing for doing nothing
    assert verify_states(FLOW, flow_puzzle, truth.states[:1].repeat(3, 0)).reward == 0.0
    cfg = FlowFreeRewardConfig.from_preset(
        "paper", path_validity=0.0, endpoints=1.0, connectivity=0.0, fill=0.0
    )
    assert verify_states(FLOW, flow_puzzle, truth.states[:1], cfg).reward == pytest.approx(1.0)
    # one colour's endpoint repainted with another colour
    final = truth.final.copy()
    end = tuple(np.argwhere(truth.initial == 1)[0])
    final[end] = 2
    v = verify_states(FLOW, flow_puzzle, final[None])
    assert not v.success and v.components["endpoints"] < 1.0 and v.components["connectivity"] <= (n - 1) / n


def test_flowfree_gap_and_blob_break_validity(flow_puzzle):
    truth = truth_for(FLOW, flow_puzzle)
    final = truth.final.copy()
    inner = np.argwhere(truth.initial == 0)
    final[tuple(inner[0])] = 0  # one empty cell: a colour breaks, fill drops
    v = verify_states(FLOW, flow_puzzle, final[None])
    assert not v.success and v.components["fill"] < 1.0 and v.components["connectivity"] < 1.0
    assert v.precision == 1.0 and v.recall < 1.0
    # stray colour the puzzle does not have
    final = truth.final.copy()
    final[tuple(inner[0])] = 12
    v = verify_states(FLOW, flow_puzzle, final[None])
    assert not v.success and v.components["stray_cells"] == 1.0


def test_flowfree_truth_is_not_shared_between_letter_permuted_puzzles(flow_puzzle):
    """Letters decide the colour labels: a puzzle with two letters swapped (same canonical key) has
    its own truth, so its own solution video verifies."""
    a, b = flow_puzzle.letters[:2]
    swapped = FLOW.from_text(flow_puzzle.to_text().translate(str.maketrans({a: b, b: a})))
    assert FLOW.canonical_key(swapped) == FLOW.canonical_key(flow_puzzle)
    truth_for(FLOW, flow_puzzle)  # cache the original's truth first
    assert not np.array_equal(truth_for(FLOW, swapped).initial, truth_for(FLOW, flow_puzzle).initial)
    v = verify_states(FLOW, swapped, _frames(FLOW, swapped, 40))
    assert v.success and v.f1 == 1.0, v.reason


# --- sokoban ----------------------------------------------------------------------------------

SOKO = tasks.get("sokoban")


@pytest.fixture(scope="module")
def soko_puzzle():
    return SOKO.generate(seed=5, size=8)


def test_sokoban_solution_succeeds(soko_puzzle):
    truth = truth_for(SOKO, soko_puzzle)
    v = verify_states(SOKO, soko_puzzle, _frames(SOKO, soko_puzzle, truth.num_actions + 10))
    assert v.success and v.reward == 1.0 and v.f1 == 1.0
    assert v.components["transitions"] == truth.num_actions


def test_sokoban_skipped_frames_are_bridged(soko_puzzle):
    truth = truth_for(SOKO, soko_puzzle)
    A = truth.num_actions
    F = A // 2 + 2  # actions outnumber transitions: ~2 moves per transition
    v = verify_states(SOKO, soko_puzzle, _frames(SOKO, soko_puzzle, F))
    assert v.success, v.reason
    assert v.f1 == 1.0  # bridged moves decode to the solution itself (shortest bridges)
    # unreadable frames (no player) are skipped and bridged too
    states = truth.states.copy()
    states[3][np.isin(states[3], (5, 6))] = 0
    v = verify_states(SOKO, soko_puzzle, states)
    assert v.success and v.components["readable_frames"] < 1.0


def test_sokoban_teleport_and_wall_change_are_illegal(soko_puzzle):
    truth = truth_for(SOKO, soko_puzzle)
    states = np.concatenate([truth.states[:2], truth.states[-1:].repeat(3, 0)])  # jump to the end
    paper = verify_states(SOKO, soko_puzzle, states, SokobanRewardConfig.from_preset("paper"))
    assert not paper.success and paper.components["illegal_transitions"] == 1.0
    # the paper's rule re-synchronises to the jumped-to state: solved, half the transitions legal
    assert paper.components["solved"] == 1.0 and paper.reward == pytest.approx(0.5 + 0.5 * 0.5)
    assert paper.components["decoded_moves"] == 2.0  # the first move, then "?" for the jump
    assert paper.precision == 0.5
    # the default keeps the legal lineage: one move of A made, the jump costs half
    v = verify_states(SOKO, soko_puzzle, states)
    assert not v.success and v.components["illegal_transitions"] == 1.0 and v.components["solved"] == 0.0
    assert v.reward == pytest.approx(0.5 / truth.num_actions)
    broken = truth.states.copy()
    broken[-1][tuple(np.argwhere(truth.initial == 1)[0])] = 0  # a wall vanishes in the last frame
    v = verify_states(SOKO, soko_puzzle, broken)
    assert not v.success and v.components["final_static_intact"] == 0.0


def test_sokoban_holding_still_earns_no_legality_credit(soko_puzzle):
    truth = truth_for(SOKO, soko_puzzle)
    v = verify_states(
        SOKO, soko_puzzle, truth.states[:1].repeat(10, 0), SokobanRewardConfig.from_preset("paper")
    )
    assert not v.success and v.components["legal_fraction"] == 0.0
    assert v.reward == pytest.approx(0.5 * v.components["boxes_on_goals"])
    assert verify_states(SOKO, soko_puzzle, truth.states[:1].repeat(10, 0)).reward == 0.0
    assert v.precision == 0.0


def test_sokoban_weights_and_alignment(soko_puzzle):
    truth = truth_for(SOKO, soko_puzzle)
    cfg = SokobanRewardConfig.from_preset("paper", boxes=1.0, legal=0.0)
    half = truth.states[: truth.num_actions // 2 + 1]
    v = verify_states(SOKO, soko_puzzle, half, cfg)
    assert v.reward == pytest.approx(v.components["boxes_on_goals"])
    # the default pays the reference progress: k of A moves made
    v = verify_states(SOKO, soko_puzzle, half)
    assert v.reward == pytest.approx((truth.num_actions // 2) / truth.num_actions)
    assert v.precision == 1.0 and v.recall == pytest.approx((truth.num_actions // 2) / truth.num_actions)


def test_verify_states_rejects_bad_shapes(maze_puzzle):
    with pytest.raises(ValueError, match="maze states must be"):
        verify_states(MAZE, maze_puzzle, np.zeros((3, 5, 5), np.int8))
    with pytest.raises(ValueError, match="F >= 1"):
        verify_states(MAZE, maze_puzzle, np.zeros((0, 13, 13), np.int8))
    with pytest.raises(ValueError, match="MazeRewardConfig"):
        verify_states(MAZE, maze_puzzle, _frames(MAZE, maze_puzzle), SokobanRewardConfig())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), name=st.sampled_from(["maze", "flowfree", "sokoban"]), frames=st.integers(1, 6))
def test_any_label_grids_give_a_bounded_verdict(data, name, frames):
    """Garbage label grids (any labels, unknowns included) never raise and give rewards in [0, 1]."""
    task = tasks.get(name)
    puzzle = {
        "maze": MAZE.generate(seed=1, size=7),
        "flowfree": FLOW.generate(seed=1, size=5),
        "sokoban": SOKO.generate(seed=1, size=6),
    }[name]
    truth = truth_for(task, puzzle)
    R, C = truth.initial.shape
    k = len(task.palette(0, puzzle))
    flat = data.draw(st.lists(st.integers(-1, k - 1), min_size=frames * R * C, max_size=frames * R * C))
    states = np.array(flat, np.int8).reshape(frames, R, C)
    if data.draw(st.booleans()):  # mostly-correct videos with a few corrupted cells
        states = truth.states[np.linspace(0, len(truth.states) - 1, frames).astype(int)].copy()
        states[np.unravel_index(data.draw(st.integers(0, states.size - 1)), states.shape)] = -1
    v = verify_states(task, puzzle, states)
    assert 0.0 <= v.reward <= 1.0 + 1e-9
    assert all(np.isfinite(x) for x in v.components.values())
    for m in (v.precision, v.recall, v.f1):
        assert 0.0 <= m <= 1.0
