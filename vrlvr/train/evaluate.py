"""Generate on puzzles, verify, and aggregate the paper's metrics.

``evaluate(policy, task, puzzles, ...)`` groups puzzles by size (one frame size per batch),
generates videos with Euler ODE sampling from each puzzle's first frame and prompt, verifies them
(one batched verifier call per group for tasks with registered rules) and returns::

    {"n", "success_rate", "loose_success_rate", "precision", "recall", "f1", "mean_reward",
     "components": {name: mean}, "per_size": {size: {the same keys}}}

"loose" success is the verifier's looser criterion where it reports one (maze: the
``paper_success`` component, the VideoRLVR paper's "S and G connected, no paint on walls"),
otherwise the strict success.

``puzzle_share(success, samples)``: from per-puzzle success rates over several videos each, how
much of whether a video succeeds is the puzzle's doing (solves some puzzles reliably, or every
puzzle at the same odds?).

``evaluate_baselines(task, puzzles, video)`` scores the task's trivial baselines
(``vrlvr.verify.baselines``: held still, flood, the best cheap hack) on the same puzzles, frames
and theme, so a model's numbers can be read against them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlvr.models.sampling import generate_videos
from vrlvr.train.data import EvalPuzzle, VideoSpec

__all__ = ["loose_success", "verify_group", "evaluate", "aggregate", "evaluate_baselines", "BASELINE_KEYS"]


def verify_group(task, puzzles: list, videos: np.ndarray, theme: int | str | list = 0, config=None) -> list:
    """Verdicts of videos uint8 [B, F, H, W, 3] against their puzzles: one batched verifier call
    (``vrlvr.verify.verify_batch``; theme: one for all or one per video; config: the task's reward
    config, None = its defaults) for tasks with registered rules, ``task.verify_video`` otherwise."""
    from vrlvr.verify import RULES, verify_batch

    if task.name in RULES:
        return list(verify_batch(task, puzzles, videos, themes=theme, config=config))
    return [task.verify_video(p, v) for p, v in zip(puzzles, videos)]


LOOSE_KEYS = ("paper_success", "loose_success")


def loose_success(verdict) -> float:
    """The verifier's looser success criterion where it reports one (maze: the paper's), else success."""
    for key in LOOSE_KEYS:
        if key in verdict.components:
            return float(verdict.components[key])
    return float(verdict.success)


def puzzle_share(success, samples: int) -> float | None:
    """How much of whether a video succeeds is the puzzle's doing: the intraclass correlation of the
    0/1 outcomes of ``samples`` videos per puzzle (one-way ANOVA estimator, ICC(1)), from the
    per-puzzle success rates ``success`` [n_puzzles] (NaN rows skipped). 1: every puzzle is always
    or never solved; 0: every puzzle is solved at the same rate, so the noise alone decides which
    videos succeed (below 0 by chance, down to -1 / (samples - 1)). None when undefined: one sample
    per puzzle (no within-puzzle spread to compare with), fewer than two puzzles, or no variance at
    all (success 0 or 1 everywhere)."""
    s = np.asarray(success, dtype=float)
    s = s[~np.isnan(s)]
    n, k = len(s), int(samples)
    if k < 2 or n < 2:
        return None
    between = k * np.sum((s - s.mean()) ** 2) / (n - 1)  # mean square between puzzles
    within = k * np.sum(s * (1 - s)) / (n * (k - 1))  # mean square within puzzles (0/1 outcomes)
    denom = between + (k - 1) * within
    return None if denom <= 0 else float((between - within) / denom)


def aggregate(verdicts: list) -> dict:
    n = len(verdicts)
    if n == 0:
        return {"n": 0}

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return float(np.mean(xs)) if xs else None

    comps: dict[str, list[float]] = defaultdict(list)
    for v in verdicts:
        for k, x in v.components.items():
            comps[k].append(float(x))
    return {
        "n": n,
        "success_rate": mean([float(v.success) for v in verdicts]),
        "loose_success_rate": mean([loose_success(v) for v in verdicts]),
        "precision": mean([v.precision for v in verdicts]),
        "recall": mean([v.recall for v in verdicts]),
        "f1": mean([v.f1 for v in verdicts]),
        "mean_reward": mean([float(v.reward) for v in verdicts]),
        "components": {k: float(np.mean(x)) for k, x in sorted(comps.items())},
    }


@torch.no_grad()
def evaluate(
    policy,
    task,
    puzzles: list[EvalPuzzle],
    video: VideoSpec,
    num_steps: int = 10,
    shift: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    theme: int | str = 0,
    progress: bool = True,
    keep_videos: bool = False,
    sde=None,
) -> tuple[dict, list]:
    """-> (metrics, records); records hold per puzzle {seed, size, key, verdict[, video]}.
    ``sde``: a ``vrlvr.models.sampling.SdeWindow`` to sample as the trainer rolls out (None: Euler)."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(puzzles):
        by_size[p.size].append(i)
    records: list[dict | None] = [None] * len(puzzles)
    bar = tqdm(total=len(puzzles), desc="eval", unit="video", disable=not progress, leave=False)
    for idx in by_size.values():
        for b0 in range(0, len(idx), batch_size):
            chunk = [puzzles[i] for i in idx[b0 : b0 + batch_size]]
            ps = [c.puzzle for c in chunk]
            first = video.first_frames(task, ps, [theme] * len(ps))  # [B, H, W, 3], no solving
            videos = generate_videos(
                policy,
                first,
                [task.prompt(p) for p in ps],
                video.num_frames,
                num_steps,
                shift,
                seed=seed + chunk[0].seed,
                sde=sde,
            )  # [B, F, H, W, 3]
            for c, i, vid, verdict in zip(
                chunk, idx[b0 : b0 + batch_size], videos, verify_group(task, ps, videos, theme)
            ):
                rec = {"seed": c.seed, "size": c.size, "key": c.key, "verdict": verdict}
                if keep_videos:
                    rec["video"] = vid
                records[i] = rec
            bar.update(len(chunk))
    bar.close()
    return summarise(records), records


#: noise seed stride between the samples of one puzzle: a batch's noise seed is seed + its first
#: puzzle's seed, so the stride stays far beyond any span of puzzle seeds (samples never share noise)
SAMPLE_STRIDE = 1_000_003


def evaluate_samples(
    policy,
    task,
    puzzles: list[EvalPuzzle],
    video: VideoSpec,
    num_steps: int,
    shift: float,
    batch_size: int,
    samples: int = 1,
    seed: int = 0,
    **kwargs,
) -> list[list[dict]]:
    """``samples`` videos per puzzle: ``evaluate`` once per sample, sample j with noise seed
    ``seed + SAMPLE_STRIDE * j`` -> records [samples][n puzzles] (``summarise`` pools them)."""
    return [
        evaluate(
            policy,
            task,
            puzzles,
            video,
            num_steps,
            shift,
            batch_size,
            seed=seed + SAMPLE_STRIDE * j,
            **kwargs,
        )[1]
        for j in range(samples)
    ]


def summarise(records: list[dict]) -> dict:
    """aggregate() over the records' verdicts, plus a ``per_size`` breakdown (without components).
    Records of several samples of the same puzzles pool as one evaluation of all their videos."""
    metrics = aggregate([r["verdict"] for r in records])
    metrics["per_size"] = {
        str(size): {
            k: v
            for k, v in aggregate([r["verdict"] for r in records if r["size"] == size]).items()
            if k != "components"
        }
        for size in sorted({r["size"] for r in records})
    }
    return metrics


BASELINE_KEYS = ("success_rate", "loose_success_rate", "precision", "recall", "f1", "mean_reward")


def evaluate_baselines(
    task, puzzles: list[EvalPuzzle], video: VideoSpec, theme: int | str = 0, names=None
) -> dict[str, dict]:
    """{baseline name: {success_rate, loose_success_rate, precision, recall, f1, mean_reward}} of the
    task's trivial baselines on ``puzzles``, painted with ``video``'s frames and ``theme`` and
    verified like a model's videos ({} for a task without baselines)."""
    from vrlvr.verify.baselines import BASELINES, baseline_states

    names = BASELINES.get(task.name, ()) if names is None else tuple(names)
    by_size: dict[int, list[EvalPuzzle]] = defaultdict(list)
    for p in puzzles:
        by_size[p.size].append(p)
    out = {}
    for name in names:
        verdicts = []
        for group in by_size.values():  # one frame size per group: one batched verifier call
            ps = [g.puzzle for g in group]
            videos = np.stack(
                [
                    task.paint(
                        p,
                        baseline_states(task, p, name, video.num_frames),
                        task.render_layout(p, video.height, video.width, video.cell_px),
                        theme,
                    )
                    for p in ps
                ]
            )  # uint8 [B, F, H, W, 3]
            verdicts += verify_group(task, ps, videos, theme)
        metrics = aggregate(verdicts)
        out[name] = {k: metrics[k] for k in BASELINE_KEYS}
    return out
