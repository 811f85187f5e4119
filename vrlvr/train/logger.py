"""One metrics logger for every trainer: metrics.jsonl (always) and TensorBoard (when installed).

Each record is a flat-ish dict with a ``step``; numbers (nested dicts flattened with "/") also go
to TensorBoard as scalars. On resume the lines logged after the checkpoint's step are dropped
first (they will be logged again), so metrics.jsonl reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from vrlvr.train.checkpoint import atomic_write_text

__all__ = ["MetricsLogger", "read_metrics", "plot_curves", "update_series"]


def _flatten(rec: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in rec.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


class MetricsLogger:
    def __init__(self, run_dir: str | Path, enabled: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        elif self.path.is_file():
            keep = [ln for ln in read_lines(self.path) if json.loads(ln).get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))
        try:  # TensorBoard is optional: `pip install tensorboard` turns it on
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        except ImportError:
            self._tb = None

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = int(record.get("step", 0))
            tag = record.get("tag") or ""
            task = record.get("task") or ""
            prefix = "/".join(x for x in (tag, task) if x)
            # wall_time: tensorboard keeps its own with every event (and a float32 scalar would round it)
            for k, v in _flatten(
                {kk: vv for kk, vv in record.items() if kk not in ("step", "wall_time")}
            ).items():
                self._tb.add_scalar(f"{prefix}/{k}" if prefix else k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip()]


def read_metrics(path: str | Path) -> list[dict]:
    p = Path(path)
    return [json.loads(ln) for ln in read_lines(p)] if p.is_file() else []


def update_series(train: list[dict], key: str) -> list[float]:
    """An update statistic (kl, clip_frac, loss, ...) per step record, NaN where the step trained no
    group (logged null, or 0 with contributing 0 by runs made before the trainer logged null): a gap
    in the curve, not a measured 0."""
    out = []
    for r in train:
        v = r.get(key)
        out.append(float("nan") if v is None or r.get("contributing") == 0 else float(v))
    return out


def plot_curves(metrics_path: str | Path, out_png: str | Path) -> Path | None:
    """curves.png: reward, exact and loose success, held-out precision / recall / F1, KL, clip
    fraction and the share of zero-variance groups over steps (training rollouts as lines,
    held-out evaluations as markers). None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    recs = read_metrics(metrics_path)
    train = [r for r in recs if "reward_mean" in r]
    evals = [r for r in recs if "eval" in r]
    if not train:
        return None
    steps = [r["step"] for r in train]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    ax = axes[0, 0]
    ax.plot(steps, [r["reward_mean"] for r in train], label="rollout reward")
    for task in sorted({e.get("task") for e in evals}):
        pts = [e for e in evals if e.get("task") == task]
        ax.plot(
            [e["step"] for e in pts], [e["eval"]["mean_reward"] for e in pts], "o--", label=f"held-out {task}"
        )
    ax.set_title("reward")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.plot(steps, [r["success_rate"] for r in train], label="rollout exact")
    ax.plot(steps, [r["loose_success_rate"] for r in train], label="rollout loose")
    for task in sorted({e.get("task") for e in evals}):
        pts = [e for e in evals if e.get("task") == task]
        ax.plot(
            [e["step"] for e in pts],
            [e["eval"]["success_rate"] for e in pts],
            "o--",
            label=f"held-out {task} exact",
        )
        ax.plot(
            [e["step"] for e in pts],
            [e["eval"]["loose_success_rate"] for e in pts],
            "s:",
            label=f"held-out {task} loose",
        )
    ax.set_title("success")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    for task in sorted({e.get("task") for e in evals}):
        pts = [e for e in evals if e.get("task") == task]
        for key, style in (("precision", "^:"), ("recall", "v:"), ("f1", "o--")):
            vals = [e["eval"].get(key) for e in pts]
            if any(v is not None for v in vals):
                ax.plot(
                    [e["step"] for e in pts],
                    [float("nan") if v is None else v for v in vals],
                    style,
                    label=f"held-out {task} {key}",
                )
    ax.set_title("held-out precision / recall / F1")
    if ax.lines:
        ax.legend(fontsize=7)
    kl = update_series(train, "kl")
    axes[1, 0].plot(steps, kl)
    # 0 after step 1 means either a run that never updated (every group skipped) or one made
    # before the trainer logged the KL with grpo.beta = 0: the title says so rather than guess
    moved = any(math.isfinite(v) and v != 0.0 for v in kl[1:])  # NaN: no update that step
    axes[1, 0].set_title("KL to the reference policy" + ("" if moved else " (0: no update, or not logged)"))
    axes[1, 1].plot(steps, update_series(train, "clip_frac"))
    axes[1, 1].set_title("clip fraction")
    axes[1, 2].plot(steps, [r.get("frac_zero_std", float("nan")) for r in train])
    axes[1, 2].set_title("groups without reward variance (skipped)")
    for a in axes.flat:
        a.set_xlabel("step")
        a.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png
