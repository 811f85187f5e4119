"""Benchmark of Wan attention in fewer passes (vrlvr.models.attention) against diffusers'
WanAttnProcessor: one self-attention layer at a rollout's shape, and a whole tiny-pixel policy
forward (vrlvr.models.framewise with either attention; no grad, as on a rollout's steps) and
forward + backward (with a rank-16 adapter, as in the update). Seconds each, medians of runs
timed in turns so a drifting machine moves both. JSON on stdout (or --json PATH).

What the rewrite saves is activation traffic, not FLOPs. In units of one pass over a
[rows, width] fp32 tensor (read or written once), a self-attention layer's RMSNorm costs 7 passes
per normed tensor in torch's CPU composite (x^2 written, read for the mean, x read and x * r
written, read and * w written) against 5 here (one reduction read, then two multiplies, the second
in place); its rotary embedding 9 per rotated tensor in diffusers' strided form (four half-width
multiplies, a subtract and an add, two strided writes into the output) against 2 (one complex
multiply). q and k are normed and rotated: 2 x 2 + 2 x 7 = 18 passes fewer per layer. The limit is
those bytes at the copy bandwidth measured in the same run (vrlvr.bench.common); the
report gives that time and the time actually saved on the layer (allocation and page faults of
the extra temporaries cost more than their bytes on a CPU).

    python bench/bench_attention.py [--init maze-tiny] [--batch 32] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse

import torch

PASSES_SAVED_SELF_ATTENTION = 2 * (7 - 5) + 2 * (9 - 2)  # RMSNorm and rotary embedding of q and k


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--init", default="maze-tiny", help="tiny-pixel checkpoint (shipped name or folder)")
    ap.add_argument("--batch", type=int, default=32, help="videos per forward (a rollout's 4 x 8)")
    ap.add_argument("--frames", type=int, default=9, help="frames per video (28 x 28 px)")
    ap.add_argument("--reps", type=int, default=7, help="timed calls per case (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", metavar="PATH", help="also write the report here")
    args = ap.parse_args(argv)
    from vrlvr.bench.common import require_positive

    require_positive(ap, args, *("batch", "frames", "reps", "threads"))
    torch.set_num_threads(args.threads)

    from vrlvr.bench.common import (
        add_trained_looking_lora,
        alternated,
        copy_bandwidth,
        emit,
        machine,
        tiny_rollout_inputs,
    )
    from vrlvr.models import attention, framewise
    from vrlvr.models.conditioning import frame_timesteps

    inputs = tiny_rollout_inputs(ap, args.init, args.batch, args.frames)
    policy, x, text = inputs.policy, inputs.x, inputs.prompt_embeds
    tr = policy.transformer
    B = args.batch
    inp = policy.transformer_input(x, inputs.cond)  # [B, C', f, h, w]
    t = frame_timesteps(inputs.sigma, x.shape, policy.patch_size)  # [B, F]
    g = torch.Generator().manual_seed(1)

    # one self-attention layer (block 0) on [B, S, D]
    attn = tr.blocks[0].attn1
    rot = tr.rope(inp)
    freqs = attention.rope_as_complex(rot)
    S = rot[0].shape[1]
    hs = torch.randn(B, S, tr.config.num_attention_heads * tr.config.attention_head_dim, generator=g)
    if not attention.supports(attn, hs):
        ap.error("vrlvr.models.attention does not apply to this checkpoint's attention")
    with torch.no_grad():
        layer = alternated(
            {
                "vrlvr": lambda: attention.wan_attention(attn, hs, None, freqs),
                "diffusers": lambda: attn(hs, None, None, rot),
            },
            args.reps,
        )
        layer_diff = float(
            (attention.wan_attention(attn, hs, None, freqs) - attn(hs, None, None, rot)).abs().max()
        )

    def forward(fast: bool):
        return framewise.framewise_forward(tr, inp, t, text, fast_attention=fast)

    with torch.no_grad():
        fwd = alternated({"vrlvr": lambda: forward(True), "diffusers": lambda: forward(False)}, args.reps)
        max_abs_diff = float((forward(True) - forward(False)).abs().max())

    add_trained_looking_lora(policy, 16)
    params = policy.trainable_parameters()

    def forward_backward(fast: bool):
        for p in params:
            p.grad = None
        forward(fast).square().mean().backward()

    fwd_bwd = alternated(
        {"vrlvr": lambda: forward_backward(True), "diffusers": lambda: forward_backward(False)}, args.reps
    )

    layer_bytes = PASSES_SAVED_SELF_ATTENTION * hs.numel() * hs.element_size()
    bandwidth = copy_bandwidth()
    report = {
        "benchmark": "attention",
        "machine": machine(args.threads),
        "setup": {
            "init": args.init,
            "blocks": tr.config.num_layers,
            "batch": B,
            "tokens": S,
            "width": hs.shape[-1],
            "heads": tr.config.num_attention_heads,
            "text_tokens": int(text.shape[1]),
        },
        "layer_forward_s": {k: round(v, 5) for k, v in layer.items()},
        "layer_ratio": round(layer["vrlvr"] / layer["diffusers"], 4),
        "policy_forward_s": {k: round(v, 4) for k, v in fwd.items()},
        "policy_forward_ratio": round(fwd["vrlvr"] / fwd["diffusers"], 4),
        "policy_forward_backward_s": {k: round(v, 4) for k, v in fwd_bwd.items()},
        "policy_forward_backward_ratio": round(fwd_bwd["vrlvr"] / fwd_bwd["diffusers"], 4),
        "max_abs_diff": max(max_abs_diff, layer_diff),
        "limit": {
            "passes_saved_per_layer": PASSES_SAVED_SELF_ATTENTION,
            "bytes_saved_per_layer": layer_bytes,
            "copy_bandwidth_bytes_per_s": round(bandwidth),
            "layer_seconds_at_bandwidth": round(layer_bytes / bandwidth, 5),
            "layer_seconds_saved": round(layer["diffusers"] - layer["vrlvr"], 5),
        },
    }
    return emit(report, args.json)


if __name__ == "__main__":
    main()
