"""pytest-benchmark micro cases of the SDE op (not part of the default `tests/` run):

    python -m pytest bench/test_bench_sde.py --benchmark-columns=min,median,ops

A rollout step, a re-score and a re-score with backward on a mid-sized latent [4, 16, 8, 32, 32]
(524k elements), for eager and torch.compile'd Flow-GRPO-style torch and each vrlvr backend that
runs here. The full sweep with bandwidth and memory-floor numbers is bench/bench_sde.py.
"""

import importlib.util
import os

import pytest
import torch

from vrlvr.ops import dispatch, sde_logprob, sde_step

_spec = importlib.util.spec_from_file_location(
    "bench_sde", os.path.join(os.path.dirname(__file__), "bench_sde.py")
)
bench_sde = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_sde)

SHAPE = (4, 16, 8, 32, 32)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
IMPLS = bench_sde.implementations(DEVICE)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x, v, noise = (torch.randn(SHAPE, generator=g).to(DEVICE) for _ in range(3))
    x_next = sde_step(x, v, 0.9, 0.85, noise, backend="torch").x_next
    return x, v, noise, x_next


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", ["step", "logprob", "logprob_fwd_bwd"])
def test_sde_op(benchmark, impl, op):
    fn = bench_sde.make_case(op, impl, SHAPE, torch.float32, DEVICE)

    def run():
        fn()
        _sync()

    benchmark.group = op
    benchmark(run)


@pytest.mark.parametrize("backend", [b for b in ("cpu", "cuda") if b in IMPLS])
def test_fused_step_is_consistent_while_benchmarked(benchmark, data, backend):
    """The timed fused step also satisfies the on-policy identity (a benchmark that measures a
    broken kernel is worse than none)."""
    x, v, noise, _ = data
    out = benchmark(lambda: sde_step(x, v, 0.9, 0.85, noise, backend=backend))
    again = sde_logprob(x, v, out.x_next, 0.9, 0.85, eta=0.7, mode="sde", backend=backend)
    assert torch.equal(again, out.logp)
    assert dispatch.select_backend(DEVICE, backend) == backend
