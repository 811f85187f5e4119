"""Puzzle streams for training and evaluation, with held-out hygiene.

Small grids have few distinct puzzles (7x7 mazes: a few hundred), so disjoint seeds do not make a
held-out set. Puzzles are identified by ``task.canonical_key(puzzle)`` (a hash of the normalised
puzzle text) instead:

- ``eval_puzzles(task, sizes, n, seed)`` draws *distinct* puzzles, an even share of n per size,
  from seeds seed, seed + 1, ... (the first distinct ones, so a smaller n gives a prefix of a
  larger one);
- training streams (``SolutionStream``) reject every puzzle whose key is in the held-out set, and
  a checkpoint records the held-out keys (``heldout.json``) so ``vrlvr eval`` can evaluate only on
  puzzles the checkpoint never trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "EvalPuzzle",
    "size_quotas",
    "check_options",
    "eval_puzzles",
    "SolutionStream",
    "FolderStream",
    "VideoSpec",
    "HELDOUT_FILE",
    "read_heldout",
    "seen_by",
    "write_heldout",
    "check_inside_heldout",
    "eval_subset",
]

HELDOUT_FILE = "heldout.json"


@dataclass
class EvalPuzzle:
    seed: int
    size: int
    puzzle: object
    key: str


def size_quotas(sizes: list[int], n: int) -> dict[int, int]:
    """An even share of n per size (the first n % len(sizes) sizes get one more)."""
    k = len(sizes)
    return {s: n // k + (1 if i < n % k else 0) for i, s in enumerate(sizes)}


def check_options(task, sizes: list[int], options: dict | None, where: str = "data.options") -> None:
    """Generate one puzzle per size with ``options`` (the task generator's difficulty keywords), so a
    misspelt or out-of-range option fails here in one line naming the config key, not mid-run."""
    for size in sizes:
        try:
            task.generate(0, size, **(options or {}))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{where}={dict(options or {})} for {task.name} size {size}: {exc}") from None


def eval_puzzles(
    task,
    sizes: list[int],
    n: int,
    seed: int,
    allowed: set[str] | None = None,
    max_draws_per_puzzle: int = 20,
    options: dict | None = None,
) -> tuple[list[EvalPuzzle], dict]:
    """Distinct puzzles, an even share of n per size, from seeds seed, seed + 1, ... per size.

    ``options`` are passed to ``task.generate`` (difficulty keywords; None: the task's defaults).
    ``allowed`` (optional) keeps only puzzles whose key is in it (a checkpoint's held-out set).
    Stops a size after ``max_draws_per_puzzle * quota + 100`` draws (small grids run out of distinct
    puzzles). Returns (puzzles in size-major order, stats: seeds drawn, duplicates, not allowed)."""
    out: list[EvalPuzzle] = []
    stats = {"drawn": 0, "duplicates": 0, "not_held_out": 0, "short": {}}
    for size, quota in size_quotas(sizes, n).items():
        seen: set[str] = set()
        got = 0
        for j in range(max_draws_per_puzzle * quota + 100):
            if got >= quota:
                break
            puzzle = task.generate(seed + j, size, **(options or {}))
            key = task.canonical_key(puzzle)
            stats["drawn"] += 1
            if key in seen:
                stats["duplicates"] += 1
                continue
            seen.add(key)
            if allowed is not None and key not in allowed:
                stats["not_held_out"] += 1
                continue
            out.append(EvalPuzzle(seed + j, size, puzzle, key))
            got += 1
        if got < quota:
            stats["short"][size] = quota - got
    return out, stats


def write_heldout(
    path: str | Path,
    task_name: str,
    sizes: list[int],
    n: int,
    seed: int,
    keys: set[str],
    options: dict | None = None,
) -> None:
    rec = {"task": task_name, "sizes": list(sizes), "n": n, "seed": seed, "keys": sorted(keys)}
    if options:
        rec["options"] = dict(options)
    Path(path).write_text(json.dumps(rec) + "\n")


def read_heldout(folder: str | Path, task_name: str | None = None) -> dict | None:
    """A checkpoint's held-out record ({"task", "sizes", "n", "seed", "keys"}, and "options" when
    its puzzles were generated with difficulty options), or None. A run on
    several tasks (``vrlvr-train`` with a mixed batch) records {"tasks": {name: record}}: pass
    ``task_name`` to get that task's record (None when it has none)."""
    p = Path(folder) / HELDOUT_FILE
    if not p.is_file():
        return None
    rec = json.loads(p.read_text())
    if "tasks" in rec:
        if task_name is None:
            raise ValueError(
                f"{p} holds several tasks' held-out sets ({sorted(rec['tasks'])}); name the task"
            )
        return rec["tasks"].get(task_name)
    return rec


def seen_by(prior: dict | None, task_name: str, puzzles: list[EvalPuzzle]) -> list[EvalPuzzle]:
    """The puzzles a checkpoint with held-out record ``prior`` (its heldout.json) may have trained on:
    same task, a size it trained on, and not in its held-out keys."""
    if not prior or prior.get("task") != task_name:
        return []
    sizes, keys = set(prior.get("sizes", [])), set(prior.get("keys", []))
    return [p for p in puzzles if p.size in sizes and p.key not in keys]


def check_inside_heldout(
    init: str | Path, task_name: str, heldout: list[EvalPuzzle], what: str, options: dict | None = None
) -> None:
    """A run starting from checkpoint ``init`` (``what``: the config key naming it) must hold out
    only puzzles that ``init`` held out too: its run trained on every other puzzle of its sizes, so
    anything else would be evaluated after being trained on. ``options``: this run's generator
    options, named in the error when they differ from the ones ``init`` recorded."""
    prior = read_heldout(init, task_name)
    bad = seen_by(prior, task_name, heldout)
    if bad:
        hint = ""
        theirs, ours = dict((prior or {}).get("options") or {}), dict(options or {})
        if theirs != ours:
            hint = f"; it generated its puzzles with data.options={theirs}, this run with {ours}"
        raise ValueError(
            f"{len(bad)} of the {len(heldout)} held-out {task_name} puzzles may have been trained on by "
            f"{what}={init} (not in its {HELDOUT_FILE}); use its held-out settings (heldout.seed, "
            f"heldout.n) or other sizes{hint}"
        )


def eval_subset(heldout: list[EvalPuzzle], sizes: list[int], n: int) -> list[EvalPuzzle]:
    """The first n held-out puzzles, an even share per size: ``eval_puzzles`` draws the first
    distinct puzzles per size, so this is each size's prefix (the same puzzles at every evaluation)."""
    return [
        p for size, k in size_quotas(sizes, n).items() for p in [q for q in heldout if q.size == size][:k]
    ]


@dataclass(frozen=True)
class VideoSpec:
    """How puzzles become videos: the frame count and the frame geometry, either ``cell_px``
    (the frame is exactly the grid, cell_px pixels per cell) or ``height`` x ``width`` (the grid
    fitted into the frame, e.g. Wan's 480 x 832)."""

    num_frames: int
    cell_px: int | None = 4
    height: int | None = None
    width: int | None = None

    def render(
        self, task, puzzles: list, solutions: list, themes: list | None = None, num_frames: int | None = None
    ) -> np.ndarray:
        """uint8 [B, F, H, W, 3]: each puzzle's solution video (num_frames=1: the puzzle frame)."""
        f = self.num_frames if num_frames is None else num_frames
        return np.stack(
            [
                task.render(
                    p,
                    sol,
                    num_frames=f,
                    height=self.height,
                    width=self.width,
                    theme=themes[i] if themes else 0,
                    cell_px=self.cell_px,
                )
                for i, (p, sol) in enumerate(zip(puzzles, solutions))
            ]
        )

    def first_frames(self, task, puzzles: list, themes: list | None = None) -> np.ndarray:
        """uint8 [B, H, W, 3]: each puzzle's frame 0 (what ``render`` gives as frame 0), painted from
        the task's ``base_states`` (no solving for the built-in tasks)."""
        out = []
        for i, p in enumerate(puzzles):
            theme = themes[i] if themes else 0
            layout = task.render_layout(p, self.height, self.width, self.cell_px)
            out.append(task.paint(p, np.asarray(task.base_states(p), np.int8)[None], layout, theme)[0])
        return np.stack(out)


class SolutionStream:
    """Deterministic stream of training batches: puzzles from seeds ``seed + position`` (position
    advances on every draw, rejected or not), the held-out keys rejected, rendered with their
    ground-truth solutions. Batch k uses size ``sizes[k % len(sizes)]`` (one frame size per batch)
    and puzzle i theme ``themes[i % len(themes)]``. ``state()`` / ``load_state()`` make resume exact.
    """

    def __init__(
        self,
        task,
        sizes: list[int],
        heldout: set[str],
        seed: int,
        video: VideoSpec,
        themes: list | None = None,
        options: dict | None = None,
    ):
        self.task, self.sizes, self.heldout, self.seed, self.video = task, list(sizes), heldout, seed, video
        self.options = dict(options or {})
        self.themes = list(themes or [0])
        self.position = 0
        self.batches = 0
        self.rejected = 0

    def state(self) -> dict:
        return {"position": self.position, "batches": self.batches, "rejected": self.rejected}

    def load_state(self, state: dict) -> None:
        self.position, self.batches, self.rejected = state["position"], state["batches"], state["rejected"]

    def next_batch(self, batch_size: int) -> tuple[np.ndarray, list[str], list[int]]:
        """-> (videos uint8 [B, F, H, W, 3], prompts, seeds)."""
        size = self.sizes[self.batches % len(self.sizes)]
        self.batches += 1
        puzzles, seeds, themes = [], [], []
        misses = 0
        while len(puzzles) < batch_size:
            s = self.seed + self.position
            self.position += 1
            p = self.task.generate(s, size, **self.options)
            if self.task.canonical_key(p) in self.heldout:
                self.rejected += 1
                misses += 1
                if misses > 1000 * batch_size:
                    raise ValueError(
                        f"{self.task.name} size {size}: nearly every puzzle is held out; "
                        "lower heldout.n or train on larger sizes"
                    )
                continue
            puzzles.append(p)
            seeds.append(s)
            themes.append(self.themes[(self.position - 1) % len(self.themes)])
        videos = self.video.render(self.task, puzzles, [self.task.solve(p) for p in puzzles], themes)
        return videos, [self.task.prompt(p) for p in puzzles], seeds


class FolderStream(SolutionStream):
    """Training batches from a `vrlvr data` folder: its metadata.jsonl puzzles (text) and
    solutions, re-rendered exactly at the training geometry (the folder's MP4s are lossy H.264 and
    may have another frame size). Held-out keys are dropped when the folder is read; samples are
    visited in a seeded random order, epoch after epoch; each batch takes one size in turn."""

    def __init__(
        self, folder: str | Path, task, sizes: list[int], heldout: set[str], seed: int, video: VideoSpec
    ):
        super().__init__(task, sizes, heldout, seed, video)
        meta = Path(folder) / "metadata.jsonl"
        if not meta.is_file():
            raise FileNotFoundError(f"data.dir {folder} has no metadata.jsonl (make one with `vrlvr data`)")
        by_size: dict[int, list[dict]] = {s: [] for s in self.sizes}
        for line in meta.read_text().splitlines():
            rec = json.loads(line)
            if rec["task"] != task.name:
                raise ValueError(f"{meta} holds {rec['task']!r} puzzles, not {task.name!r}")
            if rec["canonical_key"] in heldout:
                self.rejected += 1
            elif rec["size"] in by_size:
                by_size[rec["size"]].append(rec)
        empty = [s for s, recs in by_size.items() if not recs]
        if empty:
            raise ValueError(f"{meta}: no training puzzles of size(s) {empty} outside the held-out set")
        self.records = by_size
        self._folder = Path(folder)

    def next_batch(self, batch_size: int) -> tuple[np.ndarray, list[str], list[int]]:
        size = self.sizes[self.batches % len(self.sizes)]
        self.batches += 1
        recs = self.records[size]
        picked = []
        for _ in range(batch_size):
            epoch, i = divmod(self.position, len(recs))
            order = np.random.default_rng([self.seed, size, epoch]).permutation(len(recs))
            picked.append(recs[order[i]])
            self.position += 1
        puzzles = [
            self.task.from_text(r["puzzle_text"]) if "puzzle_text" in r else self._read_puzzle(r)
            for r in picked
        ]
        themes = [r.get("theme", 0) for r in picked]
        videos = self.video.render(self.task, puzzles, [r["solution"] for r in picked], themes)
        return videos, [r["prompt"] for r in picked], [r["seed"] for r in picked]

    def _read_puzzle(self, rec: dict):
        return self.task.from_text((self._folder / rec["puzzle"]).read_text())
