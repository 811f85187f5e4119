"""Bad inputs to the SDE ops raise ValueError saying what is wrong, on every backend (the checks
run before dispatch); and backend selection: automatic, forced by argument or VRLVR_BACKEND, and
refusing a backend that cannot run the tensors with a reason."""

import pytest
import torch

from vrlvr.ops import BackendUnavailableError, dispatch, sde_kl, sde_logprob, sde_step

X = torch.randn(3, 4, 5)
V = torch.randn(3, 4, 5)
N = torch.randn(3, 4, 5)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(v=torch.randn(3, 4, 6)), r"v has shape \(3, 4, 6\) but x has shape \(3, 4, 5\)"),
        (dict(noise=torch.randn(3, 20)), r"noise has shape \(3, 20\)"),
        (dict(x=X.double()), r"x has dtype torch.float64; supported"),
        (dict(v=V.to(torch.int32)), r"v has dtype torch.int32"),
        (dict(noise=N.half()), r"noise has dtype torch.float16 but x has dtype torch.float32"),
        (dict(x=torch.tensor(1.0)), r"batch dimension"),
        (dict(x=torch.empty(0, 4, 5)), r"x is empty"),
        (dict(v=[1.0, 2.0]), r"v must be a torch.Tensor"),
        (dict(sigma=torch.tensor([0.5, 0.5])), r"sigma has shape \(2,\) but the batch has B=3"),
        (dict(sigma_next=torch.full((3, 1), 0.1)), r"sigma_next has shape \(3, 1\)"),
        (dict(sigma=1.5), r"sigma must be in \(0, 1\], got 1.5"),
        (dict(sigma=0.0, sigma_next=0.0), r"sigma must be in \(0, 1\], got 0"),
        (dict(sigma=torch.tensor([0.5, -0.1, 0.5])), r"sigma must be in \(0, 1\], got -0.1 \(sample 1\)"),
        (dict(sigma=0.5, sigma_next=0.5), r"sigma_next must be in \[0, sigma\)"),
        (dict(sigma=0.5, sigma_next=0.7), r"sigma_next=0.7 with sigma=0.5"),
        (dict(sigma=0.5, sigma_next=-0.1), r"sigma_next must be in \[0, sigma\)"),
        (dict(sigma=float("nan")), r"sigma must be finite"),
        (dict(sigma="0.5"), r"sigma must be a float or a tensor"),
        (dict(sigma=1.0, sigma_max=1.0), r"sigma_max must be in \[0, 1\)"),
        (dict(mode="euler"), r"unknown mode 'euler'"),
        (dict(eta=0.0), r"eta must be > 0 for mode='sde'"),
        (dict(eta=-1.0, mode="dance"), r"eta must be > 0 for mode='dance'"),
        (dict(eta=1.5, mode="cps"), r"eta must be in \(0, 1\] for mode='cps'"),
        (dict(eta=float("inf")), r"eta must be a finite number"),
        (dict(noise=None), r"noise is required for mode='sde'"),
    ],
)
def test_sde_step_rejects_bad_inputs(backend, kwargs, match):
    args = dict(x=X, v=V, sigma=0.8, sigma_next=0.6, noise=N, eta=0.7, mode="sde", backend=backend)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sde_step(
            args.pop("x"), args.pop("v"), args.pop("sigma"), args.pop("sigma_next"), args.pop("noise"), **args
        )


def test_ode_mode_needs_no_noise_and_ignores_eta():
    out = sde_step(X, V, 0.8, 0.6, None, mode="ode", eta=0.0)
    torch.testing.assert_close(out.x_next, X + (0.6 - 0.8) * V)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_sde_logprob_rejects_bad_inputs(backend):
    kw = dict(eta=0.7, mode="sde", backend=backend)
    with pytest.raises(ValueError, match=r"x_next has dtype torch.bfloat16 but x has dtype torch.float32"):
        sde_logprob(X, V, N.bfloat16(), 0.8, 0.6, **kw)
    with pytest.raises(ValueError, match=r"x_next has shape \(3, 20\)"):
        sde_logprob(X, V, torch.randn(3, 20), 0.8, 0.6, **kw)
    with pytest.raises(ValueError, match="mode='ode' is deterministic"):
        sde_logprob(X, V, N, 0.8, 0.6, eta=0.7, mode="ode", backend=backend)
    with pytest.raises(ValueError, match="unknown mode"):
        sde_logprob(X, V, N, 0.8, 0.6, eta=0.7, mode="SDE", backend=backend)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_sde_kl_rejects_bad_inputs(backend):
    kw = dict(eta=0.7, backend=backend)
    with pytest.raises(ValueError, match=r"v_ref has dtype torch.float16 but v has dtype torch.float32"):
        sde_kl(V, V.half(), 0.8, 0.6, mode="sde", **kw)
    with pytest.raises(ValueError, match="mode='ode' is deterministic"):
        sde_kl(V, N, 0.8, 0.6, mode="ode", **kw)
    with pytest.raises(
        ValueError, match=r"KL is undefined for a step without noise \(mode='cps', sigma_next=0"
    ):
        sde_kl(V, N, torch.tensor([0.8, 0.5, 0.2]), torch.tensor([0.6, 0.3, 0.0]), mode="cps", **kw)


def test_mixed_velocity_dtype_is_allowed_but_half_noise_with_fp32_x_is_not():
    sde_step(X, V.bfloat16(), 0.8, 0.6, N)  # bf16 model output driving fp32 latents
    with pytest.raises(ValueError, match="noise has dtype"):
        sde_step(X, V.bfloat16(), 0.8, 0.6, N.bfloat16())


# ----------------------------------------------------------------------------------------------
# backend selection
# ----------------------------------------------------------------------------------------------

CPU = torch.device("cpu")


def test_auto_picks_native_for_cpu_tensors(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    assert dispatch.select_backend(CPU) == "cpu"
    assert dispatch.select_backend(CPU, "auto") == "cpu"


def test_env_forces_a_backend_and_the_argument_wins(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    assert dispatch.select_backend(CPU) == "torch"
    assert dispatch.select_backend(CPU, "triton") == "triton"
    monkeypatch.setenv(dispatch.ENV_VAR, "Triton ")
    assert dispatch.select_backend(CPU) == "triton"
    monkeypatch.setenv(dispatch.ENV_VAR, "fast")
    with pytest.raises(ValueError, match=r"unknown backend 'fast' \(from VRLVR_BACKEND=\)"):
        dispatch.select_backend(CPU)


def test_env_choice_reaches_the_ops(monkeypatch):
    """VRLVR_BACKEND=cuda on CPU tensors fails in the op itself, so the variable is really read."""
    monkeypatch.setenv(dispatch.ENV_VAR, "cuda")
    with pytest.raises(BackendUnavailableError, match="requested by VRLVR_BACKEND=cuda"):
        sde_step(X, V, 0.8, 0.6, N)


def test_unknown_backend_argument_is_a_value_error():
    with pytest.raises(ValueError, match=r"unknown backend 'numpy' \(from backend=\)"):
        sde_step(X, V, 0.8, 0.6, N, backend="numpy")


def test_cuda_backend_refuses_cpu_tensors_saying_why():
    with pytest.raises(
        BackendUnavailableError, match="backend 'cuda' runs on CUDA tensors, but the inputs are on cpu"
    ):
        sde_step(X, V, 0.8, 0.6, N, backend="cuda")
    with pytest.raises(BackendUnavailableError, match="CUDA tensors"):
        sde_logprob(X, V, N, 0.8, 0.6, eta=0.7, mode="sde", backend="cuda")


def test_cpu_backend_refuses_other_devices():
    reason = dispatch.unavailable_reason("cpu", torch.device("cuda", 0))
    assert reason == "backend 'cpu' runs on CPU tensors, but the inputs are on cuda:0"
    # a device without fast backends falls back to the reference
    assert dispatch.select_backend(torch.device("meta"), "auto") == "torch"


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    from vrlvr.backends import BackendStatus

    real = dispatch._module_status

    def fake(name):
        if name == "triton":
            return BackendStatus("triton", True, "triton (GPU)", {"interpreter": False})
        return real(name)

    monkeypatch.setattr(dispatch, "_module_status", fake)
    with pytest.raises(BackendUnavailableError, match="only in Triton's interpreter"):
        dispatch.select_backend(CPU, "triton")
    assert dispatch.unavailable_reason("triton", torch.device("cuda", 0)) is None


def test_unusable_native_module_is_named(monkeypatch):
    from vrlvr.backends import BackendStatus

    def fake(name):
        return BackendStatus(name, False, "vrlvr._native did not import (boom)")

    monkeypatch.setattr(dispatch, "_module_status", fake)
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    assert dispatch.select_backend(CPU) == "torch"  # automatic choice falls back to the reference
    with pytest.raises(
        BackendUnavailableError, match=r"needs vrlvr._native: vrlvr._native did not import \(boom\)"
    ):
        dispatch.select_backend(CPU, "cpu")
