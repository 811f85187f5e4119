"""Maze: generation, BFS solving, text format, strict checking, frames."""

from collections import deque

import numpy as np
import pytest

from vrlvr import tasks
from vrlvr.tasks.maze import ALGORITHMS, DISTRIBUTIONS, MazeSolution

maze = tasks.get("maze")

SMALL = """\
#######
#S    #
# ### #
#   # #
### # #
#    G#
#######
"""


def _tree_diameter(puzzle):
    """Longest shortest path among open cells, by brute-force BFS from every cell."""
    open_ = ~puzzle.walls
    R, C = open_.shape
    best = 0
    for sr, sc in zip(*np.nonzero(open_)):
        dist = {(sr, sc): 0}
        q = deque([(sr, sc)])
        while q:
            r, c = q.popleft()
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                p = (r + dr, c + dc)
                if 0 <= p[0] < R and 0 <= p[1] < C and open_[p] and p not in dist:
                    dist[p] = dist[(r, c)] + 1
                    q.append(p)
        best = max(best, max(dist.values()))
    return best


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", [7, 13, 21])
def test_generate_perfect_maze_and_solve(algorithm, size):
    p = maze.generate(11, size, algorithm=algorithm, endpoints="diameter")
    assert p.shape == (size, size)
    assert p.walls[0].all() and p.walls[-1].all() and p.walls[:, 0].all() and p.walls[:, -1].all()
    m = (size - 1) // 2
    # a perfect maze is a spanning tree: m^2 cells + (m^2 - 1) passages open, no 2x2 open block
    assert (~p.walls).sum() == 2 * m * m - 1
    o = ~p.walls
    assert not (o[:-1, :-1] & o[1:, :-1] & o[:-1, 1:] & o[1:, 1:]).any()
    sol = maze.solve(p)
    assert maze.check_solution(p, sol).success
    assert maze.check_solution(p, sol.path).success
    assert maze.check_solution(p, [list(x) for x in sol.path]).success
    # start and goal are the two ends of the maze's longest path
    assert len(sol.path) - 1 == _tree_diameter(p)
    # the default endpoints ("partial") on the same tree: a shorter path between two cells
    q = maze.generate(11, size, algorithm=algorithm)
    assert (q.walls == p.walls).all() and q.start[0] % 2 == 1 and q.goal[1] % 2 == 1
    assert maze.check_solution(q, maze.solve(q)).success


# The classic distribution is the original generator, puzzle for puzzle (seed 3, size 9 before the
# reasoning distribution became the default).
CLASSIC_3_9 = (
    "#########\n#     #S#\n# ### # #\n# #   # #\n# # ### #\n# #G#   #\n# ##### #\n#       #\n#########\n"
)


def test_classic_distribution_is_the_old_one():
    assert maze.generate(3, 9, distribution="classic").to_text() == CLASSIC_3_9
    assert maze.generate(3, 9, algorithm="backtracker", endpoints="diameter").to_text() == CLASSIC_3_9
    assert maze.generate(3, 9).to_text() != CLASSIC_3_9
    assert set(DISTRIBUTIONS) == {"reasoning", "classic"}


def _coverage(puzzle):
    return len(maze.solve(puzzle).path) / int((~puzzle.walls).sum())


@pytest.mark.parametrize("size", range(7, 22, 2))
def test_default_distribution_path_covers_at_most_half(size):
    """Painting every corridor must not be nearly the answer: the solution path (S and G included)
    covers at most half of the open cells on average (measured over 40 seeds), the classic
    distribution covers far more, and paths bend away from the straight line."""
    seeds = range(40)
    cov = [_coverage(maze.generate(s, size)) for s in seeds]
    assert np.mean(cov) <= 0.5 and max(cov) <= 0.5
    assert np.mean([_coverage(maze.generate(s, size, distribution="classic")) for s in seeds]) > 0.6
    detours = 0
    for s in seeds:
        p = maze.generate(s, size)
        manhattan = abs(p.start[0] - p.goal[0]) + abs(p.start[1] - p.goal[1])
        detours += len(maze.solve(p).path) - 1 > manhattan
    assert detours >= 0.9 * len(seeds)


def test_default_distribution_has_many_small_puzzles():
    # 7x7 classic mazes have < 200 distinct puzzles; free endpoints multiply that
    keys = {maze.canonical_key(maze.generate(s, 7)) for s in range(300)}
    assert len(keys) > 250


def test_determinism_and_variety():
    a = maze.generate(5, 15)
    assert a == maze.generate(5, 15)
    assert a != maze.generate(6, 15)
    assert maze.generate(5, 15, algorithm="kruskal") != a
    keys = {maze.canonical_key(maze.generate(s, 11)) for s in range(20)}
    assert len(keys) == 20


def test_corners_endpoints():
    p = maze.generate(1, 9, endpoints="corners")
    assert {p.start, p.goal} == {(1, 1), (7, 7)}


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 8},
        {"size": 5},
        {"size": 23},
        {"algorithm": "prim"},
        {"endpoints": "random"},
        {"colours": 3},
        {"distribution": "hard"},
    ],
)
def test_generate_rejects_bad_arguments(bad):
    kwargs = {"size": 9, **bad}
    with pytest.raises(ValueError):
        maze.generate(0, **kwargs)


def test_text_round_trip_and_solve_from_text():
    p = maze.from_text(SMALL)
    assert p.to_text() == SMALL
    assert p.start == (1, 1) and p.goal == (5, 5)
    sol = maze.solve(p)
    assert sol.path[0] == (1, 1) and sol.path[-1] == (5, 5)
    assert len(sol.path) == 9  # the short way along the bottom corridor
    g = maze.generate(3, 17)
    assert maze.from_text(g.to_text()) == g
    assert maze.from_text(g.to_text().replace("\n", "\r\n")) == g


def test_unsolvable_returns_none():
    walled = SMALL.replace("#    G#", "#### G#").replace("### # #", "### ###")
    assert maze.solve(maze.from_text(walled)) is None


@pytest.mark.parametrize(
    "text, match",
    [
        (SMALL.replace("#S    #", "#S  x #"), r"line 2, column 5: unexpected character 'x'"),
        (SMALL.replace("# ### #", "# ###"), r"line 3 has 5 characters, expected 7"),
        (
            SMALL.replace("#   # #", "#S  # #"),
            r"exactly one 'S', found 2 \(line 2, column 2, line 4, column 2\)",
        ),
        (SMALL.replace("G", " "), r"exactly one 'G', found 0"),
        ("", "empty"),
    ],
)
def test_malformed_text(text, match):
    with pytest.raises(ValueError, match=match):
        maze.from_text(text)


def test_rejections():
    p = maze.from_text(SMALL)
    good = list(maze.solve(p).path)
    assert maze.check_solution(p, good).success

    def reason(path):
        v = maze.check_solution(p, path)
        assert not v.success and v.reward == 0.0
        return v

    v = reason(good[:-1])  # stops short
    assert v.components["reaches_goal"] == 0 and "short of the goal" in v.reason
    v = reason(
        [(1, 1), (2, 1), (3, 1), (3, 2), (3, 3), (4, 3), (5, 3), (5, 4), (5, 5)][:2] + [(2, 2)] + good[2:]
    )
    assert v.components["no_wall"] == 0 and "is a wall" in v.reason
    v = reason([good[0], good[2]] + good[3:])  # jump
    assert v.components["contiguous"] == 0 and "jump" in v.reason
    v = reason(good[:3] + [good[1], good[2]] + good[3:])  # back-and-forth revisit
    assert v.components["no_revisit"] == 0
    v = reason(good[1:])  # does not start on S
    assert v.components["starts_at_start"] == 0
    v = reason(good[:-1] + [(5, 6)])  # off into the border wall
    assert v.components["no_wall"] == 0
    v = reason(good + [(5, 7)])  # leaves the grid
    assert "outside" in v.reason
    assert not maze.check_solution(p, []).success
    assert not maze.check_solution(p, "SRRG").success
    assert not maze.check_solution(p, [(1, 1), (1, "x")]).success
    for junk in (42, 3.5, None, b"\x01\x01"):  # not a list of pairs: a failed verdict, no exception
        v = maze.check_solution(p, junk)
        assert not v.success and v.components == {"well_formed": 0.0}
    assert maze.check_solution(p, MazeSolution(tuple(good))).success


def test_frames_grow_path_one_cell_per_action():
    p = maze.generate(2, 9)
    sol = maze.solve(p)
    acts = maze.action_states(p, sol)
    assert len(acts) == len(sol.path) - 1  # P - 2 actions
    for k in range(1, len(acts)):
        diff = np.argwhere(acts[k] != acts[k - 1])
        assert len(diff) == 1 and tuple(diff[0]) == sol.path[k]
        assert acts[k][tuple(diff[0])] == 4
    assert acts[-1][p.start] == 2 and acts[-1][p.goal] == 3
    assert maze.solution_actions(p, sol) == list(sol.path[1:-1])
    # the default 81 frames at 4 px: a 7x7 maze at 28x28
    small = maze.generate(0, 7)
    assert maze.render(small, cell_px=4).shape == (81, 28, 28, 3)
