"""Benchmark of the fused adapted LoRA forward (vrlvr.models.lora_forward: s B (A x) accumulated
into W x inside one GEMM) against peft's (the product, its scaled copy and the sum each written
out): a tiny-pixel policy's no-grad forward (the SDE window's rollout steps) and forward + backward
(the update), seconds each, the activation bytes the fusion stops moving and what they cost at this
machine's memory bandwidth. JSON on stdout (or --json PATH).

For an adapted projection with ``rows`` input rows and ``out`` features peft writes the [rows, out]
product, reads it and writes it scaled, reads that and the base output and writes their sum: six
passes of rows x out x 4 bytes where the fused GEMM (beta = 1) reads and writes the base output
once: four passes fewer per layer. The limit of what fusing can save is those bytes at the copy
bandwidth measured in the same run (a 64 MiB tensor copy, best of 5); the report gives the saved
bytes, that time, and the time actually saved. The two forwards are timed alternately (fused, peft,
fused, ...) so a machine whose speed drifts moves both; the reported times are medians.

    python bench/bench_lora_forward.py [--init maze-tiny] [--batch 32] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse

import torch


def adapter_output_elements(policy, run) -> int:
    """rows x out summed over every adapted projection of one call of ``run`` (counted by hooks)."""
    from peft.tuners.lora import Linear as LoraLinear

    total = [0]

    def hook(mod, args, out):
        total[0] += out.numel()

    layers = [m for m in policy.transformer.modules() if isinstance(m, LoraLinear)]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--init", default="maze-tiny", help="tiny-pixel checkpoint (shipped name or folder)")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (the shipped configs' 16)")
    ap.add_argument("--batch", type=int, default=32, help="videos per forward (a rollout's 4 x 8)")
    ap.add_argument("--frames", type=int, default=9, help="frames per video (28 x 28 px)")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per case (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", metavar="PATH", help="also write the report here")
    args = ap.parse_args(argv)
    from vrlvr.bench.common import require_positive

    require_positive(ap, args, *("rank", "batch", "frames", "reps", "threads"))
    torch.set_num_threads(args.threads)

    from vrlvr.bench.common import (
        add_trained_looking_lora,
        alternated,
        copy_bandwidth,
        emit,
        machine,
        tiny_rollout_inputs,
    )
    from vrlvr.models.lora_forward import fuse_lora_forward

    inputs = tiny_rollout_inputs(ap, args.init, args.batch, args.frames)
    policy, x, cond, sigma, pe = inputs.policy, inputs.x, inputs.cond, inputs.sigma, inputs.prompt_embeds
    add_trained_looking_lora(policy, args.rank)
    B = args.batch
    C, f, h, w = x.shape[1:]
    params = policy.trainable_parameters()

    def with_forward(fused: bool, fn):
        def call():
            fuse_lora_forward(policy.transformer, enable=fused)
            return fn()

        return call

    @torch.no_grad()
    def forward():
        return policy.velocity(x, sigma, pe, cond)

    def forward_backward():
        for p in params:
            p.grad = None
        policy.velocity(x, sigma, pe, cond).square().mean().backward()

    fwd = alternated({"fused": with_forward(True, forward), "peft": with_forward(False, forward)}, args.reps)
    fwd_bwd = alternated(
        {"fused": with_forward(True, forward_backward), "peft": with_forward(False, forward_backward)},
        args.reps,
    )
    fuse_lora_forward(policy.transformer, enable=False)
    ref = forward()
    fuse_lora_forward(policy.transformer, enable=True)
    out = forward()
    elements = adapter_output_elements(policy, forward)
    saved_bytes = 4 * elements * out.element_size()  # four passes of rows x out per adapted layer
    bandwidth = copy_bandwidth()
    report = {
        "benchmark": "lora_forward",
        "machine": machine(args.threads),
        "setup": {
            "init": args.init,
            "blocks": policy.transformer.config.num_layers,
            "lora_rank": args.rank,
            "batch": B,
            "latent": [C, f, h, w],
            "text_tokens": int(pe.shape[1]),
        },
        "forward_s": {"peft": round(fwd["peft"], 4), "fused": round(fwd["fused"], 4)},
        "forward_ratio": round(fwd["fused"] / fwd["peft"], 4),
        "forward_backward_s": {"peft": round(fwd_bwd["peft"], 4), "fused": round(fwd_bwd["fused"], 4)},
        "forward_backward_ratio": round(fwd_bwd["fused"] / fwd_bwd["peft"], 4),
        "max_abs_velocity_diff": float((out - ref).abs().max()),
        "limit": {
            "adapter_output_elements": elements,
            "forward_bytes_saved": saved_bytes,
            "copy_bandwidth_bytes_per_s": round(bandwidth),
            "forward_seconds_at_bandwidth": round(saved_bytes / bandwidth, 4),
            "forward_seconds_saved": round(fwd["peft"] - fwd["fused"], 4),
        },
    }
    return emit(report, args.json)


if __name__ == "__main__":
    main()
