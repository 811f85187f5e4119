"""Every fast backend that can run CPU tensors here ("cpu" = vrlvr._native, "triton" in Triton's
interpreter) against the torch reference, through the public vrlvr.ops API: modes, dtypes (and
mixed x / v dtypes), odd shapes, one element, non-contiguous inputs, per-sample sigmas, the
sigma == 1 step; the on-policy identity (re-scoring a rollout gives its logp bit for bit);
determinism; exact fp16 / bf16 rounding; and the accuracy of a Wan-sized per-sample reduction."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrlvr.ops import dispatch, sde_kl, sde_logprob, sde_step
from vrlvr.ops.sde_reference import sde_logprob_reference


def _fast_backends():
    names = []
    for name in ("cpu", "triton"):
        if dispatch.unavailable_reason(name, torch.device("cpu")) is None:
            names.append(name)
    return names


FAST = _fast_backends()
ALL = ["torch", *FAST]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MODES = ["sde", "dance", "cps", "ode"]

# per-sample sigmas: the sigma == 1 step, a middle step, the last step (to 0)
SIGMA = torch.tensor([1.0, 0.6, 0.3])
SIGMA_NEXT = torch.tensor([0.95, 0.45, 0.0])

# storage rounding of the outputs: one ulp of the dtype (the fp32 means of two backends differ in
# the last bit, which can move a rounded value by one step)
ULP = {torch.float32: 2e-6, torch.bfloat16: 2**-7, torch.float16: 2**-10}


def test_native_and_triton_backends_are_available_here():
    assert FAST == ["cpu", "triton"], [
        dispatch.unavailable_reason(n, torch.device("cpu")) for n in ("cpu", "triton")
    ]


def _inputs(shape, dtype_x=torch.float32, dtype_v=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(dtype_x)
    v = torch.randn(shape, generator=g).to(dtype_v or dtype_x)
    noise = torch.randn(shape, generator=g).to(dtype_x)
    return x, v, noise


def _sigmas(batch):
    reps = -(-batch // 3)
    return SIGMA.repeat(reps)[:batch], SIGMA_NEXT.repeat(reps)[:batch]


def _assert_step_matches_reference(backend, x, v, noise, sigma, sigma_next, mode, eta=0.7, sigma_max=None):
    kw = dict(eta=eta, mode=mode, sigma_max=sigma_max)
    got = sde_step(x, v, sigma, sigma_next, noise, backend=backend, return_mean=True, **kw)
    want = sde_step(x, v, sigma, sigma_next, noise, backend="torch", return_mean=True, **kw)
    assert got.x_next.shape == x.shape and got.x_next.dtype == x.dtype
    assert got.logp.shape == (x.shape[0],) and got.logp.dtype == torch.float32
    assert got.mean.shape == x.shape and got.mean.dtype == torch.float32
    torch.testing.assert_close(got.mean, want.mean, rtol=1e-5, atol=1e-5)
    tol = ULP[x.dtype]
    torch.testing.assert_close(got.x_next.float(), want.x_next.float(), rtol=tol, atol=tol)
    if mode == "ode":
        assert torch.equal(got.logp, torch.zeros_like(got.logp))
        return
    # the logp belongs to the sample actually returned: score that sample with the reference
    scored = sde_logprob_reference(
        x, v, got.x_next, sigma, sigma_next, eta=eta, mode=mode, sigma_max=sigma_max
    )
    torch.testing.assert_close(got.logp, scored, rtol=2e-5, atol=2e-5)
    # and, where the two backends stored the same sample, it is the reference's logp
    if torch.equal(got.x_next, want.x_next):
        torch.testing.assert_close(got.logp, want.logp, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_step_matches_reference_per_mode_and_dtype(backend, mode, dtype):
    x, v, noise = _inputs((3, 4, 5, 7), dtype)
    sigma, sigma_next = _sigmas(3)
    _assert_step_matches_reference(backend, x, v, noise, sigma, sigma_next, mode)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize(
    "dtype_x,dtype_v", [(torch.float32, torch.bfloat16), (torch.bfloat16, torch.float32)]
)
def test_mixed_dtypes_fp32_latents_with_bf16_velocity(backend, dtype_x, dtype_v):
    x, v, noise = _inputs((3, 2, 33), dtype_x, dtype_v)
    sigma, sigma_next = _sigmas(3)
    _assert_step_matches_reference(backend, x, v, noise, sigma, sigma_next, "sde")


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize(
    "shape",
    [(1,), (1, 1), (3,), (2, 1, 1, 1), (5, 3, 1, 7), (2, 16384 * 2 + 7), (1, 2 * 65536 + 3), (3, 65536 + 5)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_odd_shapes_and_single_elements(backend, shape):
    # 16384 (native) and 65536 (Triton interpreter) are the chunk / block sizes: cross them, with
    # one sample and with several (each program / chunk must find its own sample and block)
    x, v, noise = _inputs(shape, seed=len(shape))
    sigma, sigma_next = _sigmas(shape[0])
    _assert_step_matches_reference(backend, x, v, noise, sigma, sigma_next, "sde")


@pytest.mark.parametrize("backend", FAST)
def test_non_contiguous_inputs(backend):
    base_x, base_v, base_n = _inputs((4, 6, 10))
    x = base_x.transpose(1, 2)  # [4, 10, 6], strided
    v = base_v.transpose(1, 2).contiguous()  # [4, 10, 6], contiguous beside strided ones
    noise = torch.randn(10, 6, 4).permute(2, 0, 1)  # [4, 10, 6], another layout
    wide = torch.randn(4, 10, 12)[..., ::2]  # [4, 10, 6], every other column
    assert not x.is_contiguous() and not noise.is_contiguous() and not wide.is_contiguous()
    sigma, sigma_next = torch.tensor([0.9, 0.7, 0.5, 0.3]), torch.tensor([0.8, 0.6, 0.2, 0.1])
    _assert_step_matches_reference(backend, x, v, noise, sigma, sigma_next, "sde")
    _assert_step_matches_reference(backend, wide, x, noise, sigma, sigma_next, "cps")
    lp = sde_logprob(x, wide, noise, sigma, sigma_next, eta=0.7, mode="sde", backend=backend)
    want = sde_logprob(x, wide, noise, sigma, sigma_next, eta=0.7, mode="sde", backend="torch")
    torch.testing.assert_close(lp, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("backend", FAST)
def test_scalar_and_per_sample_sigmas_agree(backend):
    x, v, noise = _inputs((3, 50))
    per_sample = sde_step(x, v, torch.full((3,), 0.7), torch.full((3,), 0.65), noise, backend=backend)
    as_float = sde_step(x, v, 0.7, 0.65, noise, backend=backend)
    as_0d = sde_step(x, v, torch.tensor(0.7), torch.tensor(0.65), noise, backend=backend)
    for a, b in ((per_sample, as_float), (per_sample, as_0d)):
        assert torch.equal(a.x_next, b.x_next) and torch.equal(a.logp, b.logp)


@pytest.mark.parametrize("backend", FAST)
def test_sigma_one_uses_sigma_max(backend):
    x, v, noise = _inputs((2, 40))
    sigma, sigma_next = torch.tensor([1.0, 1.0]), torch.tensor([0.96, 0.96])
    for sigma_max in (None, 0.96, 0.5):
        _assert_step_matches_reference(backend, x, v, noise, sigma, sigma_next, "sde", sigma_max=sigma_max)
    a = sde_step(x, v, sigma, sigma_next, noise, sigma_max=0.5, backend=backend)
    b = sde_step(x, v, sigma, sigma_next, noise, backend=backend)
    assert torch.isfinite(a.logp).all() and not torch.equal(a.x_next, b.x_next)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("mode", ["sde", "dance", "cps"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_on_policy_identity_first_ratio_is_exactly_one(backend, mode, dtype):
    """Re-scoring a rollout's stored sample under the same velocity gives its logp bit for bit."""
    x, v, noise = _inputs((3, 3, 41), dtype, seed=7)
    sigma, sigma_next = _sigmas(3)
    kw = dict(eta=0.7, mode=mode, backend=backend)
    rollout = sde_step(x, v, sigma, sigma_next, noise, **kw)
    v_train = v.clone().requires_grad_(True)
    logp = sde_logprob(x, v_train, rollout.x_next, sigma, sigma_next, **kw)
    assert torch.equal(logp.detach(), rollout.logp)
    ratio = torch.exp(logp - rollout.logp)
    assert torch.equal(ratio.detach(), torch.ones(3))
    ratio.sum().backward()  # the ratio is differentiable w.r.t. the velocity
    assert v_train.grad is not None and v_train.grad.shape == v.shape


@pytest.mark.parametrize("backend", FAST)
def test_results_are_deterministic(backend):
    x, v, noise = _inputs((2, 3 * 16384 + 11), seed=3)
    a = sde_step(x, v, 0.8, 0.7, noise, backend=backend)
    b = sde_step(x, v, 0.8, 0.7, noise, backend=backend)
    assert torch.equal(a.x_next, b.x_next) and torch.equal(a.logp, b.logp)


def test_native_reduction_does_not_depend_on_the_thread_count():
    from vrlvr import _native

    x, v, noise = _inputs((2, 40 * 16384 + 5), seed=4)  # big enough to run in parallel
    before = _native.max_threads()
    try:
        _native.set_num_threads(1)
        one = sde_step(x, v, 0.8, 0.7, noise, backend="cpu")
        kl_one = sde_kl(v, noise, 0.8, 0.7, eta=0.7, mode="sde", backend="cpu")
        _native.set_num_threads(2)
        two = sde_step(x, v, 0.8, 0.7, noise, backend="cpu")
        kl_two = sde_kl(v, noise, 0.8, 0.7, eta=0.7, mode="sde", backend="cpu")
    finally:
        _native.set_num_threads(before)
    assert torch.equal(one.x_next, two.x_next) and torch.equal(one.logp, two.logp)
    assert torch.equal(kl_one, kl_two)


def test_wan_sized_per_sample_reduction_is_accurate():
    """1.57M elements per sample (a Wan2.2-TI2V-5B latent 48x21x30x52): the native blocked
    fp32 / float64 sums stay within float32 rounding of the float64 answer."""
    shape = (2, 48, 21, 30, 52)
    x, v, noise = _inputs(shape, seed=5)
    out = sde_step(x, v, 0.9, 0.85, noise, backend="cpu")
    exact = sde_logprob_reference(
        x.double(), v.double(), out.x_next.double(), 0.9, 0.85, eta=0.7, mode="sde"
    )  # float64 everywhere
    torch.testing.assert_close(out.logp.double(), exact, rtol=0, atol=2e-6)
    # the multi-threaded path keeps the on-policy identity too
    again = sde_logprob(x, v, out.x_next, 0.9, 0.85, eta=0.7, mode="sde", backend="cpu")
    assert torch.equal(again, out.logp)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN inputs, on purpose
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_half_precision_value_round_trips(backend, dtype):
    """ode with cx = 1, v = 0: x' = x for all 65536 bit patterns (subnormals, Inf, NaN included)."""
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    x = bits.view(dtype).reshape(1, -1)
    out = sde_step(x, torch.zeros(x.shape), 1.0, 0.5, None, mode="ode", backend=backend).x_next
    torch.testing.assert_close(out.float(), x.float(), rtol=0, atol=0, equal_nan=True)


def _rounding_cases():
    g = torch.Generator().manual_seed(11)
    mant = torch.rand(20000, generator=g) + 1.0
    exps = torch.randint(-30, 20, (20000,), generator=g).float()
    sign = torch.where(torch.rand(20000, generator=g) < 0.5, -1.0, 1.0)
    spread = sign * mant * torch.exp2(exps)  # subnormal halves up to fp16 overflow
    # exact ties between neighbouring fp16 / bf16 values, and values around 65504 / 65520
    h = torch.randn(3000, generator=g).half().float()
    ties_f16 = (h + torch.nextafter(h.half(), torch.tensor(float("inf")).half()).float()) / 2
    b = torch.randn(3000, generator=g).bfloat16().float()
    ties_bf16 = (b + torch.nextafter(b.bfloat16(), torch.tensor(float("inf")).bfloat16()).float()) / 2
    edges = torch.tensor([65504.0, 65519.0, 65520.0, 65536.0, 1e-8, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 3e38])
    return torch.cat([spread, ties_f16, ties_bf16, edges, -edges]).reshape(1, -1)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # 3e38 -> Inf, on purpose
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_float_to_half_rounds_to_nearest_even_like_torch(backend, dtype):
    """sigma 1 -> 0 in ode mode gives x' = 1 * 0 + (-1) * v = -v exactly in fp32, so x_next is
    the kernel's own fp32 -> fp16 / bf16 conversion of -v."""
    v = _rounding_cases()
    x = torch.zeros(v.shape, dtype=dtype)
    out = sde_step(x, v, 1.0, 0.0, None, mode="ode", backend=backend).x_next
    torch.testing.assert_close(out.float(), (-v).to(dtype).float(), rtol=0, atol=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.integers(1, 4),
    inner=st.lists(st.integers(1, 9), min_size=0, max_size=3),
    mode=st.sampled_from(MODES),
    dtype=st.sampled_from(DTYPES),
    eta=st.floats(0.05, 1.0),
    data=st.data(),
)
def test_native_matches_reference_on_random_cases(batch, inner, mode, dtype, eta, data):
    sigma = torch.tensor(data.draw(st.lists(st.floats(0.02, 1.0), min_size=batch, max_size=batch)))
    frac = torch.tensor(data.draw(st.lists(st.floats(0.0, 0.95), min_size=batch, max_size=batch)))
    sigma_next = (sigma * frac).to(torch.float32)  # in [0, sigma)
    x, v, noise = _inputs((batch, *inner), dtype, seed=data.draw(st.integers(0, 2**16)))
    _assert_step_matches_reference("cpu", x, v, noise, sigma, sigma_next, mode, eta=eta)


def test_triton_launch_grid_fits_cuda_limits_for_any_batch():
    """The Triton grid is 1-D (axis 0 allows 2^31 - 1 programs): a batch on grid axis 1 would stop
    at 65535 samples on a GPU, which the interpreter would never show."""
    if "triton" not in FAST:
        pytest.skip("triton is not usable here")
    from vrlvr.kernels import sde_step as kernels

    for B, N in ((70000, 1), (70000, 3 * 65536 + 1), (1, 48 * 21 * 30 * 52)):
        block, n_blocks, grid = kernels._grid(B, N)
        assert grid == (B * n_blocks,) and n_blocks == -(-N // block)
    with pytest.raises(ValueError, match="too large for one launch"):
        kernels._grid(1, 2**31)
