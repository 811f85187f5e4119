"""FlowFree solver: depth-first search on path extension with constraint propagation.

Every colour grows from one endpoint (its "head") towards the other (its "target"). At each node the
search extends the most constrained colour (fewest legal moves; forced moves first), where a move
is legal when the new cell is empty and touches no cell of its own colour other than the head and
the target (so every path stays a simple, self-avoiding path: the degree rule); a head next to its
target must finish. After each move the node is pruned when
- an empty cell has fewer than two neighbours that are empty or an unfinished colour's head or
  target (it could never become a path cell of degree two);
- an unfinished colour's head and target no longer border a common region of empty cells;
- an empty region borders no unfinished colour that could enter and leave it (nobody can fill it).
A solution fills every cell (the validity rule of docs/contracts.md), so the search only accepts full grids.
The search is exact: it returns a solution whenever one exists, None otherwise.
"""

from __future__ import annotations

__all__ = ["solve_grid"]


def solve_grid(
    grid: list[int], R: int, C: int, endpoints: dict[int, tuple[int, int]], max_nodes: int = 2_000_000
) -> list[int] | None:
    """Solve a flattened grid (0 empty, colour id > 0 at endpoints). ``endpoints`` maps colour ->
    (flat index a, flat index b). Returns the filled flat grid, or None if unsolvable. Raises
    RuntimeError beyond ``max_nodes`` search nodes."""
    N = R * C
    nbrs = []
    for i in range(N):
        r, c = divmod(i, C)
        n = []
        if r > 0:
            n.append(i - C)
        if r < R - 1:
            n.append(i + C)
        if c > 0:
            n.append(i - 1)
        if c < C - 1:
            n.append(i + 1)
        nbrs.append(tuple(n))
    grid = list(grid)
    colours = sorted(endpoints)
    head: dict[int, int] = {}
    target: dict[int, int] = {}
    for col in colours:
        a, b = endpoints[col]
        # grow from the more constrained end (fewer empty neighbours)
        fa = sum(1 for j in nbrs[a] if grid[j] == 0)
        fb = sum(1 for j in nbrs[b] if grid[j] == 0)
        head[col], target[col] = (a, b) if fa <= fb else (b, a)
    active = set(colours)
    nodes = [0]

    def moves_of(col: int) -> list[int]:
        h, t = head[col], target[col]
        if t in nbrs[h]:
            return [t]
        out = []
        for x in nbrs[h]:
            if grid[x] != 0:
                continue
            ok = True
            for y in nbrs[x]:
                if y != h and y != t and grid[y] == col:
                    ok = False
                    break
            if ok:
                out.append(x)
        return out

    def feasible() -> bool:
        ends = set()
        for col in active:
            ends.add(head[col])
            ends.add(target[col])
        # dead ends
        for i in range(N):
            if grid[i] == 0:
                k = 0
                for j in nbrs[i]:
                    if grid[j] == 0 or j in ends:
                        k += 1
                if k < 2:
                    return False
        # empty regions
        region = [-1] * N
        nreg = 0
        for i in range(N):
            if grid[i] == 0 and region[i] < 0:
                region[i] = nreg
                stack = [i]
                while stack:
                    u = stack.pop()
                    for v in nbrs[u]:
                        if grid[v] == 0 and region[v] < 0:
                            region[v] = nreg
                            stack.append(v)
                nreg += 1
        served = [False] * nreg
        for col in active:
            h, t = head[col], target[col]
            rh = {region[j] for j in nbrs[h] if grid[j] == 0}
            if t in nbrs[h]:
                continue
            rt = {region[j] for j in nbrs[t] if grid[j] == 0}
            common = rh & rt
            if not common:
                return False
            for g in common:
                served[g] = True
        return all(served)

    def search() -> bool:
        nodes[0] += 1
        if nodes[0] > max_nodes:
            raise RuntimeError(f"flowfree solver gave up after {max_nodes} nodes")
        if not active:
            return all(v != 0 for v in grid)
        best_col, best_moves = -1, None
        for col in sorted(active):
            m = moves_of(col)
            if not m:
                return False
            if best_moves is None or len(m) < len(best_moves):
                best_col, best_moves = col, m
                if len(m) == 1:
                    break
        col = best_col
        h = head[col]
        for x in best_moves:
            if x == target[col]:
                active.discard(col)
                if feasible() and search():
                    return True
                active.add(col)
            else:
                grid[x] = col
                head[col] = x
                if feasible() and search():
                    return True
                grid[x] = 0
                head[col] = h
        return False

    if not feasible():
        return None
    return grid if search() else None
