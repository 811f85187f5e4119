"""Colour themes shared by all tasks.

Each task defines one base palette (theme 0, "classic"). The other themes are distance-preserving
transforms of it: a permutation of the RGB channels, optionally followed by inversion
(255 - value). Permuting axes and reflecting the cube are isometries of RGB space, so every theme
keeps exactly the pairwise colour distances of the base palette (which the tests check against
``MIN_PALETTE_DISTANCE``), while the colours themselves change (red becomes green or blue, white
becomes black, ...).

A theme is given by index (0..len(THEMES)-1) or by name.
"""

from __future__ import annotations

import numpy as np

__all__ = ["THEMES", "MIN_PALETTE_DISTANCE", "theme_index", "apply_theme", "min_pairwise_distance"]

#: name -> (channel order, inverted)
THEMES: dict[str, tuple[tuple[int, int, int], bool]] = {
    "classic": ((0, 1, 2), False),
    "gbr": ((1, 2, 0), False),
    "brg": ((2, 0, 1), False),
    "inverted": ((0, 1, 2), True),
    "inverted-gbr": ((1, 2, 0), True),
    "inverted-brg": ((2, 0, 1), True),
}

#: every task palette keeps its colours at least this far apart (Euclidean, RGB 0..255)
MIN_PALETTE_DISTANCE = 100.0

_NAMES = tuple(THEMES)


def theme_index(theme: int | str) -> int:
    """Index of a theme given by index or name; ValueError for anything else."""
    if isinstance(theme, (bool, np.bool_)):
        raise ValueError(
            f"theme must be an int in [0, {len(_NAMES)}) or one of {list(_NAMES)}, got {theme!r}"
        )
    if isinstance(theme, (int, np.integer)):
        if not 0 <= int(theme) < len(_NAMES):
            raise ValueError(f"theme index must lie in [0, {len(_NAMES)}), got {theme}")
        return int(theme)
    if isinstance(theme, str):
        if theme in THEMES:
            return _NAMES.index(theme)
        if theme.isdigit():
            return theme_index(int(theme))
    raise ValueError(f"unknown theme {theme!r}; themes are 0..{len(_NAMES) - 1} or {list(_NAMES)}")


def apply_theme(base: np.ndarray, theme: int | str) -> np.ndarray:
    """The base palette (uint8 [K, 3]) under the theme's channel permutation and inversion."""
    order, inverted = THEMES[_NAMES[theme_index(theme)]]
    out = np.asarray(base, np.uint8)[:, list(order)]
    if inverted:
        out = 255 - out
    return np.ascontiguousarray(out, dtype=np.uint8)


def min_pairwise_distance(palette: np.ndarray) -> float:
    """Smallest Euclidean RGB distance between two entries of a palette."""
    p = np.asarray(palette, np.float64)
    d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
    d[np.arange(len(p)), np.arange(len(p))] = np.inf
    return float(d.min())
