"""Benchmark of inference with the LoRA adapter folded into the base weights (vrlvr.models.lora_fold)
against the adapted forward, on a tiny-pixel policy: seconds per forward, the FLOPs each does and
the rate they run at beside this machine's fp32 matmul rate. JSON on stdout (or --json PATH).

The adapted forward computes every adapted projection as W x + s B (A x): 2 r (in + out) more FLOPs
per token than the folded (W + s B A) x and two more matmuls. It is the one the policy runs
(vrlvr.models.lora_forward: s B (A x) accumulated into W x by the GEMM), or with --peft peft's own,
which also writes the product, a scaled copy and the sum over the activation (on a CPU those passes
cost more than their FLOPs: elementwise work is memory-bound). The
limit is the folded forward's FLOPs at the matmul rate measured in the same run (a large square fp32
GEMM, best of 5): the report gives each forward's share of it (attention on 441 tokens and the
elementwise work of the block keep both well below). Folding costs one B A product per layer, once
per rollout (fold_build_ms).

Every SDE-GRPO rollout runs its Euler steps (those outside the Early-Step Focus window) folded, and
evaluation runs folded throughout; the window's steps run adapted so that the rollout's log-probs are
the update's bit for bit.

    python bench/bench_lora_fold.py [--init maze-deep12] [--batch 32] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def matmul_rate(n: int = 1024, reps: int = 5) -> float:
    """fp32 GEMM FLOP/s of this machine at the current thread count (best of reps)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_time(lambda: torch.mm(a, b), 1) for _ in range(reps))
    return 2 * n**3 / best


def lora_flops(policy, run) -> int:
    """The adapter's matmul FLOPs in one forward: 2 r (in + out) per row through each LoRA layer
    (counted with hooks, so cross-attention's text rows are counted as they are)."""
    from peft.tuners.lora import Linear as LoraLinear

    total = [0]

    def hook(mod, args, _out):
        x = args[0]
        rows = x.numel() // x.shape[-1]
        for a in mod.active_adapters:
            if a in mod.lora_A:
                r = mod.lora_A[a].out_features
                total[0] += 2 * rows * r * (mod.in_features + mod.out_features)

    layers = [m for m in policy.transformer.modules() if isinstance(m, LoraLinear)]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--init", default="maze-deep12", help="tiny-pixel checkpoint (shipped name or folder)")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (the shipped configs' 16)")
    ap.add_argument("--batch", type=int, default=32, help="videos per forward (a rollout's 4 x 8)")
    ap.add_argument("--frames", type=int, default=9, help="frames per video (28 x 28 px)")
    ap.add_argument("--reps", type=int, default=3, help="timed forwards per case (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", metavar="PATH", help="also write the report here")
    ap.add_argument(
        "--peft", action="store_true", help="time peft's own adapted forward, not vrlvr's fused one"
    )
    args = ap.parse_args(argv)
    from vrlvr.bench.common import require_positive

    require_positive(ap, args, *("rank", "batch", "frames", "reps", "threads"))
    torch.set_num_threads(args.threads)

    from vrlvr.bench.common import add_trained_looking_lora, emit, machine, tiny_rollout_inputs
    from vrlvr.models.flops import wan_forward_flops

    inputs = tiny_rollout_inputs(ap, args.init, args.batch, args.frames)
    policy, x, cond, sigma, pe = inputs.policy, inputs.x, inputs.cond, inputs.sigma, inputs.prompt_embeds
    add_trained_looking_lora(policy, args.rank)
    if args.peft:
        from vrlvr.models.lora_forward import fuse_lora_forward

        fuse_lora_forward(policy.transformer, enable=False)
    B = args.batch
    C, f, h, w = x.shape[1:]

    @torch.no_grad()
    def forward():
        return policy.velocity(x, sigma, pe, cond)

    adapted_s = _time(forward, args.reps)
    fold_build_s = _time(policy.folded_lora, args.reps)
    fold = policy.folded_lora()
    with torch.no_grad(), fold:
        folded_s = _time(forward, args.reps)
        folded = forward()
    adapted = forward()
    max_abs_diff = float((folded - adapted).abs().max())

    tcfg = policy.transformer.config
    base = wan_forward_flops(tcfg, (tcfg.in_channels, f, h, w), text_len=pe.shape[1], timesteps="frame")
    base_flops = B * base["forward"]  # wan_forward_flops counts one video
    extra = lora_flops(policy, forward)
    peak = matmul_rate()
    report = {
        "benchmark": "lora_fold",
        "machine": machine(args.threads),
        "setup": {
            "init": args.init,
            "blocks": tcfg.num_layers,
            "lora_rank": args.rank,
            "batch": B,
            "latent": [C, f, h, w],
            "text_tokens": int(pe.shape[1]),
            "adapted_forward": "peft" if args.peft else "fused (vrlvr.models.lora_forward)",
        },
        "adapted_forward_s": round(adapted_s, 4),
        "folded_forward_s": round(folded_s, 4),
        "speedup": round(adapted_s / folded_s, 4),
        "fold_build_ms": round(fold_build_s * 1e3, 3),
        "max_abs_velocity_diff": max_abs_diff,
        "flops": {
            "folded_forward": base_flops,
            "adapted_forward": base_flops + extra,
            "adapter_share_of_adapted": round(extra / (base_flops + extra), 4),
        },
        "fp32_matmul_flop_per_s": round(peak),
        "share_of_matmul_rate": {
            "folded": round(base_flops / folded_s / peak, 4),
            "adapted": round((base_flops + extra) / adapted_s / peak, 4),
        },
    }
    return emit(report, args.json)


if __name__ == "__main__":
    main()
