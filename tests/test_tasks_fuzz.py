"""Robustness: arbitrary text either parses (and round-trips) or raises ValueError; arbitrary
solutions give a Verdict, never an exception, and only real solutions succeed."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrlvr import tasks

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALPHABETS = {"maze": "# SG\nx", "flowfree": ".ABC\n#", "sokoban": "# $.*@+-\nx"}


@pytest.mark.parametrize("name", sorted(ALPHABETS))
def test_from_text_parses_or_raises_value_error(name):
    task = tasks.get(name)

    @FUZZ
    @given(st.text(alphabet=ALPHABETS[name], max_size=60))
    def check(text):
        try:
            puzzle = task.from_text(text)
        except ValueError as exc:
            assert str(exc)
            return
        assert task.from_text(puzzle.to_text()) == puzzle
        solution = task.solve(puzzle)
        if solution is not None:
            assert task.check_solution(puzzle, solution).success
            assert task.frame_states(puzzle, solution, num_frames=3).shape[0] == 3

    check()


def test_maze_random_paths_never_crash():
    maze = tasks.get("maze")
    puzzle = maze.generate(0, 9)
    good = list(maze.solve(puzzle).path)

    @FUZZ
    @given(st.lists(st.tuples(st.integers(-2, 11), st.integers(-2, 11)), max_size=40))
    def check(path):
        v = maze.check_solution(puzzle, path)
        assert v.success == (path == good)  # a perfect maze has exactly one simple path S -> G

    check()


def test_sokoban_random_moves_never_crash():
    sok = tasks.get("sokoban")
    puzzle = sok.generate(1, 7)
    shortest = len(sok.solve(puzzle))

    @FUZZ
    @given(st.text(alphabet="UDLRudlrX", max_size=40))
    def check(moves):
        v = sok.check_solution(puzzle, moves)
        assert 0.0 <= v.reward <= 1.0
        if v.success:
            assert len(moves) >= shortest

    check()


def test_flowfree_random_grids_never_crash():
    ff = tasks.get("flowfree")
    puzzle = ff.from_text("A.B\n...\nA.B\n")
    assert ff.solve(puzzle) is None  # the middle column cannot join either path (degree rule)

    @FUZZ
    @given(st.lists(st.text(alphabet="AB.C", min_size=3, max_size=3), min_size=3, max_size=3))
    def check(rows):
        v = ff.check_solution(puzzle, rows)
        assert 0.0 <= v.reward <= 1.0
        assert not v.success

    check()
