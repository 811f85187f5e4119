"""Block exploration noise (vrlvr.train.exploration) against plain references: the block
coefficients against a loop, the noise against its own raw draws, the log-prob, its gradient and
the KL against the Gaussian of the block coefficients written out in fp64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vrlvr.ops import sde_step
from vrlvr.ops.sde_reference import step_mean_std
from vrlvr.train.exploration import block_coefficients, block_noise, block_shape, step_kl, step_logprob

SHAPES = [  # (B, C, f, h, w), k: ordinary, edge blocks cut on both sides, a block larger than the image
    ((2, 3, 2, 28, 28), 4),
    ((1, 2, 3, 7, 5), 3),
    ((2, 1, 1, 3, 2), 4),
    ((1, 3, 2, 6, 6), 1),
]


def _coefficients_loop(t: np.ndarray, k: int) -> np.ndarray:
    """sum over each k x k block / sqrt(its pixel count), one block at a time (fp64)."""
    B, C, f, h, w = t.shape
    hb, wb = -(-h // k), -(-w // k)
    out = np.zeros((B, C, f, hb, wb))
    for i in range(hb):
        for j in range(wb):
            block = t[..., i * k : (i + 1) * k, j * k : (j + 1) * k]
            out[..., i, j] = block.sum(axis=(-2, -1)) / math.sqrt(block.shape[-2] * block.shape[-1])
    return out


@pytest.mark.parametrize("shape, k", SHAPES)
def test_block_coefficients_equal_a_loop(shape, k):
    t = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    got = block_coefficients(t, k)
    assert got.dtype == torch.float32 and got.shape == (*shape[:3], *block_shape(shape[1:], k)[-2:])
    np.testing.assert_allclose(got.numpy(), _coefficients_loop(t.double().numpy(), k), rtol=1e-5, atol=1e-5)
    # bf16 input: summed in fp32
    bf = t.bfloat16()
    np.testing.assert_allclose(
        block_coefficients(bf, k).numpy(), _coefficients_loop(bf.double().numpy(), k), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("shape, k", SHAPES)
def test_block_noise_is_its_raw_draws_spread_over_each_block(shape, k):
    seeds = list(range(shape[0]))
    noise = block_noise([torch.Generator().manual_seed(s) for s in seeds], shape[1:], k)
    raw = torch.stack(
        [torch.randn(block_shape(shape[1:], k), generator=torch.Generator().manual_seed(s)) for s in seeds]
    )
    assert noise.shape == shape
    if k == 1:  # per-element noise: exactly the draws Flow-GRPO makes
        assert torch.equal(noise, raw)
    # constant over each block, and its block coefficients are the raw standard normal draws
    for i in range(0, shape[-2], k):
        for j in range(0, shape[-1], k):
            block = noise[..., i : i + k, j : j + k]
            assert torch.equal(block, block[..., :1, :1].expand_as(block))
    torch.testing.assert_close(block_coefficients(noise, k), raw, rtol=1e-5, atol=1e-6)


def _reference(x, v, x_next, v_ref, sigma, sigma_next, eta, mode, k):
    """The Gaussian of the block coefficients written out (fp64): logp and KL per latent element."""
    P = lambda t: torch.from_numpy(_coefficients_loop(t.detach().double().numpy(), k))  # noqa: E731
    mean, s = step_mean_std(x.double(), v.double(), sigma, sigma_next, eta=eta, mode=mode)
    mean_ref, _ = step_mean_std(x.double(), v_ref.double(), sigma, sigma_next, eta=eta, mode=mode)
    s = float(s.flatten()[0])
    # P is linear: the coefficients of the mean are a sum of fixed weights times mean's elements,
    # so the gradient w.r.t. v flows through a matrix product with the block indicator
    B, C, f, h, w = x.shape
    hb, wb = -(-h // k), -(-w // k)
    W = torch.zeros(h * w, hb * wb, dtype=torch.float64)
    for r in range(h):
        for c in range(w):
            n = min(k, h - r // k * k) * min(k, w - c // k * k)
            W[r * w + c, (r // k) * wb + c // k] = 1 / math.sqrt(n)
    Pm = (mean.reshape(B, C, f, h * w) @ W).reshape(B, C, f, hb, wb)
    Pr = (mean_ref.reshape(B, C, f, h * w) @ W).reshape(B, C, f, hb, wb)
    d = P(x_next) - Pm
    lp = -(d**2) if mode == "cps" else -(d**2) / (2 * s**2) - math.log(s) - math.log(math.sqrt(2 * math.pi))
    per_element = (C * f * hb * wb) / (C * f * h * w)
    logp = lp.flatten(1).mean(1) * per_element
    kl = ((Pm - Pr) ** 2).flatten(1).mean(1) / (2 * s**2) * per_element
    return logp, kl


@pytest.mark.parametrize("mode, eta", [("sde", 0.7), ("dance", 0.3), ("cps", 0.8)])
@pytest.mark.parametrize("shape, k", SHAPES[:3])
def test_block_logprob_gradient_and_kl_equal_the_gaussian_of_the_block_coefficients(shape, k, mode, eta):
    g = torch.Generator().manual_seed(1)
    x, v, v_ref = (torch.randn(shape, generator=g) for _ in range(3))
    sigma, sigma_next = 0.8, 0.6
    noise = block_noise([torch.Generator().manual_seed(10 + b) for b in range(shape[0])], shape[1:], k)
    x_next = sde_step(x, v, sigma, sigma_next, noise, eta=eta, mode=mode).x_next
    # the step moved each block by one draw: x_next - mean is block-constant noise of std s
    mean, s = step_mean_std(x, v, sigma, sigma_next, eta=eta, mode=mode)
    torch.testing.assert_close(x_next - mean, s * noise, rtol=1e-4, atol=1e-5)

    v_var = v.clone().requires_grad_(True)
    got = step_logprob(x, v_var, x_next, sigma, sigma_next, eta=eta, mode=mode, block=k)
    got.sum().backward()
    v64 = v.double().requires_grad_(True)
    want, want_kl = _reference(x, v64, x_next, v_ref, sigma, sigma_next, eta, mode, k)
    want.sum().backward()
    assert got.dtype == torch.float32 and got.shape == (shape[0],)
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(v_var.grad.double(), v64.grad, rtol=1e-3, atol=1e-6)
    kl = step_kl(v, v_ref, sigma, sigma_next, eta=eta, mode=mode, block=k)
    torch.testing.assert_close(kl.double(), want_kl, rtol=1e-4, atol=1e-7)
    assert float(step_kl(v, v, sigma, sigma_next, eta=eta, mode=mode, block=k).abs().max()) == 0.0


def test_block_1_is_the_per_element_step():
    from vrlvr.ops import sde_kl, sde_logprob

    g = torch.Generator().manual_seed(2)
    x, v, x_next, v_ref = (torch.randn(2, 3, 2, 8, 8, generator=g) for _ in range(4))
    assert torch.equal(
        step_logprob(x, v, x_next, 0.9, 0.7, eta=0.7, mode="sde", block=1),
        sde_logprob(x, v, x_next, 0.9, 0.7, eta=0.7, mode="sde"),
    )
    assert torch.equal(
        step_kl(v, v_ref, 0.9, 0.7, eta=0.7, mode="sde", block=1),
        sde_kl(v, v_ref, 0.9, 0.7, eta=0.7, mode="sde"),
    )


@pytest.mark.parametrize("block", [0, -2, 1.5, True, "4"])
def test_a_bad_block_is_refused(block):
    with pytest.raises(ValueError, match="noise_block"):
        block_noise([torch.Generator()], (3, 2, 8, 8), block)
    with pytest.raises(ValueError, match="noise_block"):
        block_coefficients(torch.zeros(1, 3, 2, 8, 8), block)


def test_block_coefficients_need_a_video_latent():
    with pytest.raises(ValueError, match=r"\[B, C, f, h, w\]"):
        block_coefficients(torch.zeros(3, 8, 8), 4)
