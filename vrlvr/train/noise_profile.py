"""Where in the sampling trajectory does noise decide a puzzle's outcome? (choosing ``grpo.sde_window``)

GRPO learns from the spread of outcomes within a group, and the policy gradient of window step k
can only credit what the noise of step k changed. ``noise_profile`` measures that per step: for
each sampling step k of T, G rollouts per puzzle share one initial noise and differ only by SDE
noise injected at step k (Euler ODE at every other step, the trainer's rollout with the window
[k, k + 1) and ``shared_start``). Within-group spread at step k is what noise there can change;
a step whose groups never vary gives GRPO nothing to learn from, so Early-Step Focus should cover
the steps where the spread is.

Returns one dict per step::

    {"step": k, "sigma": sigma_k, "success_rate", "groups_varying" (share of puzzles whose G
     outcomes differ), "success_std", "reward_std", "f1_std" (mean within-group std)}
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlvr.models.schedule import flow_sigmas
from vrlvr.train.data import EvalPuzzle, VideoSpec
from vrlvr.train.evaluate import verify_group
from vrlvr.train.rollout import GroupBucket, sample_rollouts

__all__ = ["noise_profile"]


@torch.no_grad()
def noise_profile(
    policy,
    task,
    puzzles: list[EvalPuzzle],
    video: VideoSpec,
    num_steps: int = 10,
    shift: float = 1.0,
    eta: float = 0.7,
    mode: str = "sde",
    group_size: int = 8,
    seed: int = 0,
    theme: int = 0,
    batch_size: int = 32,
    steps: list[int] | None = None,
    progress: bool = True,
    noise_block: int = 1,
) -> list[dict]:
    """Per sampling step (all T, or ``steps``): outcome spread within groups of ``group_size`` rollouts
    that share their start and take SDE noise at that step only (see the module docstring).
    ``noise_block``: the trainer's ``grpo.noise_block`` (noise per k x k block of latent pixels)."""
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (a spread needs two rollouts), got {group_size}")
    todo = list(range(num_steps)) if steps is None else [int(k) for k in steps]
    bad = [k for k in todo if not 0 <= k < num_steps]
    if bad:
        raise ValueError(f"steps {bad} are outside [0, {num_steps}) sampling steps")
    sigmas = flow_sigmas(num_steps, shift)
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(puzzles):
        by_size[p.size].append(i)
    per_group = max(1, batch_size // group_size)  # puzzles per rollout call
    chunks = [idx[b0 : b0 + per_group] for idx in by_size.values() for b0 in range(0, len(idx), per_group)]
    # one bucket per chunk, for every step alike (the first frames are rendered once)
    buckets = []
    for chunk in chunks:
        ps = [puzzles[i].puzzle for i in chunk]
        buckets.append(
            GroupBucket(
                task=task,
                puzzle_index=[puzzles[i].seed for i in chunk],  # the start depends on the puzzle alone
                puzzles=ps,
                themes=[theme] * len(ps),
                first_frames=video.first_frames(task, ps, [theme] * len(ps)),
                prompts=[task.prompt(p) for p in ps],
            )
        )
    bar = tqdm(total=len(todo) * len(chunks), desc="noise profile", disable=not progress, leave=False)
    out = []
    for k in todo:
        succ, reward, f1 = (np.zeros((len(puzzles), group_size)) for _ in range(3))
        for chunk, bucket in zip(chunks, buckets):
            ps = bucket.puzzles
            r = sample_rollouts(
                policy,
                bucket,
                group_size,
                video.num_frames,
                sigmas,
                (k, k + 1),
                eta,
                mode,
                seed,
                0,
                batch_size,
                shared_start=True,
                noise_block=noise_block,
            )
            verdicts = verify_group(task, [p for p in ps for _ in range(group_size)], r.videos, theme)
            rows = np.array(chunk)
            succ[rows] = np.array([float(v.success) for v in verdicts]).reshape(len(ps), group_size)
            reward[rows] = np.array([float(v.reward) for v in verdicts]).reshape(len(ps), group_size)
            f1[rows] = np.array([float(v.f1 or 0.0) for v in verdicts]).reshape(len(ps), group_size)
            bar.update(1)
        out.append(
            {
                "step": k,
                "sigma": float(sigmas[k]),
                "success_rate": float(succ.mean()),
                "groups_varying": float(np.mean(succ.std(axis=1) > 0)),
                "success_std": float(succ.std(axis=1).mean()),
                "reward_std": float(reward.std(axis=1).mean()),
                "f1_std": float(f1.std(axis=1).mean()),
            }
        )
    bar.close()
    return out
