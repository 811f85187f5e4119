"""SFT baseline: rectified-flow (flow-matching) loss on rendered solution videos.

Per step: draw B training puzzles (held-out keys rejected), render their ground-truth solution
videos, encode them to latents x0 [B, C, f, h, w], draw sigma [B] and noise, and regress the
velocity at x_sigma = (1 - sigma) x0 + sigma noise onto noise - x0, on every latent frame but the
clean conditioning frame 0. AdamW, linear warm-up then cosine (or constant), global-norm clipping.
Full fine-tune for tiny-pixel; LoRA (peft) or full for Wan.

Run folder: config.yaml (resolved), heldout.json, metrics.jsonl (one JSON object per logged step
and per evaluation), checkpoints/ (full state and ``checkpoint_meta``, atomic; ``resume=True``
continues the latest), and final/ (the policy alone: what ``--checkpoint`` takes).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from vrlvr.models.conditioning import generated_frames
from vrlvr.models.policy import VideoPolicy, load_policy, resolve_checkpoint
from vrlvr.models.schedule import sample_train_sigmas
from vrlvr.train.checkpoint import (
    atomic_write_text,
    latest_checkpoint,
    load_train_state,
    rng_state,
    save_checkpoint,
    save_final,
    set_rng_state,
)
from vrlvr.train.data import (
    HELDOUT_FILE,
    FolderStream,
    SolutionStream,
    VideoSpec,
    check_inside_heldout,
    check_options,
    eval_puzzles,
    eval_subset,
    write_heldout,
)
from vrlvr.train.device import resolve_device
from vrlvr.train.evaluate import evaluate
from vrlvr.train.logger import MetricsLogger
from vrlvr.train.run_dir import check_checkpoint_meta, checkpoint_meta
from vrlvr.train.sft_config import ModelConfig, SFTConfig
from vrlvr.verify import RULES

__all__ = ["flow_matching_loss", "build_policy", "lr_lambda", "train_sft", "pick_device", "SFT_FROZEN"]

# what a resumed SFT run may not change: it shapes the model, the task, the data or the optimizer
# state the checkpoint holds (AdamW restores its own lr/betas, so a new value would be ignored)
SFT_FROZEN = (
    "model",
    "data",
    "heldout",
    "sampling",
    "seed",
    "optim.batch_size",
    "optim.lr",
    "optim.weight_decay",
    "optim.betas",
    "optim.warmup_steps",
    "optim.decay",
    "optim.grad_clip",
    "optim.sigma_sampling",
)


def flow_matching_loss(
    policy: VideoPolicy,
    videos,
    prompts: list[str],
    generator: torch.Generator,
    shift: float = 1.0,
    sigma_sampling: str = "logit_normal",
) -> torch.Tensor:
    """Rectified-flow MSE on the generated frames. videos uint8 [B, F, H, W, 3]."""
    x0 = policy.encode(videos)  # [B, C, f, h, w]
    B = x0.shape[0]
    cond = x0[:, :, :1]  # [B, C, 1, h, w] clean frame 0 (causal VAE: the first frame's own latent)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    sigma = sample_train_sigmas(B, shift, sigma_sampling, generator).to(x0.device)  # [B]
    s = sigma.view(B, 1, 1, 1, 1)
    xt = (1 - s) * x0 + s * noise
    v = policy.velocity(xt, sigma, policy.encode_prompts(prompts), cond)  # [B, C, f, h, w]
    return F.mse_loss(generated_frames(v), generated_frames(noise - x0))


def pick_device(name: str) -> torch.device:
    """'auto', 'cpu', 'cuda[:N]' -> torch.device; a clear ValueError for anything unusable."""
    return resolve_device(name)


def build_policy(cfg: ModelConfig, device: torch.device) -> VideoPolicy:
    if cfg.kind == "tiny-pixel":
        if cfg.path:
            policy = load_policy(cfg.path, device=device)
            if cfg.deepen_to:
                from vrlvr.models.tiny import deepen

                policy = deepen(policy, cfg.deepen_to)
            return policy
        from vrlvr.models.tiny import TinyPixelPolicy

        return TinyPixelPolicy(cfg.tiny).to(device)
    from vrlvr.models.wan import WanPolicy

    full = cfg.lora_rank == 0
    # a full fine-tune keeps fp32 master weights (bf16 weights would round small AdamW updates
    # away) and runs the transformer under bf16 autocast on GPUs; LoRA keeps the base as loaded
    policy = WanPolicy.from_folder(
        cfg.path,
        device=device,
        dtype=torch.float32 if full else None,
        max_sequence_length=cfg.max_sequence_length,
    )
    if full and device.type == "cuda":
        policy.autocast_dtype = torch.bfloat16
    if not full:
        policy.add_lora(cfg.lora_rank, cfg.lora_alpha)
    return policy


def lr_lambda(warmup: int, steps: int, decay: str):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if decay == "constant":
            return 1.0
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def train_sft(cfg: SFTConfig, resume: bool = False, progress: bool = True) -> dict:
    """Run SFT as configured (``resume``: continue OUT/checkpoints/latest exactly; its recorded
    config must agree with ``cfg`` on SFT_FROZEN). A fresh start refuses a folder that already
    holds checkpoints: ``vrlvr.train.run_dir.start_run`` decides new / resume / overwrite first.

    Returns {"step": last step, "eval": the final held-out metrics, "minutes": wall time}."""
    from vrlvr import tasks

    t_start = time.time()
    run = Path(cfg.out_dir)
    run.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    task = tasks.get(cfg.data.task)
    d = cfg.data
    ckpt = latest_checkpoint(run)
    if resume and ckpt is None:
        raise ValueError(f"nothing to resume: no checkpoint under {run / 'checkpoints'}")
    if not resume and ckpt is not None:
        # a fresh start would mix its checkpoints and metrics with the old run's
        raise ValueError(
            f"{run} already holds checkpoints ({ckpt.name}): resume it, or empty the folder "
            "(vrlvr sft --overwrite) to start a new run there"
        )
    if not resume:
        ckpt = None
    saved_state = load_train_state(ckpt) if ckpt is not None else None
    if saved_state is not None:  # the checkpoint itself must agree with the config it resumes with
        check_checkpoint_meta(saved_state.get("meta"), cfg, SFT_FROZEN, ckpt, "vrlvr sft")

    # held-out puzzles: never trained on; their prefix is the periodic evaluation set
    check_options(task, d.sizes, d.options)
    heldout, _ = eval_puzzles(task, d.sizes, cfg.heldout.n, cfg.heldout.seed, options=d.options)
    heldout_keys = {p.key for p in heldout}
    if cfg.model.kind == "tiny-pixel" and cfg.model.path:
        # starting from a checkpoint: its run trained on every puzzle of its sizes outside its own
        # held-out set, so ours must lie inside that set or evaluation would score trained-on puzzles
        check_inside_heldout(resolve_checkpoint(cfg.model.path), task.name, heldout, "model.path", d.options)
    write_heldout(
        run / HELDOUT_FILE, task.name, d.sizes, cfg.heldout.n, cfg.heldout.seed, heldout_keys, d.options
    )
    eval_set = eval_subset(heldout, d.sizes, cfg.eval.n)

    torch.manual_seed(cfg.seed)
    policy = load_policy(ckpt, device=device) if ckpt else build_policy(cfg.model, device)
    policy.train()
    if cfg.model.gradient_checkpointing:
        policy.transformer.enable_gradient_checkpointing()
    params = policy.trainable_parameters()
    o = cfg.optim
    opt = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(o.warmup_steps, o.steps, o.decay))
    video = VideoSpec(d.num_frames, d.cell_px, d.height, d.width)
    if d.dir:
        stream = FolderStream(d.dir, task, d.sizes, heldout_keys, d.seed, video)
    else:
        stream = SolutionStream(task, d.sizes, heldout_keys, d.seed, video, d.themes, d.options)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step = 0
    if saved_state is not None:
        state = saved_state
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        stream.load_state(state["data"])
        set_rng_state(state["rng"], gen)
        step = state["step"]
    # metrics.jsonl (+ TensorBoard when installed); on resume, lines after the checkpoint are dropped
    logger = MetricsLogger(run, resume_step=step if ckpt is not None else None)
    atomic_write_text(run / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
    meta = checkpoint_meta(cfg)
    policy_extra = {
        "task": task.name,
        "data": asdict(d),
        "sampling": asdict(cfg.sampling),
        "vrlvr_version": meta["vrlvr_version"],
        "config_hash": meta["config_hash"],
    }

    def run_eval() -> dict:
        if task.name not in RULES:  # a user task with no registered rules can train, not score
            print(f"vrlvr sft: evaluation skipped: task {task.name!r} has no video verifier", file=sys.stderr)
            return {}
        policy.eval()
        try:
            m, _ = evaluate(
                policy,
                task,
                eval_set,
                video,
                cfg.sampling.steps,
                cfg.sampling.shift,
                cfg.eval.batch_size,
                seed=cfg.seed,
                progress=False,
            )
        finally:
            policy.train()
        rec = {
            "step": step,
            "eval": {k: v for k, v in m.items() if k != "per_size"},
            "eval_per_size": m["per_size"],
        }
        logger.log(rec)
        return m

    def checkpoint() -> None:
        state = {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "data": stream.state(),
            "rng": rng_state(gen),
            "meta": meta,
        }
        save_checkpoint(
            run, step, policy, state, {**policy_extra, "step": step}, run / HELDOUT_FILE, cfg.keep_checkpoints
        )

    bar = tqdm(total=o.steps, initial=step, desc="sft", unit="step", disable=not progress)
    last_eval: dict = {}
    t_log, n_log = time.time(), 0
    while step < o.steps:
        videos, prompts, _ = stream.next_batch(o.batch_size)  # uint8 [B, F, H, W, 3]
        loss = flow_matching_loss(policy, videos, prompts, gen, cfg.sampling.shift, o.sigma_sampling)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip if o.grad_clip > 0 else float("inf"))
        opt.step()
        sched.step()
        step += 1
        n_log += len(videos)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % cfg.log_every == 0 or step == o.steps:
            dt = time.time() - t_log
            logger.log(
                {
                    "step": step,
                    "loss": loss.item(),
                    "lr": sched.get_last_lr()[0],
                    "grad_norm": float(gnorm),
                    "samples_per_s": n_log / max(dt, 1e-9),
                    "rejected_heldout": stream.rejected,
                    "elapsed_s": time.time() - t_start,
                },
            )
            t_log, n_log = time.time(), 0
        out_of_time = cfg.max_minutes > 0 and time.time() - t_start > 60 * cfg.max_minutes
        if cfg.eval.every and step % cfg.eval.every == 0 and step < o.steps:
            last_eval = run_eval()
        if step % cfg.checkpoint_every == 0 or step == o.steps or out_of_time:
            checkpoint()
        if out_of_time:
            print(f"vrlvr sft: stopping at step {step}: max_minutes={cfg.max_minutes} reached")
            break
    bar.close()
    last_eval = run_eval()
    save_final(run, policy, {**policy_extra, "step": step}, run / HELDOUT_FILE)
    logger.close()
    return {"step": step, "eval": last_eval, "minutes": (time.time() - t_start) / 60}
