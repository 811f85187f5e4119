"""Benchmark of the model side (JSON on stdout, or --json PATH).

Measures on this machine, for the tiny-pixel model (default config, ~1M parameters):
- SFT throughput: samples/s of full training steps (render + encode + forward + backward + AdamW)
  on 7x7 mazes at 28x28 px, 9 frames, batch 16;
- sampling throughput: videos/s of Euler ODE generation (10 steps), batch 16;
- the time path per latent frame (vrlvr.models.framewise, what the policies run) vs diffusers' own
  forward given per-token timesteps, on the shipped 8-block maze-tiny with a rank-16 adapter at a
  rollout's shape (32 videos of 9 frames at 28x28 px: 441 tokens of width 128): forward (with the
  adapter, and of the base alone, as on the folded Euler steps and in evaluation) and forward +
  backward, alternated rep by rep so a drifting machine slows both. What it saves: the
  time embedding on 9 frames instead of 441 tokens (its FLOPs below) and, per block, a
  [32, 441, 6, 128] fp32 modulation tensor (43 MB written, then read) that becomes [32, 9, 6, 128].
  What bounds a forward is then its matmul FLOPs: the report gives the GFLOP/s of both paths.

And writes down, for GPUs, the analytic FLOPs of one Wan2.2-TI2V-5B transformer forward and
training step (vrlvr.models.flops: matmuls only, 2 FLOPs per multiply-add) at two shapes:
- 704x1280, 121 frames (the model's native resolution): Wan2.2 VAE 16x spatial / 4x temporal,
  48 channels -> latent 48x31x44x80, patch (1, 2, 2) -> 27,280 tokens;
- 480x832, 81 frames: latent 48x21x30x52 -> 8,190 tokens.
Assumed config (Wan2.2-TI2V-5B): 30 layers, width 3072 (24 heads x 128), ffn 14336, text 4096
(UMT5-XXL) with 512 tokens, freq 256, one timestep per latent frame (TI2V, vrlvr.models.framewise).
The time per step at a given model-FLOPs utilisation is flops / (peak * MFU): e.g. bf16 dense peaks
of 989 TFLOP/s (H100 SXM) and 312 TFLOP/s (A100).

    python bench/bench_models.py [--threads 1] [--steps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

WAN22_TI2V_5B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=24,
    attention_head_dim=128,
    in_channels=48,
    out_channels=48,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=14336,
    num_layers=30,
)
GPUS_BF16_TFLOPS = {"H100-SXM": 989.0, "A100": 312.0}


def bench_tiny(steps: int, batch: int) -> dict:
    from vrlvr import tasks
    from vrlvr.models.sampling import generate_videos
    from vrlvr.models.tiny import TinyPixelPolicy
    from vrlvr.train.data import SolutionStream, VideoSpec
    from vrlvr.train.sft import flow_matching_loss

    torch.manual_seed(0)
    maze = tasks.get("maze")
    policy = TinyPixelPolicy()
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3)
    stream = SolutionStream(maze, [7], set(), seed=0, video=VideoSpec(num_frames=9, cell_px=4))
    gen = torch.Generator().manual_seed(0)

    def train_step():
        videos, prompts, _ = stream.next_batch(batch)
        loss = flow_matching_loss(policy, videos, prompts, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()

    train_step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    sft_s = (time.perf_counter() - t) / steps

    policy.eval()
    videos, prompts, _ = stream.next_batch(batch)
    generate_videos(policy, videos[:, 0], prompts, 9, num_steps=2)  # warm-up
    t = time.perf_counter()
    reps = max(1, steps // 3)
    for _ in range(reps):
        generate_videos(policy, videos[:, 0], prompts, 9, num_steps=10)
    sample_s = (time.perf_counter() - t) / reps
    return {
        "params": sum(p.numel() for p in policy.parameters()),
        "shape": f"7x7 maze, 28x28 px, 9 frames, batch {batch}",
        "sft_step_s": sft_s,
        "sft_samples_per_s": batch / sft_s,
        "sampling_10_steps_batch_s": sample_s,
        "sampling_videos_per_s": batch / sample_s,
    }


def bench_time_path(reps: int, batch: int = 32) -> dict:
    from vrlvr.models import framewise
    from vrlvr.models.conditioning import frame_timesteps, token_timesteps
    from vrlvr.models.flops import wan_forward_flops
    from vrlvr.models.policy import load_policy

    torch.manual_seed(0)
    policy = load_policy("maze-tiny")
    policy.add_lora(16)
    tr = policy.transformer
    C, f, h, w = policy.latent_shape(9, 28, 28)
    x = torch.randn(batch, tr.config.in_channels, f, h, w)
    text = policy.encode_prompts(["maze"] * batch).detach()
    sigma = torch.rand(batch)
    per_token = token_timesteps(sigma, x.shape, policy.patch_size)  # [B, 441]
    per_frame = frame_timesteps(sigma, x.shape, policy.patch_size)  # [B, 9]
    paths = {
        "per_token": lambda: tr(
            hidden_states=x, timestep=per_token, encoder_hidden_states=text, return_dict=False
        )[0],
        "per_frame": lambda: framewise.framewise_forward(tr, x, per_frame, text),
    }
    params = policy.trainable_parameters()

    def fwd(fn):
        with torch.no_grad():
            fn()

    def fwd_base(fn):  # the base alone (as a folded adapter costs): evaluation, the Euler steps
        tr.disable_adapters()
        try:
            fwd(fn)
        finally:
            tr.enable_adapters()

    def fwd_bwd(fn):
        for p in params:
            p.grad = None
        fn().square().mean().backward()

    kinds = (("forward", fwd), ("forward_base", fwd_base), ("forward_backward", fwd_bwd))
    times = {(kind, name): [] for kind, _ in kinds for name in paths}
    for kind, run in kinds:
        for fn in paths.values():
            run(fn)  # warm-up
        for _ in range(reps):  # alternated: a machine that slows down slows both
            for name, fn in paths.items():
                t = time.perf_counter()
                run(fn)
                times[(kind, name)].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    latent = (tr.config.in_channels, f, h, w)
    flops = {
        name: batch * wan_forward_flops(tr.config, latent, text.shape[1], timesteps=t)["forward"]
        for name, t in (("per_token", "token"), ("per_frame", "frame"))
    }
    S, D = per_token.shape[1], tr.config.num_attention_heads * tr.config.attention_head_dim
    out = {
        "shape": f"maze-tiny (8 blocks) + LoRA r16, {batch} videos of 9 x 28x28 px: {S} tokens, width {D}",
        "modulation_bytes_per_block": {
            "per_token": batch * S * 6 * D * 4,
            "per_frame": batch * f * 6 * D * 4,
        },
        "forward_flops": flops,
        "flops_note": "base matmuls only (vrlvr.models.flops); the adapter adds ~11% (bench_lora_fold)",
    }
    for kind, _ in kinds:
        mult = 3.0 if kind == "forward_backward" else 1.0
        out[kind] = {
            **{f"{name}_s": med[(kind, name)] for name in paths},
            "per_frame_over_per_token": med[(kind, "per_frame")] / med[(kind, "per_token")],
            "gflops_per_s": {name: mult * flops[name] / med[(kind, name)] / 1e9 for name in paths},
        }
    return out


def wan_flops() -> dict:
    from vrlvr.models.flops import wan_forward_flops

    out = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in WAN22_TI2V_5B.items()},
        "text_tokens": 512,
    }
    for name, latent in {"704x1280x121": (48, 31, 44, 80), "480x832x81": (48, 21, 30, 52)}.items():
        f = wan_forward_flops(WAN22_TI2V_5B, latent, text_len=512, timesteps="frame")
        f["latent"] = list(latent)
        f["seconds_per_forward_at_40pct_mfu"] = {
            g: f["forward"] / (tf * 1e12 * 0.4) for g, tf in GPUS_BF16_TFLOPS.items()
        }
        out[name] = f
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--steps", type=int, default=5, help="timed SFT steps")
    ap.add_argument("--batch", type=int, default=16, help="videos per SFT step and per sampling call")
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args()
    from vrlvr.bench.common import emit, machine

    torch.set_num_threads(args.threads)
    report = {
        "machine": machine(args.threads),
        "tiny_pixel_cpu": bench_tiny(args.steps, args.batch),
        "time_path_cpu": bench_time_path(args.steps),
        "wan2.2_ti2v_5b_flops": wan_flops(),
        "note": "CPU numbers are from a shared 2-core machine; rerun for your own",
    }
    emit(report, args.json)


if __name__ == "__main__":
    main()
