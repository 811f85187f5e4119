"""Fused SDE step benchmark: every usable backend against eager and torch.compile'd Flow-GRPO torch.

    python bench/bench_sde.py [--shapes small,wan] [--dtypes float32,bfloat16] [--repeats 5]
                              [--threads N] [--no-compile] [--out results.json]

Ops: "step" (sample x' and its logp, as in a rollout), "logprob" (re-score a recorded x'),
"logprob_fwd_bwd" (re-score and backpropagate to v, as in a policy update) and "kl". Shapes:
"small" [8, 16, 16, 32, 32] and "wan", a Wan2.2-TI2V-5B latent [4, 48, 21, 30, 52] (48 channels,
21 latent frames of a 81-frame 480x832 video: 1.57M elements per sample). Implementations:
"eager_flow_grpo" (Flow-GRPO's sde_step_with_logprob: fp32 upcast, ~20 separate tensor ops, logp
from a second full-size tensor; autograd for the backward), "compile_flow_grpo" (the same function
under torch.compile: inductor fuses it into a few loops, C++/OpenMP on a CPU, Triton on a GPU;
this is what a user would otherwise write), "torch" (vrlvr's reference backend), "cpu"
(vrlvr._native), and "triton" / "cuda" when a GPU runs them (the Triton interpreter is a test
vehicle, not timed).

Reported per case (JSON on stdout): best and median seconds per call; bytes that must move
(each input read once, each output written once, at its dtype); effective GB/s; the memory floor
(those bytes / the copy bandwidth measured in the same run: the best of several copies of the same
number of bytes into a preallocated buffer, numpy's and torch's (multi-threaded) on a CPU, a
device-to-device torch copy on a GPU, measured before and again after the timed cases); the
fraction of that floor reached; and the speed-ups over eager_flow_grpo and compile_flow_grpo.
"summary" picks, per case, the fastest vrlvr backend and states those ratios.

Bytes per element (the op is bandwidth-bound: ~10 flops per element against 12 to 20 bytes):
  step            x, v, noise read + x' written: 16 B fp32, 8 B bf16 (+4 B with return_mean)
  logprob         x, v, x' read: 12 B fp32, 6 B bf16
  logprob fwd+bwd forward 12 B, backward reads x, v, x' and writes grad_v: 28 B fp32, 14 B bf16
  kl              v, v_ref read: 8 B fp32, 4 B bf16
Fresh outputs (CPU): every implementation returns new tensors, and glibc may serve a large one
with fresh pages (mmap, or a heap trimmed back to the OS), whose first-touch page faults and
zeroing cost another pass over the output, which the copy floor (into a reused buffer) does not
pay. A long-running CPU job avoids that with MALLOC_MMAP_THRESHOLD_=1073741824
MALLOC_TRIM_THRESHOLD_=4294967296 in its environment (or jemalloc / tcmalloc); the JSON records
the MALLOC_* variables a run had. GPU outputs come from torch's caching allocator.
The physical limit is the memory floor above: a one-pass kernel cannot beat a copy of its bytes.
"gpu_expectations" converts the bytes into times at 85% of two GPUs' datasheet bandwidths: a
projection, not a measurement (bench/gpu_check.sh measures them on a GPU). Eager Flow-GRPO makes
~25 full-tensor fp32 passes (~600 MB for the Wan step), so it is several times slower than a
one-pass kernel wherever memory bandwidth is the limit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

SHAPES = {"small": (8, 16, 16, 32, 32), "wan": (4, 48, 21, 30, 52)}
OPS = ("step", "logprob", "logprob_fwd_bwd", "kl")
SIGMA, SIGMA_NEXT, SIGMA_MAX, ETA = 0.9, 0.85, 0.96, 0.7


def flow_grpo_eager(x, v, sigma, sigma_prev, sigma_max, noise=None, prev_sample=None, noise_level=ETA):
    """Flow-GRPO's sde_step_with_logprob ("sde" type) with explicit [B] sigmas and the noise
    passed in: the way RL-for-diffusion code computes the step today."""
    model_output = v.float()
    sample = x.float()
    sigma = sigma.view(-1, *([1] * (len(sample.shape) - 1)))
    sigma_prev = sigma_prev.view(-1, *([1] * (len(sample.shape) - 1)))
    dt = sigma_prev - sigma
    std_dev_t = torch.sqrt(sigma / (1 - torch.where(sigma == 1, sigma_max, sigma))) * noise_level
    prev_sample_mean = (
        sample * (1 + std_dev_t**2 / (2 * sigma) * dt)
        + model_output * (1 + std_dev_t**2 * (1 - sigma) / (2 * sigma)) * dt
    )
    if prev_sample is None:
        prev_sample = prev_sample_mean + std_dev_t * torch.sqrt(-1 * dt) * noise
    prev_sample = prev_sample.float()
    log_prob = (
        -((prev_sample.detach() - prev_sample_mean) ** 2) / (2 * ((std_dev_t * torch.sqrt(-1 * dt)) ** 2))
        - torch.log(std_dev_t * torch.sqrt(-1 * dt))
        - torch.log(torch.sqrt(2 * torch.as_tensor(math.pi)))
    )
    log_prob = log_prob.mean(dim=tuple(range(1, log_prob.ndim)))
    return prev_sample, log_prob, prev_sample_mean, std_dev_t


def flow_grpo_eager_kl(v, v_ref, x, sigma, sigma_prev, sigma_max):
    """Flow-GRPO's KL term: both means through the step, then mean((m - m_ref)^2) / (2 s^2)."""
    _, _, mean, std = flow_grpo_eager(x, v, sigma, sigma_prev, sigma_max, prev_sample=x)
    _, _, mean_ref, _ = flow_grpo_eager(x, v_ref, sigma, sigma_prev, sigma_max, prev_sample=x)
    s2 = std**2 * (sigma - sigma_prev).view_as(std)
    return ((mean - mean_ref) ** 2 / (2 * s2)).mean(dim=tuple(range(1, mean.ndim)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


GPU_INNER = 10  # calls per timed GPU window
GPU_SLEEP_CYCLES = 50_000_000  # ~25 ms of a spinning kernel ahead of each window


def _time_cuda(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    """Device time per call: CUDA events around GPU_INNER back-to-back calls, queued behind a
    spinning kernel so the host has enqueued them all before the GPU reaches the first (host-side
    launch overhead, which a training loop overlaps with earlier work, is not counted; a host
    slower than the sleep would show up as a longer time, never a shorter one)."""
    fn()  # warm-up (and Triton compilation)
    torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(GPU_SLEEP_CYCLES)
        start.record()
        for _ in range(GPU_INNER):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        times.append(start.elapsed_time(end) / 1e3 / GPU_INNER)
    return min(times), statistics.median(times)


def _time(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    """(best, median) seconds per call of fn."""
    if device.type == "cuda":
        return _time_cuda(fn, repeats, device)
    fn()  # warm-up (and torch.compile compilation)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def copy_bandwidth(nbytes: int, repeats: int = 9, device: torch.device | None = None) -> dict:
    """Bytes per second (read + write counted) of copying nbytes into a preallocated buffer, in the
    memory the op runs on: host RAM, or the GPU's own memory for CUDA tensors. The best of
    `repeats` copies (and, on a CPU, of numpy's single-threaded and torch's threaded copy): the
    floor is what the memory can do, not what a busy moment let it do."""
    if device is not None and device.type == "cuda":
        src_d = torch.ones(max(nbytes // 2, 1), dtype=torch.uint8, device=device)
        dst_d = torch.empty_like(src_d)
        bw = 2 * src_d.numel() / _time(lambda: dst_d.copy_(src_d), repeats, device)[0]
        return {"torch_copy_GBps": bw / 1e9, "best_GBps": bw / 1e9}
    src = np.ones(max(nbytes // 2, 1), np.uint8)
    dst = np.empty_like(src)
    np_bw = 2 * src.nbytes / _time(lambda: np.copyto(dst, src), repeats, torch.device("cpu"))[0]
    ts, td = torch.from_numpy(src), torch.from_numpy(dst)
    torch_bw = 2 * src.nbytes / _time(lambda: td.copy_(ts), repeats, torch.device("cpu"))[0]
    return {
        "numpy_copy_GBps": np_bw / 1e9,
        "torch_copy_GBps": torch_bw / 1e9,
        "best_GBps": max(np_bw, torch_bw) / 1e9,
    }


def _best_copy(a: dict, b: dict) -> dict:
    """Merge two copy_bandwidth measurements of one size: the best of each kind."""
    return {k: max(a.get(k, 0.0), b.get(k, 0.0)) for k in {*a, *b}}


def bytes_moved(op: str, numel: int, dtype: torch.dtype) -> int:
    e = torch.empty((), dtype=dtype).element_size()
    per_elem = {"step": 4 * e, "logprob": 3 * e, "logprob_fwd_bwd": 7 * e, "kl": 2 * e}[op]
    return per_elem * numel


def _fwd_bwd(logp_of, v):
    """Forward and backward to a fresh leaf v (the gradient is set, not accumulated, as after
    optimizer.zero_grad(set_to_none=True): accumulation would add a pass that is not the op's)."""
    vg = v.clone().requires_grad_(True)

    def run():
        vg.grad = None
        logp_of(vg).sum().backward()

    return run


def make_case(op: str, impl: str, shape, dtype, device):
    """A zero-argument callable that runs `op` with implementation `impl` once."""
    from vrlvr.ops import sde_kl, sde_logprob, sde_step

    g = torch.Generator().manual_seed(0)
    x, v, noise, v_ref = (torch.randn(shape, generator=g).to(dtype).to(device) for _ in range(4))
    B = shape[0]
    sigma = torch.full((B,), SIGMA, device=device)
    sigma_next = torch.full((B,), SIGMA_NEXT, device=device)
    # the x' of a rollout (stored in x's dtype), so re-scoring sees realistic residuals
    x_next = sde_step(x, v, SIGMA, SIGMA_NEXT, noise, eta=ETA, sigma_max=SIGMA_MAX, backend="torch").x_next
    kw = dict(eta=ETA, mode="sde", sigma_max=SIGMA_MAX)

    if impl in ("eager_flow_grpo", "compile_flow_grpo"):
        step, kl = flow_grpo_eager, flow_grpo_eager_kl
        if impl == "compile_flow_grpo":
            # the same Python function compiled; the first call (the benchmark's warm-up) compiles
            torch._dynamo.reset()
            step, kl = torch.compile(flow_grpo_eager, dynamic=False), torch.compile(kl, dynamic=False)
        if op == "step":
            return lambda: step(x, v, sigma, sigma_next, SIGMA_MAX, noise=noise)[:2]
        if op == "logprob":
            return lambda: step(x, v, sigma, sigma_next, SIGMA_MAX, prev_sample=x_next)[1]
        if op == "logprob_fwd_bwd":
            return _fwd_bwd(lambda vg: step(x, vg, sigma, sigma_next, SIGMA_MAX, prev_sample=x_next)[1], v)
        return lambda: kl(v, v_ref, x, sigma, sigma_next, SIGMA_MAX)

    # vrlvr.ops with python-float sigmas (no host round trip), as a rollout loop would call it
    if op == "step":
        return lambda: sde_step(x, v, SIGMA, SIGMA_NEXT, noise, backend=impl, **kw)
    if op == "logprob":
        return lambda: sde_logprob(x, v, x_next, SIGMA, SIGMA_NEXT, backend=impl, **kw)
    if op == "logprob_fwd_bwd":
        return _fwd_bwd(lambda vg: sde_logprob(x, vg, x_next, SIGMA, SIGMA_NEXT, backend=impl, **kw), v)
    return lambda: sde_kl(v, v_ref, SIGMA, SIGMA_NEXT, backend=impl, **kw)


BASELINES = ("eager_flow_grpo", "compile_flow_grpo")


def implementations(device: torch.device, compile_baseline: bool = True) -> list[str]:
    from vrlvr.kernels import interpreter_mode
    from vrlvr.ops import dispatch

    names = ["eager_flow_grpo", *(["compile_flow_grpo"] if compile_baseline else []), "torch"]
    for name in ("cpu", "triton", "cuda"):
        if dispatch.unavailable_reason(name, device) is not None:
            continue
        if name == "triton" and interpreter_mode():
            continue  # the interpreter runs kernels in numpy: a test vehicle, not a timing
        names.append(name)
    return names


# Peak DRAM bandwidth of reference GPUs (bytes/s) and the fraction a one-pass streaming kernel
# with coalesced loads typically sustains on them.
GPU_PEAK = {"A100-80GB (HBM2e)": 2.0e12, "H100-SXM (HBM3)": 3.35e12, "H200 (HBM3e)": 4.8e12}
STREAMING_EFFICIENCY = 0.85


def gpu_expectations(dtypes, ops) -> list[dict]:
    """What the Triton and CUDA kernels should take on GPUs for the Wan latent: bytes / bandwidth."""
    numel = math.prod(SHAPES["wan"])
    out = []
    for dtype in dtypes:
        for op in ops:
            moved = bytes_moved(op, numel, dtype)
            row = {"op": op, "shape": "wan", "dtype": str(dtype).removeprefix("torch."), "bytes": moved}
            for gpu, peak in GPU_PEAK.items():
                row[f"{gpu} us"] = moved / (peak * STREAMING_EFFICIENCY) * 1e6
            out.append(row)
    return out


def _ratio(a, b):
    return a / b if a and b else None


def summarise(results: list[dict]) -> list[dict]:
    """Per (op, shape, dtype): the fastest vrlvr backend (not the torch reference) against both
    baselines, and its fraction of the memory floor."""
    out = []
    keys = sorted({(r["op"], r["shape"], r["dtype"]) for r in results})
    for key in keys:
        rows = {r["impl"]: r for r in results if (r["op"], r["shape"], r["dtype"]) == key}
        fused = [r for name, r in rows.items() if name in ("cpu", "triton", "cuda")]
        if not fused:
            continue
        best = min(fused, key=lambda r: r["best_s"])
        eager, compiled = rows.get("eager_flow_grpo"), rows.get("compile_flow_grpo")
        out.append(
            {
                "op": key[0],
                "shape": key[1],
                "dtype": key[2],
                "fused": best["impl"],
                "fused_ms": best["best_s"] * 1e3,
                "eager_ms": eager["best_s"] * 1e3 if eager else None,
                "compile_ms": compiled["best_s"] * 1e3 if compiled else None,
                "fused_vs_eager": _ratio(eager and eager["best_s"], best["best_s"]),
                "fused_vs_compile": _ratio(compiled and compiled["best_s"], best["best_s"]),
                "fused_fraction_of_floor": best["fraction_of_floor"],
                "compile_fraction_of_floor": compiled["fraction_of_floor"] if compiled else None,
            }
        )
    return out


def _derive(results: list[dict], bandwidth: dict) -> list[dict]:
    """Floors, fractions and ratios of every result from the copy bandwidths; the summary."""
    by_case = {}
    for r in results:
        copy_bps = bandwidth[r["bytes"]]["best_GBps"] * 1e9
        floor_s = r["bytes"] / copy_bps
        r["copy_GBps"] = copy_bps / 1e9
        r["memory_floor_s"] = floor_s
        r["fraction_of_floor"] = floor_s / r["best_s"]
        by_case.setdefault((r["op"], r["shape"], r["dtype"]), {})[r["impl"]] = r["best_s"]
    for r in results:
        base = by_case[(r["op"], r["shape"], r["dtype"])]
        r["speedup_vs_eager"] = _ratio(base.get("eager_flow_grpo"), r["best_s"])
        r["speedup_vs_compile"] = _ratio(base.get("compile_flow_grpo"), r["best_s"])
    return summarise(results)


def _report(results, bandwidth, device, dtypes, ops, *, complete: bool) -> dict:
    from vrlvr import _native
    from vrlvr.backends import all_statuses
    from vrlvr.bench.common import machine

    summary = _derive(results, bandwidth)
    return {
        "benchmark": "sde_step",
        "complete": complete,
        "machine": machine(
            torch.get_num_threads(),
            native_threads=_native.max_threads(),
            native_isa=_native.sde_cpu_isa(),
            # glibc's malloc settings: see the module docstring ("fresh outputs")
            malloc_env={k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
            device=str(device),
            backends={s.name: s.detail for s in all_statuses()},
        ),
        "copy_bandwidth": {str(k): v for k, v in bandwidth.items()},
        "gpu_expectations": {
            "why": "bandwidth-bound (~10 flops per 8-20 bytes): time = bytes / "
            f"({STREAMING_EFFICIENCY:.0%} of peak DRAM bandwidth) for both the Triton and the CUDA kernel",
            "cases": gpu_expectations(dtypes, ops),
        },
        "summary": summary,
        "results": results,
    }


def run(
    shapes, dtypes, ops, repeats: int, device: torch.device, compile_baseline: bool = True, partial_out=None
) -> dict:
    """The report; with partial_out, a report of the cases so far is written there after every
    case group ("complete": false), so a run cut short by a time limit still leaves its figures."""
    impls = implementations(device, compile_baseline)
    results = []
    bandwidth = {}
    for shape_name in shapes:
        shape = SHAPES[shape_name]
        numel = math.prod(shape)
        for dtype in dtypes:
            for op in ops:
                moved = bytes_moved(op, numel, dtype)
                # copies of these bytes before every case (and once more at the end): the floor is
                # the best of all of them
                copy = copy_bandwidth(moved, device=device)
                bandwidth[moved] = _best_copy(bandwidth[moved], copy) if moved in bandwidth else copy
                for impl in impls:
                    fn = make_case(op, impl, shape, dtype, device)
                    best, median = _time(fn, repeats, device)
                    del fn
                    results.append(
                        {
                            "op": op,
                            "impl": impl,
                            "shape": shape_name,
                            "dims": list(shape),
                            "dtype": str(dtype).removeprefix("torch."),
                            "best_s": best,
                            "median_s": median,
                            "bytes": moved,
                            "GBps": moved / best / 1e9,
                        }
                    )
                    print(
                        f"{op:16s} {shape_name:6s} {results[-1]['dtype']:9s} {impl:18s} {best * 1e3:9.3f} ms "
                        f"(median {median * 1e3:9.3f}) {results[-1]['GBps']:6.1f} GB/s",
                        file=sys.stderr,
                    )
                if partial_out:
                    partial = _report(results, bandwidth, device, dtypes, ops, complete=False)
                    with open(partial_out, "w") as f:
                        json.dump(partial, f, indent=2)
    # the copies again, after the cases: the floor is the best the memory did in this run
    for moved in bandwidth:
        bandwidth[moved] = _best_copy(bandwidth[moved], copy_bandwidth(moved, device=device))
    report = _report(results, bandwidth, device, dtypes, ops, complete=True)
    for row in report["summary"]:
        print(
            f"{row['op']:16s} {row['shape']:6s} {row['dtype']:9s} {row['fused']:6s} "
            f"x{row['fused_vs_eager'] or 0:.1f} vs eager, x{row['fused_vs_compile'] or 0:.2f} vs compile, "
            f"{row['fused_fraction_of_floor']:.0%} of the copy floor",
            file=sys.stderr,
        )
    return report


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="small,wan", help=f"comma-separated of {', '.join(SHAPES)}")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and vrlvr._native alike (default: as set)",
    )
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    ap.add_argument("--out", "--json", dest="out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    shapes = args.shapes.split(",")
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r}: expected one of {', '.join(SHAPES)}")
    ops = args.ops.split(",")
    for o in ops:
        if o not in OPS:
            ap.error(f"unknown op {o!r}: expected one of {', '.join(OPS)}")
    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    if args.threads is not None:
        from vrlvr import _native

        torch.set_num_threads(args.threads)
        _native.set_num_threads(args.threads)
    device = torch.device(args.device)
    report = run(shapes, dtypes, ops, args.repeats, device, not args.no_compile, partial_out=args.out)
    from vrlvr.bench.common import emit

    return emit(report, args.out)


if __name__ == "__main__":
    main()
