"""Sokoban: reverse-play generation, move-optimal BFS, XSB parsing, strict checking, frames."""

from collections import deque

import numpy as np
import pytest

from vrlvr import tasks
from vrlvr.tasks.sokoban import MAX_MOVES, SokobanSolution

sok = tasks.get("sokoban")

LEVEL = """\
#######
#     #
# @$. #
#     #
#######
"""

# ragged XSB with outside cells, '-' floor, a box on a goal and the player on a goal
RAGGED = """\
  #####
###---#
#.+$--#
###-$.#
  #*$-#
  #---#
  #####
"""


def _python_bfs(puzzle, limit=200_000):
    """Independent move-optimal solver (plain Python) to check the numba one."""
    walls = puzzle.walls
    start = (puzzle.player, frozenset(puzzle.boxes))
    seen = {start}
    q = deque([(start, "")])
    while q:
        (p, boxes), path = q.popleft()
        if boxes <= puzzle.goals:
            return path
        for m, (dr, dc) in zip("UDLR", ((-1, 0), (1, 0), (0, -1), (0, 1))):
            n = (p[0] + dr, p[1] + dc)
            if walls[n]:
                continue
            nb = boxes
            if n in boxes:
                b2 = (n[0] + dr, n[1] + dc)
                if walls[b2] or b2 in boxes:
                    continue
                nb = (boxes - {n}) | {b2}
            s = (n, nb)
            if s not in seen:
                seen.add(s)
                q.append((s, path + m))
        assert len(seen) < limit
    return None


def test_generate_bounds_and_solutions():
    counts = {1: 0, 2: 0, 3: 0}
    for size in range(6, 11):
        for seed in range(6):
            p = sok.generate(seed, size)
            assert p.shape == (size, size)
            w = p.walls
            assert w[0].all() and w[-1].all() and w[:, 0].all() and w[:, -1].all()
            assert 1 <= len(p.boxes) <= 3 and len(p.boxes) == len(p.goals)
            counts[len(p.boxes)] += 1
            sol = sok.solve(p)
            assert sol is not None and 1 <= len(sol) <= MAX_MOVES
            assert sok.check_solution(p, sol).success
            assert sok.check_solution(p, sol.moves.lower()).success
    assert all(counts.values())  # every box count occurs


def test_box_count_and_move_bounds_are_respected():
    for boxes in (1, 2, 3):
        p = sok.generate(9, 8, boxes=boxes, min_moves=10, max_moves=40)
        assert len(p.boxes) == boxes
        assert 10 <= len(sok.solve(p)) <= 40
    for bad in (
        {"boxes": 4},
        {"boxes": 0},
        {"max_moves": 61},
        {"min_moves": 70},
        {"size": 11},
        {"size": 5},
        {"foo": 1},
    ):
        with pytest.raises(ValueError):
            sok.generate(0, **{"size": 8, **bad})


def test_determinism():
    assert sok.generate(3, 8) == sok.generate(3, 8)
    assert len({sok.canonical_key(sok.generate(s, 8)) for s in range(10)}) == 10


def test_solver_is_move_optimal():
    for seed in range(8):
        p = sok.generate(seed, 7)
        assert len(sok.solve(p)) == len(_python_bfs(p))
    p = sok.from_text(LEVEL)
    assert sok.solve(p).moves == "R"
    around = sok.from_text(LEVEL.replace("@$", "$@"))  # the player must walk round the box first
    assert sok.solve(around).moves in ("ULLDRR", "DLLURR")


def test_solves_text_level_with_outside_cells():
    p = sok.from_text(RAGGED)
    assert p.outside[0, 0] and p.outside[0, 1]  # outside the walls
    assert p.to_text().splitlines()[1] == "###   #"  # '-' normalised to floor
    assert sok.from_text(p.to_text()) == p
    sol = sok.solve(p)
    assert sol is not None and sok.check_solution(p, sol).success
    assert len(sol) == len(_python_bfs(p))
    st = sok.frame_states(p, sol)
    assert (st[:, 0, 0] == 1).all()  # outside renders as wall


def test_unsolvable_returns_none():
    corner = "#####\n#$  #\n# @.#\n#####\n"  # box stuck in a corner
    assert sok.solve(sok.from_text(corner)) is None
    blocked = "######\n#@$#.#\n######\n"
    assert sok.solve(sok.from_text(blocked)) is None
    assert sok.solve(sok.from_text(LEVEL.replace("@$", "$@")), max_moves=5) is None  # needs 6
    assert sok.solve(sok.from_text("#####\n#@* #\n#####\n")).moves == ""  # already solved


@pytest.mark.parametrize(
    "text, match",
    [
        (LEVEL.replace("$", "x"), r"line 3, column 4: unexpected character 'x'"),
        (LEVEL.replace("@", " "), r"exactly one player"),
        (LEVEL.replace("# @", "#@@"), r"exactly one player.*found 2 \(line 3, column 2, line 3, column 3\)"),
        (LEVEL.replace(".", " "), r"1 boxes but 0 goals"),
        (LEVEL.replace("$", " ").replace(".", " "), r"no box"),
        ("#####\n#@$. \n#####\n", r"line 2, column 5 is reachable floor on the grid edge"),
        ("", "empty"),
    ],
)
def test_malformed_text(text, match):
    with pytest.raises(ValueError, match=match):
        sok.from_text(text)


def test_rejections():
    p = sok.from_text(LEVEL)
    assert sok.check_solution(p, "R").success
    assert sok.check_solution(p, SokobanSolution("r")).success
    assert sok.check_solution(p, ["R"]).success
    v = sok.check_solution(p, "")  # stops short
    assert not v.success and v.components["boxes_on_goals"] == 0 and "not on a goal" in v.reason
    v = sok.check_solution(p, "UUR")  # walks into the top wall, then continues
    assert not v.success and "walks into a wall" in v.reason
    v = sok.check_solution(p, "LLRRR")  # walks into the left wall, later pushes the box past the goal
    assert not v.success and v.components["legal_moves"] == 0.8 and v.components["boxes_on_goals"] == 0
    wall_push = sok.from_text("#####\n#@$ #\n#  .#\n#####\n")
    v = sok.check_solution(wall_push, "RR")  # second push drives the box into the wall
    assert not v.success and "pushes the box" in v.reason and "into a wall" in v.reason
    assert v.components["legal_moves"] == 0.5
    two = sok.from_text("######\n#@$$.#\n#   .#\n######\n")
    v = sok.check_solution(two, "R")
    assert not v.success and "into another box" in v.reason
    v = sok.check_solution(p, "RX")
    assert not v.success and "'X' is not one of U, D, L, R" in v.reason
    v = sok.check_solution(p, 17)
    assert not v.success and v.components["well_formed"] == 0


def test_one_move_per_action_and_pushes():
    p = sok.generate(4, 9)
    sol = sok.solve(p)
    acts = sok.action_states(p, sol)
    assert len(acts) == len(sol) + 1
    player_labels = (5, 6)
    for k in range(1, len(acts)):
        before = np.argwhere(np.isin(acts[k - 1], player_labels))[0]
        after = np.argwhere(np.isin(acts[k], player_labels))[0]
        assert np.abs(before - after).sum() == 1
    final = acts[-1]
    assert (final == 3).sum() == 0 and (final == 4).sum() == len(p.boxes)
    assert sok.solution_actions(p, sol) == list(sol.moves)
    with pytest.raises(ValueError, match="illegal"):
        sok.action_states(sok.from_text(LEVEL), "UU")
