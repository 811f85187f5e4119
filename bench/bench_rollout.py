"""SDE-GRPO step benchmark: rollout videos/s, the verifier's share of a step, Early-Step Focus (the
SDE window on the first half of the sampling steps vs all of them) and the fused SDE op vs eager torch
inside a real rollout, and the LoRA fold on the Euler steps. JSON on stdout (or --json PATH).

Runs real `vrlvr-train` steps (vrlvr.train.grpo.train_grpo, held-out evaluation off) from the shipped
maze-tiny policy (--init: any trained policy; a random one earns no reward variance, so nothing trains) on 7x7
mazes (28x28 px, 9 frames), B puzzles x G rollouts, T sampling steps, in five configurations:

- ``half``: window [0, ceil(T/2)) (the default, Early-Step Focus), fused SDE op (auto backend);
- ``all``: window [0, T): every step is stochastic and re-scored;
- ``half_eager``: as ``half`` with the SDE step, log-prob and KL in eager torch (VRLVR_BACKEND=torch);
- ``half_unfolded``: as ``half`` with the Euler steps outside the window run by the adapted
  forward (W x + s B A x, vrlvr.models.lora_forward) instead of the adapter folded into W
  (vrlvr.models.lora_fold; its forward alone: bench/bench_lora_fold.py);
- ``half_peft``: as ``half`` with the window's rollout steps and the update in peft's own adapted
  forward instead of vrlvr's fused one (vrlvr.models.lora_forward; alone: bench/bench_lora_forward.py).

``--config`` takes the recipe (policy, data, sampling, window, loss, KL weight, reward) from a trainer
config instead, e.g. ``configs/maze-deep12.yaml``; the window case is then the config's own window
(``--window-end K``: [0, K) in either mode), and --T/--B/--G/--micro-batch override the config only
when given.

Each runs --steps steps, one configuration after the other; the first step is a warm-up and the
median of the rest is reported (on a shared machine whose speed drifts, the ratios drift with it:
compare reruns). What bounds a
step: a rollout costs T transformer forwards per video whatever the window (the window's adapted, the
others folded, a little cheaper); training costs, per window
step and sample, one forward + backward with the adapter and one reference forward, so the step time is
about R + W * t and the ratio half / all tends to (R + T/2 t) / (R + T t) (the paper measured 0.60 with
T = 20). The SDE op itself moves 4 latent-sized tensors per step (x, v, noise, x'), negligible next to a
transformer forward on the CPU; on a GPU with Wan2.2-5B latents it is bandwidth-bound (bench_sde).

    python bench/bench_rollout.py [--steps 3] [--threads 2] [--device cpu] [--json out.json]
    python bench/bench_rollout.py --config configs/maze-deep12.yaml --threads 1   # a shipped recipe
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


@contextlib.contextmanager
def _peft_forward():
    """Policies built meanwhile keep peft's adapted forward (vrlvr.models.lora_forward not applied)."""
    from vrlvr.models import lora_forward

    saved = lora_forward.fuse_lora_forward
    lora_forward.fuse_lora_forward = lambda module, enable=True: 0
    try:
        yield
    finally:
        lora_forward.fuse_lora_forward = saved


def recipe_overrides(args) -> list[str]:
    """What every case shares: the built-in setup (the shipped maze-tiny policy on 7x7 mazes, the
    trainer's defaults otherwise), or with --config that config's recipe; the sizes given on the
    command line override either."""
    sizes = {
        "sampling.steps": args.T,
        "grpo.prompts_per_step": args.B,
        "grpo.group_size": args.G,
        "grpo.micro_batch": args.micro_batch,
    }
    base = [] if args.config else ["data.task=maze", "data.sizes=[7]", "data.num_frames=9"]
    init = args.init or (None if args.config else "maze-tiny")
    return base + [f"{k}={v}" for k, v in {"model.init": init, **sizes}.items() if v is not None]


def run_case(
    root: Path, window: list[int], backend: str | None, args, fold: bool = True, fused: bool = True
) -> dict:
    from vrlvr.config import load_config
    from vrlvr.train.grpo import train_grpo
    from vrlvr.train.grpo_config import GRPOConfig
    from vrlvr.train.logger import read_metrics

    variant = ("" if fold else "-unfolded") + ("" if fused else "-peft")
    out = root / f"run-{window[0]}-{window[1]}-{backend or 'auto'}{variant}"
    cfg = load_config(
        GRPOConfig,
        args.config,
        [
            *recipe_overrides(args),
            f"out_dir={out}",
            f"device={args.device}",
            f"threads={args.threads}",
            "eval.n=0",
            "eval.every=0",
            "max_minutes=0",
            "sample_every=0",
            f"grpo.sde_window={window}",
            f"optim.steps={args.steps}",
            f"checkpoint_every={args.steps}",
        ],
    )
    with (
        _env("VRLVR_BACKEND", backend),
        contextlib.nullcontext() if fold else _unfolded(),
        contextlib.nullcontext() if fused else _peft_forward(),
    ):
        train_grpo(cfg, progress=False)
    recs = [r for r in read_metrics(out / "metrics.jsonl") if "step_time_s" in r][1:]  # drop the warm-up
    med = {
        k: statistics.median(r[k] for r in recs)
        for k in ("step_time_s", "rollout_time_s", "verify_time_s", "train_time_s")
    }
    videos = cfg.grpo.prompts_per_step * cfg.grpo.group_size
    return {
        "window": window,
        "loss": cfg.grpo.loss,  # as trained (from --config, else the trainer's default)
        "init": cfg.model.init,
        "sde_backend": backend or "auto",
        "lora_fold": fold,
        "adapted_forward": "fused" if fused else "peft",
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
    ap.add_argument("--T", type=int, help="sampling steps (default 10, or the --config's)")
    ap.add_argument("--B", type=int, help="puzzles per step (default 4, or the --config's)")
    ap.add_argument("--G", type=int, help="rollouts per puzzle (default 8, or the --config's)")
    ap.add_argument(
        "--micro-batch", type=int, help="samples per forward/backward (default 16, or the --config's)"
    )
    ap.add_argument(
        "--config",
        metavar="YAML",
        help="take the recipe (policy, data, sampling, window, loss, reward) from this trainer config",
    )
    ap.add_argument(
        "--window-end",
        type=int,
        metavar="K",
        help="the window case's window [0, K) (default: the --config's window, else the first half)",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--init",
        help="policy to start from (default maze-tiny, or the --config's): a trained one, so that groups "
        "have reward variance and training is timed",
    )
    ap.add_argument("--json", metavar="PATH", help="also write the report here")
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is a warm-up)")
    if args.config and not Path(args.config).is_file():
        ap.error(f"--config: no such file: {args.config}")
    if not args.config:  # the built-in setup's sizes
        for name, default in (("T", 10), ("B", 4), ("G", 8), ("micro_batch", 16)):
            if getattr(args, name) is None:
                setattr(args, name, default)
    from vrlvr.bench.common import emit, machine
    from vrlvr.config import load_config
    from vrlvr.train.grpo_config import GRPOConfig

    # the recipe as the cases will run it (the config's window and sizes where not overridden)
    recipe = load_config(GRPOConfig, args.config, [*recipe_overrides(args), "out_dir=unused"])
    T = recipe.sampling.steps
    if args.window_end is not None:
        end = args.window_end
        if not 1 <= end <= T:
            ap.error(f"--window-end must be in [1, {T}] (the sampling steps), got {end}")
    else:
        end = recipe.grpo.sde_window[1] if args.config else (T + 1) // 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        half = [0, end]
        cases = {
            "half": run_case(root, half, None, args),
            "all": run_case(root, [0, T], None, args),
            "half_eager": run_case(root, half, "torch", args),
            "half_unfolded": run_case(root, half, None, args, fold=False),
            "half_peft": run_case(root, half, None, args, fused=False),
        }
    h, a, e, u = cases["half"], cases["all"], cases["half_eager"], cases["half_unfolded"]
    pf = cases["half_peft"]
    report = {
        "benchmark": "rollout",
        "machine": machine(
            args.threads,
            device=args.device,
            gpu=torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        ),
        "setup": {
            "config": args.config,
            "init": recipe.model.init,
            "loss": recipe.grpo.loss,
            "beta": recipe.grpo.beta,
            "T": T,
            "B": recipe.grpo.prompts_per_step,
            "G": recipe.grpo.group_size,
            "micro_batch": recipe.grpo.micro_batch,
            "frames": recipe.data.num_frames,
            "cell_px": recipe.data.cell_px,
        },
        "cases": cases,
        "early_step_focus_step_time_ratio": round(h["median_step_time_s"] / a["median_step_time_s"], 4),
        "early_step_focus_goal": 0.6,
        "fused_vs_eager_rollout_speedup": round(e["median_rollout_time_s"] / h["median_rollout_time_s"], 4),
        "fused_vs_eager_train_speedup": round(e["median_train_time_s"] / h["median_train_time_s"], 4),
        "lora_fold_rollout_speedup": round(u["median_rollout_time_s"] / h["median_rollout_time_s"], 4),
        "fused_lora_rollout_speedup": round(pf["median_rollout_time_s"] / h["median_rollout_time_s"], 4),
        "fused_lora_train_speedup": round(pf["median_train_time_s"] / h["median_train_time_s"], 4),
        "early_step_focus_step_time_ratio_unfolded": round(
            u["median_step_time_s"] / a["median_step_time_s"], 4
        ),
    }
    return emit(report, args.json)


if __name__ == "__main__":
    main()
