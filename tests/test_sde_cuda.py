"""The CUDA SDE kernels (vrlvr._cuda): the binding is built, importable and consistent with the
Python side everywhere; launches run only on a machine with a device and a CUDA build of torch,
and are skipped (never faked) otherwise."""

import shutil

import pytest
import torch

from vrlvr.ops import sde_args, sde_kl, sde_logprob, sde_step
from vrlvr.ops.sde_backends import DTYPE_CODES

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH: _cuda is not built")


def _device_count() -> int:
    try:
        from vrlvr import _cuda
    except ImportError:
        return 0
    return _cuda.device_count()


needs_gpu = pytest.mark.skipif(
    _device_count() == 0 or not torch.cuda.is_available(),
    reason="no CUDA device (or a CPU build of torch): CUDA launches are skipped, never faked",
)


@needs_nvcc
def test_cuda_binding_is_registered_and_matches_the_python_layout():
    from vrlvr import _cuda, _native

    assert "sde_step" in _cuda.build_info()["registered"]
    layout = _cuda.sde_coef_layout()
    assert layout == _native.sde_coef_layout()
    assert layout["count"] == sde_args.COEF_COUNT
    chunk = _cuda.sde_chunk_elems()
    assert _cuda.sde_workspace_doubles(4, 1) == 4
    assert _cuda.sde_workspace_doubles(4, chunk) == 4
    assert _cuda.sde_workspace_doubles(4, chunk + 1) == 8
    wan = 48 * 21 * 30 * 52
    assert _cuda.sde_workspace_doubles(4, wan) == 4 * -(-wan // chunk)


def test_dtype_codes_match_the_native_header():
    from vrlvr import _native

    codes = _native.sde_dtype_codes()
    assert {getattr(torch, name): code for name, code in codes.items()} == DTYPE_CODES


@needs_nvcc
def test_cuda_launcher_rejects_bad_sizes_before_touching_the_device():
    from vrlvr import _cuda

    with pytest.raises(RuntimeError, match="batch and numel must be >= 1"):
        _cuda.sde_step(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, batch=0, numel=10, stochastic=True, device=0, stream=0)
    with pytest.raises(RuntimeError, match="batch and numel must be >= 1"):
        _cuda.sde_kl(0, 0, 0, 0, 0, 0, batch=2, numel=0, device=0, stream=0)


@needs_nvcc
@pytest.mark.skipif(_device_count() > 0, reason="checks the no-device error path")
def test_cuda_launch_without_a_device_raises_the_cuda_error():
    from vrlvr import _cuda

    # non-null stand-in pointers: the device guard fails before anything is launched
    with pytest.raises(RuntimeError, match=r"sde_logprob: cuda"):
        _cuda.sde_logprob(1, 2, 3, 4, 5, 6, 0, 0, batch=1, numel=1, device=0, stream=0)


@needs_nvcc
def test_cuda_launcher_rejects_null_buffers_before_touching_the_device():
    """A null buffer would fault on the device and end the CUDA context: refused up front."""
    from vrlvr import _cuda

    with pytest.raises(RuntimeError, match="sde_step: null pointer for noise"):
        _cuda.sde_step(1, 2, 0, 4, 0, 6, 7, 8, 0, 0, batch=1, numel=4, stochastic=True, device=0, stream=0)
    # the "ode" step reads no noise and writes no logp
    with pytest.raises(RuntimeError, match="sde_step: null pointer for x_next"):
        _cuda.sde_step(1, 2, 0, 0, 0, 6, 0, 0, 0, 0, batch=1, numel=4, stochastic=False, device=0, stream=0)
    with pytest.raises(RuntimeError, match="sde_logprob: null pointer for workspace"):
        _cuda.sde_logprob(1, 2, 3, 4, 5, 0, 0, 0, batch=1, numel=1, device=0, stream=0)
    with pytest.raises(RuntimeError, match="sde_logprob_backward: null pointer for k"):
        _cuda.sde_logprob_backward(1, 2, 3, 4, 0, 6, 0, 0, batch=1, numel=1, device=0, stream=0)
    with pytest.raises(RuntimeError, match="sde_kl: null pointer for v_ref"):
        _cuda.sde_kl(1, 0, 3, 4, 5, 0, batch=1, numel=1, device=0, stream=0)
    with pytest.raises(RuntimeError, match="sde_kl_backward: null pointer for grad_v"):
        _cuda.sde_kl_backward(1, 2, 3, 0, 0, batch=1, numel=1, device=0, stream=0)


# ----------------------------------------------------------------------------------------------
# launches (GPU machines only)
# ----------------------------------------------------------------------------------------------

SIGMA = torch.tensor([1.0, 0.6, 0.3])
SIGMA_NEXT = torch.tensor([0.95, 0.45, 0.0])
ULP = {torch.float32: 2e-6, torch.bfloat16: 2**-7, torch.float16: 2**-10}


def _inputs(shape, dtype, device="cuda", seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g).to(dtype).to(device) for _ in range(3))


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["sde", "dance", "cps", "ode"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(3, 1), (3, 5, 7, 9), (3, 3 * 4096 + 17)], ids=str)
def test_cuda_step_matches_reference(mode, dtype, shape):
    x, v, noise = _inputs(shape, dtype)
    kw = dict(eta=0.7, mode=mode, return_mean=True)
    got = sde_step(x, v, SIGMA, SIGMA_NEXT, noise, backend="cuda", **kw)
    want = sde_step(x, v, SIGMA, SIGMA_NEXT, noise, backend="torch", **kw)
    torch.testing.assert_close(got.mean, want.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.x_next.float(), want.x_next.float(), rtol=ULP[dtype], atol=ULP[dtype])
    if mode == "ode":
        assert torch.equal(got.logp, torch.zeros_like(got.logp))
    else:
        scored = sde_logprob(x, v, got.x_next, SIGMA, SIGMA_NEXT, eta=0.7, mode=mode, backend="torch")
        torch.testing.assert_close(got.logp, scored, rtol=2e-5, atol=2e-5)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["sde", "dance", "cps"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_on_policy_identity_and_gradients(mode, dtype):
    x, v, noise = _inputs((3, 4, 1000), dtype, seed=1)
    rollout = sde_step(x, v, SIGMA, SIGMA_NEXT, noise, eta=0.7, mode=mode, backend="cuda")
    grads = {}
    for name in ("cuda", "torch"):
        vv = v.clone().requires_grad_(True)
        logp = sde_logprob(x, vv, rollout.x_next, SIGMA, SIGMA_NEXT, eta=0.7, mode=mode, backend=name)
        if name == "cuda":
            assert torch.equal(logp.detach(), rollout.logp)  # first PPO ratio exactly 1
        (logp * torch.tensor([1.0, -2.0, 0.5], device="cuda")).sum().backward()
        grads[name] = vv.grad.float()
    scale = grads["torch"].abs().max()
    torch.testing.assert_close(
        grads["cuda"] / scale, grads["torch"] / scale, rtol=2 * ULP[dtype], atol=2 * ULP[dtype]
    )


@needs_gpu
@pytest.mark.gpu
def test_cuda_kl_runs_on_the_current_stream_and_is_deterministic():
    v, v_ref, _ = _inputs((2, 50000), torch.float32, seed=2)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        a = sde_kl(v, v_ref, 0.7, 0.6, eta=0.7, mode="sde", backend="cuda")
        b = sde_kl(v, v_ref, 0.7, 0.6, eta=0.7, mode="sde", backend="cuda")
    stream.synchronize()
    want = sde_kl(v, v_ref, 0.7, 0.6, eta=0.7, mode="sde", backend="torch")
    assert torch.equal(a, b)
    torch.testing.assert_close(a, want, rtol=1e-5, atol=1e-7)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["sde", "dance", "cps"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_kl_and_its_gradient_match_reference(mode, dtype):
    v, v_ref, _ = _inputs((3, 5, 3001), dtype, seed=3)
    sigma_next = torch.tensor([0.95, 0.45, 0.1])  # cps has no KL at sigma_next == 0
    weights = torch.tensor([1.0, -2.0, 0.5], device="cuda")
    out = {}
    for name in ("cuda", "torch"):
        vv = v.clone().requires_grad_(True)
        kl = sde_kl(vv, v_ref, SIGMA, sigma_next, eta=0.7, mode=mode, backend=name)
        (kl * weights).sum().backward()
        out[name] = (kl.detach(), vv.grad.float())
    torch.testing.assert_close(out["cuda"][0], out["torch"][0], rtol=2e-5, atol=1e-6)
    scale = out["torch"][1].abs().max()
    torch.testing.assert_close(
        out["cuda"][1] / scale, out["torch"][1] / scale, rtol=2 * ULP[dtype], atol=2 * ULP[dtype]
    )


@needs_gpu
@pytest.mark.gpu
def test_cuda_batch_beyond_the_grid_y_limit_and_non_contiguous_inputs():
    """B > 65535 runs the kernels' grid-stride loop over samples; strided inputs are copied."""
    B = 65535 + 1000
    x, v, noise = _inputs((B, 3), torch.float32, seed=4)
    sigma = torch.rand(B) * 0.9 + 0.1
    sigma_next = sigma * 0.5
    kw = dict(eta=0.7, mode="sde")
    got = sde_step(x, v.t().contiguous().t(), sigma, sigma_next, noise, backend="cuda", **kw)
    want = sde_step(x, v, sigma, sigma_next, noise, backend="torch", **kw)
    torch.testing.assert_close(got.x_next, want.x_next, rtol=ULP[torch.float32], atol=ULP[torch.float32])
    scored = sde_logprob(x, v, got.x_next, sigma, sigma_next, backend="torch", **kw)
    torch.testing.assert_close(got.logp, scored, rtol=2e-5, atol=2e-5)
    again = sde_logprob(x, v, got.x_next, sigma, sigma_next, backend="cuda", **kw)
    assert torch.equal(again, got.logp)
