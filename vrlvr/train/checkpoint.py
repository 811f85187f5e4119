"""Full training checkpoints, written atomically, and resume.

Layout of a run folder::

    OUT/checkpoints/step_000200/   policy files (policy.json + weights or LoRA adapter),
                                   heldout.json, train_state.pt (optimizer, LR scheduler, RNG
                                   states, step, data position)
    OUT/checkpoints/latest         the name of the newest complete checkpoint

A checkpoint is written into a temporary folder next to its final place and renamed with
``os.replace`` (atomic on one filesystem), then ``latest`` is replaced the same way: a run killed
at any moment leaves either the old or the new checkpoint, never a half-written one.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "save_checkpoint",
    "latest_checkpoint",
    "load_train_state",
    "rng_state",
    "set_rng_state",
    "atomic_write_text",
    "replace_dir",
    "save_final",
]

STATE_FILE = "train_state.pt"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def rng_state(generator: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (global state, saved for resume)
        "python": random.getstate(),
        "generator": generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    generator.set_state(state["generator"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def replace_dir(tmp: Path, final: Path) -> None:
    """Move the complete folder tmp to final, replacing an existing final by renames only (the old
    one is renamed aside first and deleted afterwards), so final is never seen half-written."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    run_dir: Path,
    step: int,
    policy,
    train_state: dict,
    policy_extra: dict,
    heldout_file: Path | None,
    keep: int = 2,
) -> Path:
    if keep < 1:
        raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    for stale in root.glob(".tmp-*"):  # left by a run killed mid-write (one writer per run folder)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    policy.save(tmp, extra=policy_extra)
    if heldout_file is not None and heldout_file.is_file():
        shutil.copy2(heldout_file, tmp / heldout_file.name)
    torch.save({"step": step, **train_state}, tmp / STATE_FILE)
    replace_dir(tmp, final)
    atomic_write_text(root / "latest", final.name + "\n")
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_final(run_dir: Path, policy, policy_extra: dict, heldout_file: Path | None) -> Path:
    """OUT/final/: the policy alone (what ``--checkpoint`` takes) and the held-out record, written
    aside and renamed into place, so a kill never leaves a half-written final/."""
    run_dir = Path(run_dir)
    tmp = run_dir / f".tmp-final-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(tmp, extra=policy_extra)
    if heldout_file is not None and heldout_file.is_file():
        shutil.copy2(heldout_file, tmp / heldout_file.name)
    replace_dir(tmp, run_dir / "final")
    return run_dir / "final"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` names; if that is missing or incomplete, the newest complete one."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if (folder / STATE_FILE).is_file():
            return folder
    done = sorted(p for p in root.glob("step_*") if (p / STATE_FILE).is_file())
    return done[-1] if done else None


def load_train_state(folder: Path) -> dict:
    return torch.load(Path(folder) / STATE_FILE, weights_only=False)
