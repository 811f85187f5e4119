"""Step times of table 4's runs: the updates timed while both ran, where a step's time goes
(rollouts vs the update per contributing sample), the ratio at equal work, and the drift check
that says when a machine changed speed under a run."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np


def timed_steps(run: Path, until: float | None = None) -> list[dict]:
    """A run's update rows (those with a step time), without the first: a warm-up (allocations,
    first-call compilation) that no median of the timings below should see. ``until`` (seconds
    since the epoch): only the updates that ended by then (runs side by side: while all of them
    ran; rows from before the trainer logged ``wall_time`` are all kept)."""
    from vrlvr.train.logger import read_metrics

    rows = [r for r in read_metrics(run / "metrics.jsonl") if "step_time_s" in r][1:]
    return [r for r in rows if until is None or r.get("wall_time", until) <= until]


def together_until(*runs: Path) -> float | None:
    """When the first of ``runs`` (trained side by side) logged its last update: past it, the
    others ran with the machine to themselves, and their steps no longer compare. None when a run
    has no ``wall_time`` (made before the trainer logged it)."""
    from vrlvr.train.logger import read_metrics

    ends = []
    for run in runs:
        times = [r.get("wall_time") for r in read_metrics(run / "metrics.jsonl") if "step_time_s" in r]
        if not times or any(t is None for t in times):
            return None
        ends.append(max(times))
    return min(ends) if ends else None


def step_times(run: Path, until: float | None = None) -> list[float]:
    return [r["step_time_s"] for r in timed_steps(run, until)]


def phase_times(run: Path, until: float | None = None) -> dict:
    """Median seconds per step of each phase: rollouts (sampling every step of every video; the
    window's steps with the adapter as the update runs it, the others with it folded into the base
    weights, a little cheaper), verify, and the update (forward + backward on the window's steps)."""
    rows = timed_steps(run, until)
    keys = {"rollout": "rollout_time_s", "verify": "verify_time_s", "update": "train_time_s"}
    return {k: statistics.median(r.get(m, 0.0) for r in rows) if rows else 0.0 for k, m in keys.items()}


def step_cost(run: Path, until: float | None = None) -> dict:
    """A run's step time split into what every step pays and what grows with the training it does:
    ``fixed_s`` the rollouts and verification (every sampling step of every video, whatever the
    window but for the adapter folded outside it),
    ``per_sample_s`` the update's time per contributing sample (a forward and backward per
    window step). A sparse-reward step trains only the groups that vary, 0 to all of them from one
    step to the next, so a run's median step follows how many varied in it as much as its window;
    ``fixed_s + per_sample_s * n`` compares two windows at the same training work n. Medians over the
    steps after the first; ``contributing`` each step's contributing samples."""
    rows = timed_steps(run, until)
    return _step_cost(rows) | {"contributing": [int(r.get("contributing", 0)) for r in rows]}


def _step_cost(rows: list[dict]) -> dict:
    fixed = [r.get("rollout_time_s", 0.0) + r.get("verify_time_s", 0.0) for r in rows]
    trained = [r for r in rows if r.get("contributing") and "train_time_s" in r]
    per = [r["train_time_s"] / r["contributing"] for r in trained]
    return {
        "fixed_s": statistics.median(fixed) if fixed else 0.0,
        "per_sample_s": statistics.median(per) if per else 0.0,
    }


#: table4's step times are compared only if neither run's rollouts (the same work every step: B x G
#: videos, every sampling step) took this much longer in one fifth of the run than in another; past
#: it, the machine's speed drifted under the run (another job, a throttled CPU) and the tables say so
DRIFT_LIMIT = 1.2


def rollout_drift(run: Path, parts: int = 5, until: float | None = None) -> float:
    """Slowest over fastest median rollout time of ``parts`` consecutive stretches of a run's steps
    (after the first): about 1 on a steady machine, whatever the window or the reward, since every
    step (every round of dynamic sampling) rolls out the same number of videos over every sampling
    step."""
    rows = [r for r in timed_steps(run, until) if "rollout_time_s" in r]
    times = [r["rollout_time_s"] / max(r.get("rounds", 1), 1) for r in rows]  # dynamic sampling: per round
    parts = min(parts, len(times))
    if parts < 2:
        return 1.0
    meds = [statistics.median(chunk) for chunk in np.array_split(np.array(times), parts)]
    return float(max(meds) / max(min(meds), 1e-9))


def matched_ratio(
    a: Path, b: Path, n: float, reps: int = 2000, seed: int = 0, until: float | None = None
) -> dict:
    """(fixed + per_sample * n) of run ``a`` over run ``b``: their step time ratio at the same training
    work, n contributing samples a step, with a 95% interval from resampling each run's steps."""
    rows = [timed_steps(a, until), timed_steps(b, until)]

    def ratio(ra, rb) -> float:
        ca, cb = _step_cost(ra), _step_cost(rb)
        return (ca["fixed_s"] + ca["per_sample_s"] * n) / max(cb["fixed_s"] + cb["per_sample_s"] * n, 1e-9)

    rng = np.random.default_rng(seed)
    boot = [
        ratio(
            [rows[0][i] for i in rng.integers(0, len(rows[0]), len(rows[0]))],
            [rows[1][i] for i in rng.integers(0, len(rows[1]), len(rows[1]))],
        )
        for _ in range(reps if rows[0] and rows[1] else 0)
    ]
    est = ratio(rows[0], rows[1])
    ci = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if boot else [est, est]
    return {"samples": n, "ratio": est, "ci95": ci}
