"""Parsing of the character-grid text formats (maze wall grid, FlowFree letters, Sokoban XSB).

Errors name the 1-based line and column of the offending character, so a user can find it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["parse_char_grid", "GRID_NEIGHBOURS"]

#: 4-neighbour offsets in U, D, L, R order (the Sokoban move order too)
GRID_NEIGHBOURS: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass(frozen=True)
class TextGridPuzzle:
    """A puzzle stored as its text rows, one string per grid row (all of one length)."""

    rows: tuple[str, ...]

    def to_text(self) -> str:
        return "\n".join(self.rows) + "\n"

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows[0])


def parse_char_grid(text: str, allowed: str | None, what: str, pad: str | None = None) -> list[str]:
    """Split ``text`` into grid rows and check every character.

    Leading and trailing empty lines are dropped ("\\r\\n" line ends are accepted). ``allowed``
    is the set of valid characters (None: any non-control character). Rows of unequal length raise
    ValueError unless ``pad`` is given, in which case short rows are padded with it.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected the puzzle as a str, got {type(text).__name__}")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    first = 0
    while first < len(lines) and lines[first] == "":
        first += 1
    last = len(lines)
    while last > first and lines[last - 1] == "":
        last -= 1
    if first == last:
        raise ValueError(f"{what}: empty text, expected a grid of characters")
    rows = lines[first:last]
    for i, row in enumerate(rows):
        line_no = first + i + 1
        if row == "":
            raise ValueError(f"{what}: line {line_no} is empty inside the grid")
        for j, ch in enumerate(row):
            if (allowed is not None and ch not in allowed) or (allowed is None and (not ch.isprintable())):
                expected = f"; expected one of {allowed!r}" if allowed is not None else ""
                raise ValueError(
                    f"{what}: line {line_no}, column {j + 1}: unexpected character {ch!r}{expected}"
                )
    width = max(len(r) for r in rows)
    if pad is not None:
        return [r + pad * (width - len(r)) for r in rows]
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(
                f"{what}: line {first + i + 1} has {len(row)} characters, expected {len(rows[0])} "
                f"(the grid must be rectangular)"
            )
    return rows
