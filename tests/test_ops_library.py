"""The SDE ops as torch.library custom ops: schema, fake-tensor and autograd registrations
(torch.library.opcheck), and a torch.compile(fullgraph=True) training step that calls the fused
kernels without graph breaks and gives the eager results."""

import pytest
import torch

from vrlvr.ops import sde_kl, sde_logprob, sde_step
from vrlvr.ops.sde_library import (
    sde_kl_backward_op,
    sde_kl_op,
    sde_logprob_backward_op,
    sde_logprob_op,
    sde_step_op,
)

BACKENDS = ["cpu", "triton"]  # the CUDA backend: tests/test_sde_gpu.py


def _data(shape=(3, 4, 5), dtype_x=torch.float32, dtype_v=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, noise = (torch.randn(shape, generator=g).to(dtype_x) for _ in range(2))
    v, v_ref = (torch.randn(shape, generator=g).to(dtype_v) for _ in range(2))
    return x, v, noise, v_ref


def _sig(*values):
    return [torch.tensor(s, dtype=torch.float64) for s in values]


PAIRS = [(torch.float32, torch.float32), (torch.float32, torch.bfloat16), (torch.float16, torch.float16)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtypes", PAIRS)
def test_opcheck_every_op(backend, dtypes):
    x, v, noise, v_ref = _data(dtype_x=dtypes[0], dtype_v=dtypes[1])
    s, sn, smax = _sig(0.9, 0.85, 0.96)
    per_sample = torch.tensor([0.9, 0.7, 1.0], dtype=torch.float64)
    x_next = sde_step(x, v, 0.9, 0.85, noise, backend=backend).x_next
    vg = v.clone().requires_grad_(True)
    grad = torch.randn(3)
    cases = [
        (sde_step_op, (x, v, noise, s, sn, smax, 0.7, "sde", backend, True)),
        (sde_step_op, (x, v, noise, per_sample, per_sample * 0.5, None, 0.7, "sde", backend, False)),
        (sde_step_op, (x, v, None, s, sn, None, 0.0, "ode", backend, False)),
        (sde_logprob_op, (x, vg, x_next, s, sn, smax, 0.7, "sde", backend)),
        (sde_logprob_op, (x, vg, x_next, s, sn, None, 0.5, "cps", backend)),
        (sde_logprob_backward_op, (grad, x, v, x_next, s, sn, smax, 0.7, "dance", backend)),
        (sde_kl_op, (vg, v_ref, s, sn, None, 0.7, "sde", backend)),
        (sde_kl_backward_op, (grad, v, v_ref, s, sn, None, 0.7, "sde", backend)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck_non_contiguous_inputs(backend):
    x, v, noise, v_ref = (t.transpose(1, 2) for t in _data(shape=(2, 5, 7)))
    s, sn, smax = _sig(0.9, 0.85, 0.96)
    vg = v.detach().clone().requires_grad_(True)
    x_next = sde_step(x, v, 0.9, 0.85, noise, backend=backend).x_next.transpose(1, 2).contiguous()
    x_next = x_next.transpose(1, 2)
    torch.library.opcheck(sde_step_op, (x, v, noise, s, sn, smax, 0.7, "sde", backend, True))
    torch.library.opcheck(sde_logprob_op, (x, vg, x_next, s, sn, smax, 0.7, "sde", backend))
    torch.library.opcheck(sde_kl_op, (vg, v_ref, s, sn, None, 0.7, "sde", backend))


def test_ops_are_registered_under_the_vrlvr_namespace():
    for name in ("sde_step", "sde_logprob", "sde_logprob_backward", "sde_kl", "sde_kl_backward"):
        assert hasattr(torch.ops.vrlvr, name)


def test_bad_sigma_inside_the_op_raises_a_clear_error():
    x, v, noise, _ = _data()
    with pytest.raises(ValueError, match=r"sigma_next must be in \[0, sigma\)"):
        sde_step_op(x, v, noise, *_sig(0.5, 0.6), None, 0.7, "sde", "cpu", False)
    with pytest.raises(ValueError, match="sigma has shape"):
        sde_logprob_op(x, v, x, torch.ones(2, dtype=torch.float64), *_sig(0.5), None, 0.7, "sde", "cpu")
    with pytest.raises(ValueError, match="KL is undefined"):
        sde_kl_op(v, v, *_sig(0.5, 0.0), None, 0.5, "cps", "cpu")


def _grpo_step(x, v, noise, v_ref, sigma, sigma_next):
    """A GRPO-style loss: sample, re-score (ratio), KL; the three fused ops in one function."""
    out = sde_step(x, v.detach(), sigma, sigma_next, noise, eta=0.7, mode="sde", sigma_max=0.96)
    logp = sde_logprob(x, v, out.x_next, sigma, sigma_next, eta=0.7, mode="sde", sigma_max=0.96)
    kl = sde_kl(v, v_ref, sigma, sigma_next, eta=0.7, mode="sde")
    ratio = torch.exp(logp - out.logp)
    return (-ratio * torch.tensor([1.0, -0.5, 0.25]) + 0.04 * kl).mean(), ratio


def _compiled_matches_eager(compile_backend, sigmas):
    torch._dynamo.reset()
    x, v, noise, v_ref = _data()
    compiled = torch.compile(_grpo_step, fullgraph=True, backend=compile_backend)
    for sigma, sigma_next in sigmas:
        v1 = v.clone().requires_grad_(True)
        v2 = v.clone().requires_grad_(True)
        loss1, ratio1 = compiled(x, v1, noise, v_ref, sigma, sigma_next)
        loss1.backward()
        loss2, ratio2 = _grpo_step(x, v2, noise, v_ref, sigma, sigma_next)
        loss2.backward()
        # on-policy: the fused kernels re-score their own sample exactly, compiled or not
        assert torch.equal(ratio1, torch.ones(3))
        assert torch.equal(ratio2, torch.ones(3))
        torch.testing.assert_close(loss1, loss2, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(v1.grad, v2.grad, rtol=1e-5, atol=1e-8)


def test_compiled_training_step_has_no_graph_breaks():
    """fullgraph=True fails on any graph break; aot_eager traces forward and backward through the
    fake and autograd registrations without inductor's (slow) code generation."""
    _compiled_matches_eager("aot_eager", [(0.9, 0.85), (0.8, torch.tensor([0.7, 0.6, 0.5]))])


@pytest.mark.slow
def test_compiled_training_step_with_inductor():
    _compiled_matches_eager("inductor", [(0.9, 0.85), (1.0, 0.9)])
