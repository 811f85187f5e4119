"""Datasets of puzzles, first frames, solution videos and metadata.jsonl (what `vrlvr data` writes).

Seeds: sample streams are split-dependent so train and test never share a puzzle seed: stream
position k (k = --seed, --seed + 1, ...) uses puzzle seed 2k for "train" and 2k + 1 for "test".
Positions whose puzzle is excluded (its canonical key is in an --exclude file, or a repeat within
the run when unique=True) are skipped, so the n samples are the first n accepted positions.
Sizes cycle through ``sizes`` by stream position; theme "random" draws a theme per sample from
its seed.

Output folder::

    metadata.jsonl        one JSON object per sample, in index order
    dataset.json          the arguments and counts
    puzzles/<id>.txt      the puzzle in the task's text format
    frames/<id>.png       frame 0 (the puzzle as the model sees it)
    videos/<id>.mp4       the solution video (H.264, yuv420p; see video_io for odd sizes)

A metadata line: id, task, split, index, seed, size, theme, prompt, puzzle / first_frame / video
(paths relative to the folder), solution (plain form), num_actions, num_frames, layout
(Layout.to_dict(): grid_shape, height, width, bbox), canonical_key, options.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vrlvr.tasks.video_io import X264_PRESETS

__all__ = ["DatasetSpec", "puzzle_seed", "build_dataset", "read_keys", "SPLITS", "X264_PRESETS"]

SPLITS = ("train", "test")
# what a `vrlvr data` folder holds: --overwrite empties only folders that look like this
_DATASET_MARKERS = ("metadata.jsonl", "dataset.json")


def puzzle_seed(position: int, split: str) -> int:
    """The puzzle seed of stream position ``position`` in ``split`` (train even, test odd)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return 2 * int(position) + SPLITS.index(split)


@dataclass
class DatasetSpec:
    task: str
    n: int
    out: str
    seed: int = 0
    split: str = "train"
    sizes: tuple[int, ...] | None = None
    num_frames: int = 81
    height: int | None = None
    width: int | None = None
    cell_px: int | None = None
    theme: int | str = 0
    options: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    video: bool = True
    fps: int = 16
    crf: int = 18
    preset: str = "ultrafast"
    unique: bool = False
    exclude_keys: frozenset[str] = frozenset()
    progress: bool = True
    overwrite: bool = False

    def validate(self) -> None:
        from vrlvr.tasks import get
        from vrlvr.tasks.themes import theme_index

        task = get(self.task)
        if self.n < 1:
            raise ValueError(f"--n must be >= 1, got {self.n}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        if self.split not in SPLITS:
            raise ValueError(f"--split must be one of {SPLITS}, got {self.split!r}")
        if not self.sizes:
            self.sizes = tuple(getattr(task, "default_sizes", ()) or ())
            if not self.sizes:
                raise ValueError(f"task {self.task!r} has no default sizes; pass --sizes")
        if self.num_frames < 2:
            raise ValueError(f"--num-frames must be >= 2 (frame 0 is the puzzle), got {self.num_frames}")
        if self.fps < 1:
            raise ValueError(f"--fps must be >= 1, got {self.fps}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"--crf must lie in 0..51 (x264's range; 18: visually lossless), got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"unknown --preset {self.preset!r}; x264 presets: {', '.join(X264_PRESETS)}")
        for name in ("cell_px", "height", "width"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.cell_px is not None:
            if self.height is not None or self.width is not None:
                raise ValueError("give either --cell-px or --height/--width, not both")
        else:
            if (self.height is None) != (self.width is None):
                raise ValueError("--height and --width go together")
            if self.height is None:
                self.height, self.width = 480, 832
        if self.theme != "random":
            theme_index(self.theme)
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        for size in self.sizes:
            # a bad size or difficulty option fails here, in one line, not in a worker
            try:
                task.generate(puzzle_seed(self.seed, self.split), size, **self.options)
            except TypeError as exc:
                raise ValueError(f"task {task.name!r} does not take these --option values: {exc}") from None


def _prepare_out(out: str, overwrite: bool) -> bool:
    """Refuse a non-empty output folder unless overwrite (then empty it, if it is a dataset folder):
    old videos must never sit beside new metadata. Returns whether the folder is ours to remove on
    failure (it was created or emptied here): whether it existed before."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file, not a folder")
    if not os.path.isdir(out):
        os.makedirs(out)
        return False
    if not os.listdir(out):
        return True
    if not overwrite:
        raise ValueError(
            f"--out {out} is not empty: pass --overwrite to replace the dataset there, or another --out"
        )
    if not any(os.path.exists(os.path.join(out, m)) for m in _DATASET_MARKERS):
        raise ValueError(
            f"--out {out} is not empty and holds no metadata.jsonl, so it is not a vrlvr data folder: "
            "--overwrite only replaces datasets; choose another --out"
        )
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return True


def _remove_partial(out: str, existed: bool) -> None:
    """After a failure: remove what this run wrote, so no 0-byte video or .tmp file is left (the
    folder was empty or created here, so everything in it is ours)."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def read_keys(path: str) -> frozenset[str]:
    """The canonical keys of a metadata.jsonl (or of the metadata.jsonl in a folder)."""
    if os.path.isdir(path):
        path = os.path.join(path, "metadata.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--exclude {path}: no such metadata.jsonl")
    keys = set()
    with open(path) as fh:
        for i, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    keys.add(json.loads(line)["canonical_key"])
                except (ValueError, KeyError) as exc:
                    raise ValueError(
                        f"{path}: line {i} is not a metadata line with canonical_key: {exc}"
                    ) from None
    return frozenset(keys)


# --- workers ----------------------------------------------------------------------------------


def _generate(job: tuple[str, int, int, str, dict]) -> dict:
    """Phase 1 (cheap, small result): generate and solve one puzzle."""
    from vrlvr.tasks import get

    task_name, position, size, split, options = job
    task = get(task_name)
    seed = puzzle_seed(position, split)
    puzzle, solution = task.generate_with_solution(seed, size, **options)
    return {
        "position": position,
        "seed": seed,
        "size": size,
        "puzzle_text": puzzle.to_text(),
        "solution": task.plain_solution(solution),
        "canonical_key": task.canonical_key(puzzle),
    }


def _write(job: tuple[DatasetSpec, int, dict]) -> dict:
    """Phase 2: render, write files, return the metadata line."""
    from vrlvr.tasks import get
    from vrlvr.tasks.themes import THEMES, theme_index
    from vrlvr.tasks.video_io import write_mp4, write_png

    spec, index, item = job
    task = get(spec.task)
    puzzle = task.from_text(item["puzzle_text"])
    solution = item["solution"]
    if spec.theme == "random":
        theme = int(np.random.default_rng([item["seed"], 0x7E]).integers(len(THEMES)))
    else:
        theme = theme_index(spec.theme)
    layout = task.render_layout(puzzle, spec.height, spec.width, spec.cell_px)
    frames = task.paint(puzzle, task.frame_states(puzzle, solution, spec.num_frames), layout, theme)
    sid = f"{task.name}_{spec.split}_{index:06d}"
    paths = {"puzzle": f"puzzles/{sid}.txt", "first_frame": f"frames/{sid}.png"}
    with open(os.path.join(spec.out, paths["puzzle"]), "w") as fh:
        fh.write(item["puzzle_text"])
    write_png(os.path.join(spec.out, paths["first_frame"]), frames[0])
    if spec.video:
        paths["video"] = f"videos/{sid}.mp4"
        threads = 1 if spec.workers > 1 else 0  # parallel workers already fill the cores
        write_mp4(os.path.join(spec.out, paths["video"]), frames, spec.fps, spec.crf, spec.preset, threads)
    return {
        "id": sid,
        "task": task.name,
        "split": spec.split,
        "index": index,
        "seed": item["seed"],
        "size": item["size"],
        "theme": theme,
        "prompt": task.prompt(puzzle),
        **paths,
        "solution": solution,
        "num_actions": len(task.solution_actions(puzzle, solution)),
        "num_frames": spec.num_frames,
        "layout": layout.to_dict(),
        "canonical_key": item["canonical_key"],
        "options": spec.options,
    }


def _pool(workers: int):
    if workers <= 1:
        return None
    method = "fork" if "fork" in mp.get_all_start_methods() and sys.platform == "linux" else None
    return mp.get_context(method).Pool(workers)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="puzzle", disable=not enabled, dynamic_ncols=True)


def build_dataset(spec: DatasetSpec) -> dict:
    """Write the dataset described by ``spec``; returns the summary also saved as dataset.json."""
    spec.validate()
    from vrlvr.tasks import get

    task = get(spec.task)  # fail early in the parent (bad name, bad path)
    existed = _prepare_out(spec.out, spec.overwrite)
    try:
        return _build(spec, task)
    except BaseException:
        _remove_partial(spec.out, existed)
        raise


def _build(spec: DatasetSpec, task) -> dict:
    for sub in ("puzzles", "frames") + (("videos",) if spec.video else ()):
        os.makedirs(os.path.join(spec.out, sub), exist_ok=True)
    meta_path = os.path.join(spec.out, "metadata.jsonl")
    # warm up before forking (numba solvers load or compile once, workers inherit them)
    task.generate_with_solution(puzzle_seed(spec.seed, spec.split), spec.sizes[0], **spec.options)
    pool = _pool(spec.workers)
    try:
        # phase 1: walk the seed stream until n puzzles are accepted
        accepted: list[dict] = []
        seen: set[str] = set()
        skipped = 0
        position = spec.seed
        max_positions = spec.seed + 20 * spec.n + 1000
        with _progress(spec.n, f"{task.name} puzzles", spec.progress) as bar:
            while len(accepted) < spec.n:
                if position >= max_positions:
                    raise ValueError(
                        f"only {len(accepted)} of {spec.n} acceptable {task.name} puzzles in "
                        f"{max_positions - spec.seed} seeds: the excluded/unique constraints leave too few "
                        f"puzzles at sizes {list(spec.sizes)}"
                    )
                need = spec.n - len(accepted)
                batch = min(max_positions - position, need + need // 8 + 4)
                jobs = [
                    (spec.task, p, spec.sizes[(p - spec.seed) % len(spec.sizes)], spec.split, spec.options)
                    for p in range(position, position + batch)
                ]
                position += batch
                results = (
                    pool.imap(_generate, jobs, chunksize=8) if pool is not None else map(_generate, jobs)
                )
                for item in results:
                    key = item["canonical_key"]
                    if len(accepted) >= spec.n:
                        break
                    if key in spec.exclude_keys or (spec.unique and key in seen):
                        skipped += 1
                        continue
                    seen.add(key)
                    accepted.append(item)
                    bar.update(1)
        # phase 2: render and write, metadata in index order
        light = dataclasses.replace(spec, exclude_keys=frozenset())  # workers do not need the keys
        jobs2 = [(light, i, item) for i, item in enumerate(accepted)]
        with (
            open(meta_path + ".tmp", "w") as fh,
            _progress(spec.n, f"{task.name} videos", spec.progress) as bar,
        ):
            it = pool.imap(_write, jobs2, chunksize=4) if pool is not None else map(_write, jobs2)
            for line in it:
                fh.write(json.dumps(line) + "\n")
                bar.update(1)
        os.replace(meta_path + ".tmp", meta_path)
    except BaseException:
        # an error or Ctrl-C: stop the workers now instead of letting them finish queued videos
        if pool is not None:
            pool.terminate()
            pool.join()
        raise
    if pool is not None:
        pool.close()
        pool.join()
    summary = {
        "task": task.name,
        "split": spec.split,
        "n": spec.n,
        "seed": spec.seed,
        "seed_positions": [spec.seed, accepted[-1]["position"] + 1],
        "skipped": skipped,
        "sizes": list(spec.sizes),
        "num_frames": spec.num_frames,
        "height": spec.height,
        "width": spec.width,
        "cell_px": spec.cell_px,
        "theme": spec.theme,
        "options": spec.options,
        "video": spec.video,
    }
    with open(os.path.join(spec.out, "dataset.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    return summary
