"""FlowFree: Hamiltonian-path generation, the exact DFS solver, text format, strict checking, frames."""

import itertools

import numpy as np
import pytest

from vrlvr import tasks
from vrlvr.tasks.flowfree import DEFAULT_COLOURS, MAX_COLOURS, FlowFreeSolution, colour_bounds

ff = tasks.get("flowfree")

PUZZLE = """\
.....
...B.
..C..
..B..
..ACA
"""
# a valid solution of PUZZLE (the degree rule forbids A or B hugging themselves)
SOLVED = ["AAAAA", "ABBBA", "ABCCA", "ABBCA", "AAACA"]


def _brute_force(puzzle):
    """Every combination of simple induced paths, colour by colour; True if one fills the grid."""
    R, C = puzzle.shape
    ends = list(puzzle.endpoints.items())
    all_ends = {cell for _, e in ends for cell in e}

    def nbrs(p):
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            q = (p[0] + dr, p[1] + dc)
            if 0 <= q[0] < R and 0 <= q[1] < C:
                yield q

    def paths(a, b, used):
        # simple paths a -> b through unused non-endpoint cells, no chords (degree rule)
        out = []

        def rec(path, on):
            cur = path[-1]
            for q in nbrs(cur):
                if q == b:
                    if all(x == cur or x not in on or x == b for x in nbrs(b)):
                        out.append(path + [b])
                    continue
                if q in on or q in used or q in all_ends:
                    continue
                if any(x in on and x != cur for x in nbrs(q)):
                    continue
                on.add(q)
                rec(path + [q], on)
                on.discard(q)

        rec([a], {a})
        return out

    def solve(i, used):
        if i == len(ends):
            return len(used) == R * C
        _, (a, b) = ends[i]
        return any(solve(i + 1, used | set(p)) for p in paths(a, b, used))

    return solve(0, set())


def test_generate_bounds_and_construction_solution():
    for size in range(5, 9):
        lo, hi = colour_bounds(size)
        for seed in range(5):
            p, sol = ff.generate_with_solution(seed, size)
            assert p.shape == (size, size)
            a, b = DEFAULT_COLOURS[size]
            assert a <= len(p.letters) <= b and lo <= a <= b <= hi
            assert ff.check_solution(p, sol).success
            # every segment has at least 3 cells
            for letter in p.letters:
                assert sum(row.count(letter) for row in sol.rows) >= 3
    p = ff.generate(1, 8, colours=12)
    assert len(p.letters) == 12 == MAX_COLOURS
    assert len(ff.generate(2, 8, colours=8).letters) == 8  # the hardest allowed split still generates
    for bad in (
        {"colours": 1},
        {"colours": 3},
        {"size": 8, "colours": 7},
        {"colours": 13},
        {"size": 4},
        {"size": 9},
        {"boxes": 2},
    ):
        with pytest.raises(ValueError):
            ff.generate(0, **{"size": 6, **bad})


def test_canonical_key_ignores_colour_permutation():
    p = ff.from_text(PUZZLE)
    permuted = ff.from_text(PUZZLE.replace("A", "x").replace("C", "A").replace("x", "C"))
    assert permuted != p and ff.canonical_key(permuted) == ff.canonical_key(p)
    assert ff.canonical_key(ff.from_text(PUZZLE.replace("..B..", "...B."))) != ff.canonical_key(p)


def test_determinism():
    assert ff.generate_with_solution(7, 7) == ff.generate_with_solution(7, 7)
    assert len({ff.canonical_key(ff.generate(s, 6)) for s in range(10)}) == 10


@pytest.mark.parametrize("size", [5, 6, 7, 8])
def test_solver_solves_generated_puzzles_from_text(size):
    for seed in range(4):
        p = ff.from_text(ff.generate(seed, size).to_text())
        sol = ff.solve(p)
        assert sol is not None
        assert ff.check_solution(p, sol).success
        assert ff.check_solution(p, list(sol.rows)).success


def _random_puzzles(rng, n):
    for _ in range(n):
        R, C = int(rng.integers(3, 5)), int(rng.integers(3, 5))
        k = int(rng.integers(2, 4))
        cells = rng.permutation(R * C)[: 2 * k]
        grid = [["."] * C for _ in range(R)]
        for i, idx in enumerate(cells):
            grid[idx // C][idx % C] = "ABC"[i // 2]
        yield ff.from_text("\n".join("".join(r) for r in grid))


def _constructed_puzzles(rng, n):
    """Small puzzles cut from random Hamiltonian paths (solvable by construction)."""
    from vrlvr.tasks.flowfree import _backbite, _sample_cuts, _serpentine

    for _ in range(n):
        R, C = int(rng.integers(3, 5)), 4
        path = _backbite(_serpentine(R, C), R, C, 50, rng)
        lengths = _sample_cuts(path, 2, rng) or _sample_cuts(path, 3, rng) or _sample_cuts(path, 4, rng)
        if lengths is None:
            continue
        grid = [["."] * C for _ in range(R)]
        i = 0
        for letter, L in zip("ABCD", lengths):
            for r, c in (path[i], path[i + L - 1]):
                grid[r][c] = letter
            i += L
        yield ff.from_text("\n".join("".join(r) for r in grid))


def test_solver_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    solvable = unsolvable = 0
    for p in itertools.chain(_random_puzzles(rng, 40), _constructed_puzzles(rng, 30)):
        sol = ff.solve(p)
        expected = _brute_force(p)
        assert (sol is not None) == expected, p.to_text()
        if sol is not None:
            assert ff.check_solution(p, sol).success
            solvable += 1
        else:
            unsolvable += 1
    assert solvable >= 10 and unsolvable >= 10  # both outcomes exercised


def test_unsolvable_returns_none():
    assert ff.solve(ff.from_text("A.B\n...\nB.A\n")) is None
    assert ff.solve(ff.from_text("AB\nBA\n")) is None
    assert ff.solve(ff.from_text("A..\n.A.\n...\n")) is None  # cannot fill every cell
    # one colour cannot fill a 3x3 board without touching itself (the degree rule)
    assert ff.solve(ff.from_text("A..\n...\n..A\n")) is None
    assert ff.solve(ff.from_text("A..\n...\nA..\n")) is None
    assert ff.solve(ff.from_text(PUZZLE)).rows == tuple(SOLVED)


def test_text_round_trip_and_letter_order():
    p = ff.from_text(PUZZLE)
    assert p.to_text() == PUZZLE
    assert p.endpoints["B"] == ((1, 3), (3, 2))
    assert p.letters == ("A", "B", "C")
    assert p.label_of("A") == 1 and p.label_of("C") == 3
    assert ff.from_text("b.a\n...\nb.a\n").letters == ("a", "b")
    assert ff.from_text("B.0\n...\nB.0\n").letters == ("0", "B")
    g = ff.generate(2, 8)
    assert ff.from_text(g.to_text()) == g


@pytest.mark.parametrize(
    "text, match",
    [
        (PUZZLE.replace("...B.", "...B#"), r"line 2, column 5: unexpected character '#'"),
        (PUZZLE.replace("..ACA", "..ACA."), r"line 5 has 6 characters, expected 5"),
        (PUZZLE.replace("..C..", "..CC."), r"line 5, column 4: a third 'C'"),
        (PUZZLE.replace("..B..", "..D.."), r"line 2, column 4: 'B' appears once"),
        (".....\n.....\n", r"no endpoints"),
        ("", r"empty"),
    ],
)
def test_malformed_text(text, match):
    with pytest.raises(ValueError, match=match):
        ff.from_text(text)


def test_rejections():
    p = ff.from_text(PUZZLE)
    assert ff.check_solution(p, SOLVED).success
    assert ff.check_solution(p, FlowFreeSolution(tuple(SOLVED))).success
    assert ff.check_solution(p, "\n".join(SOLVED)).success

    def rejected(grid, component):
        v = ff.check_solution(p, grid)
        assert not v.success
        assert v.components[component] < 1.0, v
        assert 0.0 <= v.reward < 1.0
        return v

    v = rejected(["A" + SOLVED[0][1:].replace("A", ".", 1)] + SOLVED[1:], "fill")  # unfilled cell
    assert "unfilled" in v.reason
    v = rejected([SOLVED[0], "ABBAA"] + SOLVED[2:], "endpoints")  # endpoint B at (1, 3) overwritten
    assert "endpoint B" in v.reason
    v = rejected(["AAAAA", "ABBBA", "ABCCA", "ABBCA", "AABCA"], "path_validity")  # B branches
    v = ff.check_solution(p, [x.replace("C", "Z") for x in SOLVED])
    assert not v.success and "not a colour of the puzzle" in v.reason
    assert not ff.check_solution(p, SOLVED[:-1]).success  # wrong shape
    assert not ff.check_solution(p, 42).success


def test_degree_rule_cases():
    # 3x3, colour A from (0,0) to (0,2); B from (2,0) to (2,2)
    p = ff.from_text("A.A\n...\nB.B\n")
    assert ff.check_solution(p, ["AAA", "BBB", "BBB"]).success is False  # B is a 2x3 block: touches itself
    ok = ["AAA", "...", "BBB"]
    v = ff.check_solution(p, ok)
    assert not v.success and v.components["path_validity"] == 1.0 and v.components["fill"] < 1
    # a U-turn path whose two arms touch: A goes down and back up next to itself
    q = ff.from_text("A.A\n...\n...\n")
    v = ff.check_solution(q, ["AAA", "AAA", "AAA"])
    assert not v.success and "same-colour neighbours" in v.reason
    # a crossing: A runs straight through where B must pass, so B's endpoints are cut apart
    x = ff.from_text(".B.\nA.A\n.B.\n")
    v = ff.check_solution(x, [".B.", "AAA", ".B."])
    assert not v.success and "colour B: endpoints not connected" in v.reason
    assert ff.solve(x) is None
    # disconnected: A's endpoints each have one neighbour but the path is broken (two pieces)
    w = ff.from_text("A...A\n.....\nBBCC.\n")
    v = ff.check_solution(w, ["AA.AA", ".....", "BBCC."])
    assert not v.success and v.components["connectivity"] < 1


def test_frames_grow_each_colour_in_turn():
    p, sol = ff.generate_with_solution(3, 6)
    acts = ff.action_states(p, sol)
    n_end = 2 * len(p.letters)
    assert len(acts) == 36 - n_end + 1
    assert (acts[0] > 0).sum() == n_end
    labels_in_order = []
    for k in range(1, len(acts)):
        diff = np.argwhere(acts[k] != acts[k - 1])
        assert len(diff) == 1
        labels_in_order.append(int(acts[k][tuple(diff[0])]))
    # colours in label order, each contiguous
    assert labels_in_order == sorted(labels_in_order)
    # each colour's growth is a walk: consecutive painted cells of one colour are neighbours
    actions = ff.solution_actions(p, sol)
    for (r0, c0, l0), (r1, c1, l1) in itertools.pairwise(actions):
        if l0 == l1:
            assert abs(r0 - r1) + abs(c0 - c1) == 1
    assert (acts[-1] > 0).all()
    dec = ff.decorations(p)
    assert dec.sum() == n_end
    # rings sit outside the centre patch: centre keeps the colour, the cell corner gets the ring
    frames = ff.render(p, sol, num_frames=3, height=480, width=832)
    lay = ff.layout(p, 480, 832)
    r, c = np.argwhere(dec)[0]
    y0, y1, x0, x1 = lay.cell_bounds(int(r), int(c))
    pal = ff.palette(0)
    assert frames[0, (y0 + y1) // 2, (x0 + x1) // 2].tolist() == pal[acts[0][r, c]].tolist()
    assert frames[0, y0, x0].tolist() == ff.ring_colour(0).tolist()
