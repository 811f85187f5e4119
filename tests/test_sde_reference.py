"""The torch reference of the SDE step is the oracle of every backend, so it is checked against
the sources it claims to follow: Flow-GRPO's sde_step_with_logprob ("sde" and "cps"), DanceGRPO's
flux_step ("dance"), the Gaussian density and KL of torch.distributions, and gradcheck in float64.
The coefficient table of the fast backends (sde_args.coefficients) is checked against it too."""

import math

import numpy as np
import pytest
import torch

from vrlvr.ops import sde_args
from vrlvr.ops.sde_reference import (
    sde_kl_reference,
    sde_logprob_reference,
    sde_step_reference,
    step_mean_std,
)

# A shifted flow-matching schedule as diffusers builds it (sigmas[0] == 1, float32).
SIGMAS = torch.tensor([1.0, 0.9625, 0.9130, 0.8449, 0.7451, 0.5848, 0.2857, 0.0], dtype=torch.float32)


def flow_grpo_step(x, v, sigma, sigma_prev, sigma_max, noise, noise_level, sde_type):
    """Flow-GRPO's sde_step_with_logprob (flow_grpo/diffusers_patch/sd3_sde_with_logprob.py), with
    the scheduler lookups replaced by explicit [B] sigmas and the noise passed in."""
    model_output, sample = v.float(), x.float()
    sigma = sigma.view(-1, *([1] * (len(sample.shape) - 1)))
    sigma_prev = sigma_prev.view(-1, *([1] * (len(sample.shape) - 1)))
    dt = sigma_prev - sigma
    if sde_type == "sde":
        std_dev_t = torch.sqrt(sigma / (1 - torch.where(sigma == 1, sigma_max, sigma))) * noise_level
        prev_sample_mean = (
            sample * (1 + std_dev_t**2 / (2 * sigma) * dt)
            + model_output * (1 + std_dev_t**2 * (1 - sigma) / (2 * sigma)) * dt
        )
        prev_sample = prev_sample_mean + std_dev_t * torch.sqrt(-1 * dt) * noise
        log_prob = (
            -((prev_sample.detach() - prev_sample_mean) ** 2) / (2 * ((std_dev_t * torch.sqrt(-1 * dt)) ** 2))
            - torch.log(std_dev_t * torch.sqrt(-1 * dt))
            - torch.log(torch.sqrt(2 * torch.as_tensor(math.pi)))
        )
    else:  # cps
        std_dev_t = sigma_prev * math.sin(noise_level * math.pi / 2)
        pred_original_sample = sample - sigma * model_output
        noise_estimate = sample + model_output * (1 - sigma)
        prev_sample_mean = pred_original_sample * (1 - sigma_prev) + noise_estimate * torch.sqrt(
            sigma_prev**2 - std_dev_t**2
        )
        prev_sample = prev_sample_mean + std_dev_t * noise
        log_prob = -((prev_sample.detach() - prev_sample_mean) ** 2)
    log_prob = log_prob.mean(dim=tuple(range(1, log_prob.ndim)))
    return prev_sample, log_prob, prev_sample_mean


def dance_grpo_step(x, v, sigma, sigma_next, eta, noise):
    """DanceGRPO's flux_step with sde_solver=True, for one scalar sigma (their signature)."""
    dsigma = sigma_next - sigma
    prev_sample_mean = x + dsigma * v
    pred_original_sample = x - sigma * v
    std_dev_t = eta * math.sqrt(sigma - sigma_next)
    score_estimate = -(x - pred_original_sample * (1 - sigma)) / sigma**2
    log_term = -0.5 * eta**2 * score_estimate
    prev_sample_mean = prev_sample_mean + log_term * dsigma
    prev_sample = prev_sample_mean + noise * std_dev_t
    log_prob = (
        -((prev_sample - prev_sample_mean) ** 2) / (2 * (std_dev_t**2))
        - math.log(std_dev_t)
        - torch.log(torch.sqrt(2 * torch.as_tensor(math.pi)))
    )
    return prev_sample, log_prob.mean(dim=tuple(range(1, log_prob.ndim))), prev_sample_mean


def _data(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g).to(dtype) for _ in range(3))


@pytest.mark.parametrize("sde_type", ["sde", "cps"])
def test_matches_flow_grpo_including_the_sigma_one_step(sde_type):
    x, v, noise = _data((4, 3, 5, 6))
    idx = torch.tensor([0, 1, 3, 5])  # step 0 starts at sigma == 1
    sigma, sigma_prev = SIGMAS[idx], SIGMAS[idx + 1]
    sigma_max = SIGMAS[1].item()
    want = flow_grpo_step(x, v, sigma, sigma_prev, sigma_max, noise, 0.7, sde_type)
    got = sde_step_reference(x, v, sigma, sigma_prev, noise, eta=0.7, mode=sde_type, sigma_max=sigma_max)
    for g, w in zip(got, (want[0], want[1], want[2])):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)
    assert torch.isfinite(got[1]).all()


def test_sigma_max_default_is_sigma_next_which_is_flow_grpos_sigmas_1():
    x, v, noise = _data((2, 8))
    sigma, sigma_next = torch.tensor([1.0, 1.0]), SIGMAS[1].expand(2)
    explicit = sde_step_reference(
        x, v, sigma, sigma_next, noise, eta=0.7, mode="sde", sigma_max=SIGMAS[1].item()
    )
    default = sde_step_reference(x, v, sigma, sigma_next, noise, eta=0.7, mode="sde")
    for a, b in zip(explicit, default):
        assert torch.equal(a, b)
    # and sigma_max really is what the sigma == 1 step uses
    other = sde_step_reference(x, v, sigma, sigma_next, noise, eta=0.7, mode="sde", sigma_max=0.5)
    assert not torch.allclose(other[2], default[2])


@pytest.mark.parametrize("i", [1, 3, 6])
def test_dance_matches_dance_grpo(i):
    x, v, noise = _data((2, 4, 9), seed=i)
    sigma, sigma_next = SIGMAS[i].item(), SIGMAS[i + 1].item()
    want = dance_grpo_step(x, v, sigma, sigma_next, 0.3, noise)
    got = sde_step_reference(x, v, sigma, sigma_next, noise, eta=0.3, mode="dance")
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_ode_is_the_euler_step_with_zero_logp():
    x, v, _ = _data((3, 7))
    x_next, logp, mean = sde_step_reference(x, v, 0.8, 0.6, None, eta=0.7, mode="ode")
    torch.testing.assert_close(x_next, x + (0.6 - 0.8) * v)
    assert torch.equal(logp, torch.zeros(3))
    assert torch.equal(mean, x_next)


@pytest.mark.parametrize("mode", ["sde", "dance"])
def test_logp_is_the_gaussian_log_density_averaged_per_sample(mode):
    x, v, noise = _data((3, 4, 5), dtype=torch.float64)
    sigma, sigma_next = torch.tensor([0.9, 0.5, 0.2]), torch.tensor([0.8, 0.3, 0.0])
    x_next, logp, mean = sde_step_reference(x, v, sigma, sigma_next, noise, eta=0.6, mode=mode)
    _, s = step_mean_std(x, v, sigma, sigma_next, eta=0.6, mode=mode)
    want = torch.distributions.Normal(mean, s).log_prob(x_next).mean(dim=(1, 2))
    torch.testing.assert_close(logp, want)


@pytest.mark.parametrize("mode", ["sde", "dance", "cps"])
def test_kl_is_the_gaussian_kl(mode):
    x, v, v_ref = _data((3, 4, 5), dtype=torch.float64)
    sigma, sigma_next = torch.tensor([1.0, 0.5, 0.2]), torch.tensor([0.9, 0.3, 0.1])
    mean, s = step_mean_std(x, v, sigma, sigma_next, eta=0.6, mode=mode)
    mean_ref, _ = step_mean_std(x, v_ref, sigma, sigma_next, eta=0.6, mode=mode)
    want = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, s.expand_as(mean)),
        torch.distributions.Normal(mean_ref, s.expand_as(mean)),
    ).mean(dim=(1, 2))
    torch.testing.assert_close(sde_kl_reference(v, v_ref, sigma, sigma_next, eta=0.6, mode=mode), want)


@pytest.mark.parametrize("mode", ["sde", "dance", "cps"])
def test_gradcheck_logprob_and_kl_in_float64(mode):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    x_next = torch.randn(2, 3, 4, dtype=torch.float64, generator=g)
    v_ref = torch.randn(2, 3, 4, dtype=torch.float64, generator=g)
    sigma, sigma_next = torch.tensor([1.0, 0.6]), torch.tensor([0.95, 0.4])
    kw = dict(eta=0.7, mode=mode)
    assert torch.autograd.gradcheck(
        lambda a, b: sde_logprob_reference(a, b, x_next, sigma, sigma_next, **kw), (x, v)
    )
    assert torch.autograd.gradcheck(lambda b: sde_kl_reference(b, v_ref, sigma, sigma_next, **kw), (v,))


def test_sde_logprob_reference_refuses_ode():
    x, v, _ = _data((1, 3))
    with pytest.raises(ValueError, match="ode"):
        sde_logprob_reference(x, v, x, 0.5, 0.4, eta=0.7, mode="ode")


@pytest.mark.parametrize("mode", ["sde", "dance", "cps", "ode"])
def test_coefficient_table_reproduces_the_reference(mode):
    """The fast backends see only the table: mean = cx x + cv v, s, and the logp / kl affine maps."""
    x, v, noise = _data((4, 6), dtype=torch.float64)
    v_ref = torch.randn(4, 6, dtype=torch.float64)
    sigma = torch.tensor([1.0, 0.9, 0.5, 0.1])
    sigma_next = torch.tensor([0.95, 0.7, 0.0, 0.05])
    s, sn, smax = sde_args.check_sigmas(sigma, sigma_next, 4, 0.97 if mode == "sde" else None)
    table = sde_args.coefficients(mode, 0.7, s, sn, smax)
    assert table.shape == (4, sde_args.COEF_COUNT) and table.dtype == torch.float64
    col = lambda c: table[:, c : c + 1]  # noqa: E731
    kw = dict(eta=0.7, mode=mode, sigma_max=0.97 if mode == "sde" else None)
    mean, std = step_mean_std(x, v, sigma, sigma_next, **kw)
    torch.testing.assert_close(
        col(sde_args.COEF_CX) * x + col(sde_args.COEF_CV) * v, mean, rtol=1e-6, atol=1e-6
    )
    torch.testing.assert_close(col(sde_args.COEF_S), std.reshape(4, 1), rtol=1e-6, atol=1e-7)
    if mode == "ode":
        return
    x_next, logp, _ = sde_step_reference(x, v, sigma, sigma_next, noise, **kw)
    r2 = ((x_next - mean) ** 2).mean(dim=1)
    from_table = table[:, sde_args.COEF_LOGP_CONST] + table[:, sde_args.COEF_LOGP_SCALE] * r2
    torch.testing.assert_close(from_table, logp, rtol=1e-5, atol=1e-5)
    keep = table[:, sde_args.COEF_S] > 0  # cps at sigma_next == 0 has no noise and no KL
    kl = sde_kl_reference(v[keep], v_ref[keep], sigma[keep], sigma_next[keep], **kw)
    from_table = table[keep, sde_args.COEF_KL_SCALE] * ((v - v_ref)[keep] ** 2).mean(dim=1)
    torch.testing.assert_close(from_table, kl, rtol=1e-5, atol=1e-6)


def test_coefficient_layout_matches_the_native_header():
    from vrlvr import _native

    layout = _native.sde_coef_layout()
    assert layout == {
        "cx": sde_args.COEF_CX,
        "cv": sde_args.COEF_CV,
        "s": sde_args.COEF_S,
        "logp_scale": sde_args.COEF_LOGP_SCALE,
        "logp_const": sde_args.COEF_LOGP_CONST,
        "kl_scale": sde_args.COEF_KL_SCALE,
        "count": sde_args.COEF_COUNT,
    }


def test_sigmas_are_taken_as_float32_like_the_scheduler_stores_them():
    # 1 - 1e-9 is 1.0 in float32: both the table and the reference treat it as the sigma == 1 step
    s, sn, smax = sde_args.check_sigmas(1 - 1e-9, 0.9, 2)
    assert np.all(s == 1.0)
    table = sde_args.coefficients("sde", 0.7, s, sn, smax)
    assert torch.isfinite(table).all()
