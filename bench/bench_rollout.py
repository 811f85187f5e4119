"""SDE-GRPO step benchmark: rollout videos/s, the verifier's share of a step, Early-Step Focus (the
SDE window on the first half of the sampling steps vs all of them) and the fused SDE op vs eager torch
inside a real rollout, and the LoRA fold on the Euler steps. JSON on stdout (or --json PATH).

Runs real `vrlvr-train` steps (vrlvr.train.grpo.train_grpo, held-out evaluation off) from the shipped
maze-tiny policy (--init: any trained policy; a random one earns no reward variance, so nothing trains) on 7x7
mazes (28x28 px, 9 frames), B puzzles x G rollouts, T sampling steps, in four configurations:

- ``half``: window [0, ceil(T/2)) (the default, Early-Step Focus), fused SDE op (auto backend);
- ``all``: window [0, T): every step is stochastic and re-scored;
- ``half_eager``: as ``half`` with the SDE step, log-prob and KL in eager torch (VRLVR_BACKEND=torch);
- ``half_unfolded``: as ``half`` with the Euler steps outside the window run by peft's adapted
  forward (W x + s B A x) instead of the adapter folded into W (vrlvr.models.lora_fold; its forward
  alone: bench/bench_lora_fold.py).

Each runs --steps steps; the first is a warm-up and the median of the rest is reported. What bounds a
step: a rollout costs T transformer forwards per video whatever the window; training costs, per window
step and sample, one forward + backward with the adapter and one reference forward, so the step time is
about R + W * t and the ratio half / all tends to (R + T/2 t) / (R + T t) (the paper measured 0.60 with
T = 20). The SDE op itself moves 4 latent-sized tensors per step (x, v, noise, x'), negligible next to a
transformer forward on the CPU; on a GPU with Wan2.2-5B latents it is bandwidth-bound (bench_sde).

    python bench/bench_rollout.py [--steps 3] [--threads 2] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch


@contextlib.contextmanager
def _env(name: str, value: str | None):
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def _unfolded():
    """Rollouts without the LoRA fold: every step runs the adapted forward."""
    from vrlvr.models.policy import VideoPolicy

    saved = VideoPolicy.folded_lora
    VideoPolicy.folded_lora = lambda self: contextlib.nullcontext()
    try:
        yield
    finally:
        VideoPolicy.folded_lora = saved


def run_case(root: Path, init: str, window: list[int], backend: str | None, args, fold: bool = True) -> dict:
    from vrlvr.config import load_config
    from vrlvr.train.grpo import train_grpo
    from vrlvr.train.grpo_config import GRPOConfig
    from vrlvr.train.logger import read_metrics

    out = root / f"run-{window[0]}-{window[1]}-{backend or 'auto'}{'' if fold else '-unfolded'}"
    cfg = load_config(
        GRPOConfig,
        None,
        [
            f"out_dir={out}",
            f"model.init={init}",
            f"device={args.device}",
            f"threads={args.threads}",
            "data.task=maze",
            "data.sizes=[7]",
            "data.num_frames=9",
            "eval.n=0",
            f"sampling.steps={args.T}",
            f"grpo.sde_window={window}",
            f"grpo.prompts_per_step={args.B}",
            f"grpo.group_size={args.G}",
            f"grpo.micro_batch={args.micro_batch}",
            f"optim.steps={args.steps}",
            f"checkpoint_every={args.steps}",
        ],
    )
    with _env("VRLVR_BACKEND", backend), contextlib.nullcontext() if fold else _unfolded():
        train_grpo(cfg, progress=False)
    recs = [r for r in read_metrics(out / "metrics.jsonl") if "step_time_s" in r][1:]  # drop the warm-up
    med = {
        k: statistics.median(r[k] for r in recs)
        for k in ("step_time_s", "rollout_time_s", "verify_time_s", "train_time_s")
    }
    videos = args.B * args.G
    return {
        "window": window,
        "sde_backend": backend or "auto",
        "lora_fold": fold,
        "steps_measured": len(recs),
        **{f"median_{k}": round(v, 4) for k, v in med.items()},
        "rollout_videos_per_s": round(videos / med["rollout_time_s"], 3),
        "verify_share_of_step": round(med["verify_time_s"] / med["step_time_s"], 4),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--steps", type=int, default=3, help="GRPO steps per configuration (the first is warm-up)"
    )
    ap.add_argument("--T", type=int, default=10, help="sampling steps")
    ap.add_argument("--B", type=int, default=4, help="puzzles per step")
    ap.add_argument("--G", type=int, default=8, help="rollouts per puzzle")
    ap.add_argument("--micro-batch", type=int, default=16, help="samples per forward/backward")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--init",
        default="maze-tiny",
        help="policy to start from: a trained one, so that groups have reward variance and training is timed",
    )
    ap.add_argument("--json", metavar="PATH", help="also write the report here")
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is a warm-up)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        init = args.init
        half = [0, (args.T + 1) // 2]
        cases = {
            "half": run_case(root, init, half, None, args),
            "all": run_case(root, init, [0, args.T], None, args),
            "half_eager": run_case(root, init, half, "torch", args),
            "half_unfolded": run_case(root, init, half, None, args, fold=False),
        }
    h, a, e, u = cases["half"], cases["all"], cases["half_eager"], cases["half_unfolded"]
    report = {
        "benchmark": "rollout",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "device": args.device,
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        },
        "setup": {
            "T": args.T,
            "B": args.B,
            "G": args.G,
            "micro_batch": args.micro_batch,
            "frames": 9,
            "px": 28,
        },
        "cases": cases,
        "early_step_focus_step_time_ratio": round(h["median_step_time_s"] / a["median_step_time_s"], 4),
        "early_step_focus_goal": 0.6,
        "fused_vs_eager_rollout_speedup": round(e["median_rollout_time_s"] / h["median_rollout_time_s"], 4),
        "fused_vs_eager_train_speedup": round(e["median_train_time_s"] / h["median_train_time_s"], 4),
        "lora_fold_rollout_speedup": round(u["median_rollout_time_s"] / h["median_rollout_time_s"], 4),
        "early_step_focus_step_time_ratio_unfolded": round(
            u["median_step_time_s"] / a["median_step_time_s"], 4
        ),
    }
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
