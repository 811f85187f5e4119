"""Gradients of sde_logprob and sde_kl w.r.t. the velocity: the fused backward of every fast
backend against autograd through the torch reference, per mode and dtype, with per-sample
upstream gradients; and an end-to-end clipped-ratio + KL loss through a small velocity model."""

import pytest
import torch

from vrlvr.ops import dispatch, sde_kl, sde_logprob, sde_step

FAST = [n for n in ("cpu", "triton") if dispatch.unavailable_reason(n, torch.device("cpu")) is None]
SIGMA = torch.tensor([1.0, 0.6, 0.3, 0.8])
SIGMA_NEXT = torch.tensor([0.95, 0.45, 0.0, 0.7])
# gradients are stored in v's dtype: compare within a couple of its ulps
TOL = {torch.float32: 1e-5, torch.bfloat16: 2 * 2**-7, torch.float16: 2 * 2**-10}


def _inputs(shape, dtype_v, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    v = torch.randn(shape, generator=g).to(dtype_v)
    x_next = (x + 0.1 * torch.randn(shape, generator=g)).contiguous()
    v_ref = (v.float() + 0.05 * torch.randn(shape, generator=g)).to(dtype_v)
    weights = torch.randn(shape[0], generator=g)  # per-sample upstream gradient
    return x, v, x_next, v_ref, weights


def _grad(fn, v, weights):
    v = v.detach().clone().requires_grad_(True)
    out = fn(v)
    (out * weights).sum().backward()
    return out.detach(), v.grad


def _assert_close_scaled(got, want, tol):
    scale = want.float().abs().max().clamp_min(1e-12)
    torch.testing.assert_close(got.float() / scale, want.float() / scale, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("mode", ["sde", "dance", "cps"])
@pytest.mark.parametrize("dtype_v", [torch.float32, torch.bfloat16, torch.float16])
def test_logprob_gradient_matches_autograd_through_reference(backend, mode, dtype_v):
    x, v, x_next, _, w = _inputs((4, 3, 37), dtype_v)
    kw = dict(eta=0.7, mode=mode)

    def run(name):
        return lambda vv: sde_logprob(x, vv, x_next, SIGMA, SIGMA_NEXT, backend=name, **kw)

    lp, grad = _grad(run(backend), v, w)
    lp_ref, grad_ref = _grad(run("torch"), v, w)
    assert grad.dtype == dtype_v and grad.shape == v.shape
    torch.testing.assert_close(lp, lp_ref, rtol=2e-5, atol=2e-5)
    _assert_close_scaled(grad, grad_ref, TOL[dtype_v])


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("mode", ["sde", "dance", "cps"])
@pytest.mark.parametrize("dtype_v", [torch.float32, torch.bfloat16, torch.float16])
def test_kl_and_its_gradient_match_reference(backend, mode, dtype_v):
    _, v, _, v_ref, w = _inputs((4, 5, 11), dtype_v, seed=1)
    sigma_next = SIGMA_NEXT.clone()
    sigma_next[2] = 0.1  # cps has no noise (and no KL) at sigma_next == 0

    def run(name):
        return lambda vv: sde_kl(vv, v_ref, SIGMA, sigma_next, eta=0.7, mode=mode, backend=name)

    kl, grad = _grad(run(backend), v, w)
    kl_ref, grad_ref = _grad(run("torch"), v, w)
    assert kl.dtype == torch.float32 and kl.shape == (4,)
    assert (kl >= 0).all()
    torch.testing.assert_close(kl, kl_ref, rtol=2e-5, atol=1e-6)
    _assert_close_scaled(grad, grad_ref, TOL[dtype_v])


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype_x", [torch.bfloat16, torch.float16])
def test_logprob_gradient_with_half_precision_latents(backend, dtype_x):
    """x and x_next stored in 16 bits (the fused backward reads them in x's dtype), v in fp32."""
    x, v, x_next, _, w = _inputs((4, 3, 37), torch.float32, seed=3)
    x, x_next = x.to(dtype_x), x_next.to(dtype_x)

    def run(name):
        return lambda vv: sde_logprob(x, vv, x_next, SIGMA, SIGMA_NEXT, eta=0.7, mode="sde", backend=name)

    lp, grad = _grad(run(backend), v, w)
    lp_ref, grad_ref = _grad(run("torch"), v, w)
    assert grad.dtype == torch.float32
    torch.testing.assert_close(lp, lp_ref, rtol=2e-5, atol=2e-5)
    _assert_close_scaled(grad, grad_ref, TOL[torch.float32])


@pytest.mark.parametrize("backend", ["torch", *FAST])
def test_kl_of_the_policy_to_itself_is_zero_with_zero_gradient(backend):
    _, v, _, _, w = _inputs((4, 9), torch.float32)
    kl, grad = _grad(lambda vv: sde_kl(vv, v, SIGMA, SIGMA_NEXT, eta=0.7, mode="sde", backend=backend), v, w)
    assert torch.equal(kl, torch.zeros(4)) and torch.equal(grad, torch.zeros_like(v))


@pytest.mark.parametrize("backend", ["torch", *FAST])
def test_gradient_reaches_non_contiguous_velocity_and_not_the_data(backend):
    x, v, x_next, _, w = _inputs((4, 6, 8), torch.float32, seed=2)
    base = v.transpose(1, 2).contiguous().requires_grad_(True)  # [4, 8, 6]
    v_strided = base.transpose(1, 2)  # [4, 6, 8], non-contiguous view of a leaf
    x_leaf = x.clone().requires_grad_(True)
    lp = sde_logprob(x_leaf, v_strided, x_next, SIGMA, SIGMA_NEXT, eta=0.7, mode="sde", backend=backend)
    (lp * w).sum().backward()
    _, want = _grad(lambda vv: sde_logprob(x, vv, x_next, SIGMA, SIGMA_NEXT, eta=0.7, mode="sde"), v, w)
    torch.testing.assert_close(base.grad.transpose(1, 2), want, rtol=1e-5, atol=1e-6)
    assert x_leaf.grad is None  # x and x_next are data: gradients flow to v only, on every backend


@pytest.mark.parametrize("backend", FAST)
def test_grpo_loss_gradient_through_a_velocity_model(backend):
    """Clipped-ratio policy loss + beta * KL, as the trainer computes it, through a linear
    velocity model: parameter gradients agree with the reference backend."""
    torch.manual_seed(0)
    B, N, D = 4, 64, 8
    x = torch.randn(B, N, D)
    model = torch.nn.Linear(D, D)
    ref_model = torch.nn.Linear(D, D)
    adv = torch.tensor([1.0, -0.5, 0.3, -1.2])
    with torch.no_grad():
        v_old = model(x)
        rollout = sde_step(x, v_old, SIGMA, SIGMA_NEXT, torch.randn_like(x), backend="torch")
        v_ref = ref_model(x)
        for p in model.parameters():  # the policy moved since the rollout
            p.add_(0.01 * torch.randn_like(p))

    def loss_grads(name):
        model.zero_grad()
        v = model(x)
        logp = sde_logprob(x, v, rollout.x_next, SIGMA, SIGMA_NEXT, eta=0.7, mode="sde", backend=name)
        ratio = torch.exp(logp - rollout.logp)
        policy = torch.maximum(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
        kl = sde_kl(v, v_ref, SIGMA, SIGMA_NEXT, eta=0.7, mode="sde", backend=name).mean()
        (policy + 0.04 * kl).backward()
        return [p.grad.clone() for p in model.parameters()]

    for got, want in zip(loss_grads(backend), loss_grads("torch")):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
