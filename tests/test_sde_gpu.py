"""The CUDA and Triton SDE kernels on a GPU, against the torch reference (``pytest -m gpu``).

Skipped, never faked, without a CUDA device. The Triton cases need Triton's compiler, not its
interpreter: tests/conftest.py sets TRITON_INTERPRET=1 for the CPU suite, so run this file with
``--noconftest`` (bench/gpu_check.sh does) or the Triton cases skip and say so.

Covered: step / logprob / kl and the gradients of logprob and kl, fp32 / bf16 / fp16 and mixed
(x, v) dtype pairs, odd and tiny shapes, rows that are not whole 16-byte groups, unaligned
addresses (the CUDA kernels' scalar path must give the vector path's bits), a batch > 65,535, a
tensor of more than 2^31 elements (when the GPU has the memory), non-contiguous inputs, a side
stream (the kernels must run on the current stream), the on-policy identity (re-scored logp ==
recorded logp bit for bit within a backend), the custom ops' opcheck and a compiled GRPO step.
"""

import os

import pytest
import torch

from vrlvr.ops import dispatch, sde_kl, sde_logprob, sde_step

HAS_GPU = torch.cuda.is_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not HAS_GPU, reason="no CUDA device: GPU tests are skipped, never faked"),
]


def _backend_skip(name):
    if not HAS_GPU:
        return "no CUDA device"
    if name == "triton" and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return "TRITON_INTERPRET=1 (set by tests/conftest.py): run this file with --noconftest"
    return dispatch.unavailable_reason(name, torch.device("cuda"))


BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(why is not None, reason=str(why)))
    for name, why in ((n, _backend_skip(n)) for n in ("cuda", "triton"))
]
MODES = ["sde", "dance", "cps"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
PAIRS = [(d, d) for d in DTYPES] + [
    (torch.float32, torch.bfloat16),
    (torch.float32, torch.float16),
    (torch.bfloat16, torch.float32),
]
# one unit in the last place of each storage dtype (relative)
ULP = {torch.float32: 2e-6, torch.bfloat16: 2**-7, torch.float16: 2**-10}
KW = dict(eta=0.7, sigma_max=0.96)


def _sigmas(B):
    """Per-sample sigmas including sigma == 1 (Flow-GRPO's sigma_max branch)."""
    sigma = torch.linspace(1.0, 0.2, B)
    return sigma, sigma * 0.8


def _inputs(shape, dtype_x, dtype_v=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype_v = dtype_v or dtype_x
    x, noise = (torch.randn(shape, generator=g).to(dtype_x).cuda() for _ in range(2))
    v, v_ref = (torch.randn(shape, generator=g).to(dtype_v).cuda() for _ in range(2))
    return x, v, noise, v_ref


def _weights(B):
    return torch.linspace(-1.0, 2.0, B, device="cuda")


def _check_step(backend, mode, x, v, noise, sigma, sigma_next):
    """Step against the reference; the recorded logp against the reference's score of the same
    x'; the fast re-score against the recorded logp, bit for bit."""
    kw = dict(KW, mode=mode)
    got = sde_step(x, v, sigma, sigma_next, noise, backend=backend, return_mean=True, **kw)
    want = sde_step(x, v, sigma, sigma_next, noise, backend="torch", return_mean=True, **kw)
    torch.testing.assert_close(got.mean, want.mean, rtol=1e-5, atol=1e-5)
    tol = ULP[x.dtype]
    torch.testing.assert_close(got.x_next.float(), want.x_next.float(), rtol=tol, atol=tol)
    scored = sde_logprob(x, v, got.x_next, sigma, sigma_next, backend="torch", **kw)
    torch.testing.assert_close(got.logp, scored, rtol=2e-5, atol=2e-5)
    again = sde_logprob(x, v, got.x_next, sigma, sigma_next, backend=backend, **kw)
    assert torch.equal(again, got.logp), "on-policy identity: the first PPO ratio must be exactly 1"
    return got


def _check_grads(backend, mode, x, v, v_ref, x_next, sigma, sigma_next):
    kw = dict(KW, mode=mode)
    w = _weights(x.shape[0])
    out = {}
    for name in (backend, "torch"):
        vl = v.clone().requires_grad_(True)
        vk = v.clone().requires_grad_(True)
        logp = sde_logprob(x, vl, x_next, sigma, sigma_next, backend=name, **kw)
        (logp * w).sum().backward()
        kl = sde_kl(vk, v_ref, sigma, sigma_next, backend=name, **kw)
        (kl * w).sum().backward()
        out[name] = (logp.detach(), vl.grad.float(), kl.detach(), vk.grad.float())
    got, want = out[backend], out["torch"]
    torch.testing.assert_close(got[0], want[0], rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(got[2], want[2], rtol=2e-5, atol=1e-6)
    tol = 2 * ULP[v.dtype]
    for g, r in ((got[1], want[1]), (got[3], want[3])):
        scale = r.abs().max().clamp_min(1e-30)
        torch.testing.assert_close(g / scale, r / scale, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtypes", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}".replace("torch.", ""))
def test_step_logprob_kl_and_gradients_match_reference(backend, mode, dtypes):
    x, v, noise, v_ref = _inputs((4, 16, 3, 8, 8), *dtypes)
    sigma, sigma_next = _sigmas(4)
    got = _check_step(backend, mode, x, v, noise, sigma, sigma_next)
    _check_grads(backend, mode, x, v, v_ref, got.x_next, sigma, sigma_next)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape",
    [(1, 1), (3, 1), (2, 3), (5, 7, 3), (2, 2047), (2, 2049), (3, 4096 * 3 + 17), (2, 8 * 999), (1, 65537)],
    ids=str,
)
def test_odd_and_tiny_shapes(backend, dtype, shape):
    x, v, noise, v_ref = _inputs(shape, dtype, seed=1)
    sigma, sigma_next = _sigmas(shape[0])
    got = _check_step(backend, "sde", x, v, noise, sigma, sigma_next)
    _check_grads(backend, "sde", x, v, v_ref, got.x_next, sigma, sigma_next)


def _unaligned(t):
    """A copy of t stored one element past a 16-byte boundary (same values, same shape)."""
    buf = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    out = buf[1:].view(t.shape)
    out.copy_(t)
    assert out.data_ptr() % 16 != 0
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtypes", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}".replace("torch.", ""))
def test_unaligned_inputs_give_the_aligned_bits(backend, dtypes):
    """The CUDA kernels take a 16-byte path for aligned rows and an element path otherwise; both
    visit the elements in the same order, so a rollout stored at an odd address re-scores to the
    same logp and every output is bit-identical."""
    x, v, noise, v_ref = _inputs((3, 4, 2048 + 64), *dtypes, seed=2)
    sigma, sigma_next = _sigmas(3)
    kw = dict(KW, mode="sde", backend=backend)
    ref = sde_step(x, v, sigma, sigma_next, noise, return_mean=True, **kw)
    ux, uv, un, ur = (_unaligned(t) for t in (x, v, noise, v_ref))
    odd = sde_step(ux, uv, sigma, sigma_next, un, return_mean=True, **kw)
    for a, b in zip(ref, odd):
        assert torch.equal(a, b)
    # the aligned rollout re-scored from an unaligned copy of its sample
    xn = _unaligned(ref.x_next)
    assert torch.equal(sde_logprob(x, v, xn, sigma, sigma_next, **kw), ref.logp)
    assert torch.equal(sde_logprob(ux, uv, ref.x_next, sigma, sigma_next, **kw), ref.logp)
    assert torch.equal(sde_kl(uv, ur, sigma, sigma_next, **kw), sde_kl(v, v_ref, sigma, sigma_next, **kw))
    for vv in (v, uv):
        g = vv.clone().requires_grad_(True)
        (sde_logprob(x, g, ref.x_next, sigma, sigma_next, **kw) * _weights(3)).sum().backward()
        if vv is v:
            grad_aligned = g.grad
        else:
            assert torch.equal(g.grad, grad_aligned)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_beyond_65535(backend):
    B = 65535 + 1000
    x, v, noise, v_ref = _inputs((B, 3), torch.float32, seed=3)
    sigma = torch.rand(B, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.1
    got = _check_step(backend, "sde", x, v, noise, sigma, sigma * 0.5)
    _check_grads(backend, "sde", x, v, v_ref, got.x_next, sigma, sigma * 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend):
    x, v, noise, v_ref = (t.transpose(1, 3) for t in _inputs((3, 5, 7, 2050), torch.bfloat16, seed=4))
    assert not x.is_contiguous()
    sigma, sigma_next = _sigmas(3)
    got = _check_step(backend, "dance", x, v, noise, sigma, sigma_next)
    _check_grads(backend, "dance", x, v, v_ref, got.x_next, sigma, sigma_next)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_run_on_the_current_stream(backend):
    """Inputs written on a side stream behind a long spin: a kernel enqueued on any other stream
    would read them before they are written (NaN) and the check against the reference fails."""
    x, v, noise, v_ref = _inputs((2, 4, 4096), torch.float32, seed=5)
    sigma, sigma_next = _sigmas(2)
    want = sde_step(x, v, sigma, sigma_next, noise, backend="torch", mode="sde", **KW)
    late = [torch.full_like(t, float("nan")) for t in (x, v, noise, v_ref)]
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # ~0.1 s of spinning on the side stream
        for dst, src in zip(late, (x, v, noise, v_ref)):
            dst.copy_(src)
        got = sde_step(*late[:2], sigma, sigma_next, late[2], backend=backend, mode="sde", **KW)
        logp = sde_logprob(late[0], late[1], got.x_next, sigma, sigma_next, backend=backend, mode="sde", **KW)
        kl = sde_kl(late[1], late[3], sigma, sigma_next, backend=backend, mode="sde", **KW)
    assert torch.cuda.current_stream() != side
    side.synchronize()
    torch.testing.assert_close(got.x_next, want.x_next, rtol=ULP[torch.float32], atol=ULP[torch.float32])
    assert torch.equal(logp, got.logp)
    want_kl = sde_kl(v, v_ref, sigma, sigma_next, backend="torch", mode="sde", **KW)
    torch.testing.assert_close(kl, want_kl, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_than_2_31_elements(backend):
    """[2, 2^30 + 8] bf16 (2^31 + 16 elements): 64-bit indexing end to end. x' is checked against
    the reference slice by slice, logp and kl against float64 sums over the slices."""
    B, N = 2, 2**30 + 8
    need = 4 * B * N * 2 + (4 << 30)  # x, v, noise, x' in bf16 + slices and slack
    free, _ = torch.cuda.mem_get_info()
    if free < need:
        pytest.skip(f"needs {need / 2**30:.0f} GiB of free GPU memory, {free / 2**30:.0f} GiB free")
    g = torch.Generator(device="cuda").manual_seed(6)
    x, v, noise = (torch.randn(B, N, generator=g, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    kw = dict(eta=0.7, mode="dance")
    out = sde_step(x, v, 0.9, 0.8, noise, backend=backend, **kw)
    assert torch.equal(sde_logprob(x, v, out.x_next, 0.9, 0.8, backend=backend, **kw), out.logp)
    kl = sde_kl(v, x, 0.9, 0.8, backend=backend, **kw)
    sq = torch.zeros(B, dtype=torch.float64, device="cuda")
    d2 = torch.zeros(B, dtype=torch.float64, device="cuda")
    step = 1 << 26
    tol = ULP[torch.bfloat16]
    for lo in range(0, N, step):
        sl = slice(lo, min(lo + step, N))
        ref = sde_step(x[:, sl], v[:, sl], 0.9, 0.8, noise[:, sl], backend="torch", return_mean=True, **kw)
        torch.testing.assert_close(out.x_next[:, sl].float(), ref.x_next.float(), rtol=tol, atol=tol)
        sq += ((out.x_next[:, sl].double() - ref.mean.double()) ** 2).sum(dim=1)
        d2 += ((v[:, sl].double() - x[:, sl].double()) ** 2).sum(dim=1)
        del ref
    # dance: step std s = eta sqrt(sigma - sigma_next); the sigmas as fp32, as the op rounds them
    dt = float(torch.tensor(0.9)) - float(torch.tensor(0.8))
    s2 = 0.49 * dt
    logp = -(sq / N) / (2 * s2) - 0.5 * torch.log(torch.tensor(2 * torch.pi * s2, dtype=torch.float64))
    torch.testing.assert_close(out.logp.double(), logp, rtol=2e-5, atol=2e-5)
    cv = (1 + 0.49 / (2 * float(torch.tensor(0.9))) * (1 - float(torch.tensor(0.9)))) * -dt
    torch.testing.assert_close(kl.double(), cv * cv * (d2 / N) / (2 * s2), rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_are_deterministic(backend):
    x, v, noise, v_ref = _inputs((4, 3 * 2048 + 5), torch.float32, seed=7)
    sigma, sigma_next = _sigmas(4)
    kw = dict(KW, mode="sde", backend=backend)
    a = sde_step(x, v, sigma, sigma_next, noise, **kw)
    b = sde_step(x, v, sigma, sigma_next, noise, **kw)
    assert torch.equal(a.x_next, b.x_next) and torch.equal(a.logp, b.logp)
    assert torch.equal(sde_kl(v, v_ref, sigma, sigma_next, **kw), sde_kl(v, v_ref, sigma, sigma_next, **kw))


@pytest.mark.parametrize("backend", BACKENDS)
def test_custom_ops_opcheck_on_cuda(backend):
    from vrlvr.ops.sde_library import sde_kl_op, sde_logprob_op, sde_step_op

    x, v, noise, v_ref = _inputs((3, 4, 33), torch.float32, torch.bfloat16, seed=8)
    s, sn, smax = (torch.tensor(t, dtype=torch.float64) for t in (0.9, 0.8, 0.96))
    x_next = sde_step(x, v, 0.9, 0.8, noise, backend=backend).x_next
    vg = v.clone().requires_grad_(True)
    torch.library.opcheck(sde_step_op, (x, v, noise, s, sn, smax, 0.7, "sde", backend, True))
    torch.library.opcheck(sde_logprob_op, (x, vg, x_next, s, sn, smax, 0.7, "sde", backend))
    torch.library.opcheck(sde_kl_op, (vg, v_ref, s, sn, None, 0.7, "sde", backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_grpo_step_on_the_gpu(backend):
    """A GRPO step (sample, re-score, KL, loss, backward) under torch.compile(fullgraph=True) with
    inductor on the GPU: same loss and gradient as eager, first ratio exactly 1."""
    torch._dynamo.reset()
    os.environ["VRLVR_BACKEND"] = backend
    try:
        x, v, noise, v_ref = _inputs((4, 16, 2, 16, 16), torch.bfloat16, seed=9)
        adv = _weights(4)

        def grpo(v):
            out = sde_step(x, v.detach(), 0.9, 0.8, noise, mode="sde", **KW)
            logp = sde_logprob(x, v, out.x_next, 0.9, 0.8, mode="sde", **KW)
            ratio = torch.exp(logp - out.logp)
            kl = sde_kl(v, v_ref, 0.9, 0.8, mode="sde", **KW)
            return (-ratio * adv + 0.04 * kl).mean(), ratio

        compiled = torch.compile(grpo, fullgraph=True)
        v1, v2 = v.clone().requires_grad_(True), v.clone().requires_grad_(True)
        loss1, ratio1 = compiled(v1)
        loss1.backward()
        loss2, ratio2 = grpo(v2)
        loss2.backward()
    finally:
        del os.environ["VRLVR_BACKEND"]
    assert torch.equal(ratio1, torch.ones_like(ratio1))
    torch.testing.assert_close(loss1, loss2)
    torch.testing.assert_close(v1.grad.float(), v2.grad.float(), rtol=2 * ULP[torch.bfloat16], atol=1e-6)
