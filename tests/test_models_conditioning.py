"""First-frame conditioning (Wan2.2-TI2V style) and sampling on the tiny-pixel policy."""

import numpy as np
import pytest
import torch

from vrlvr.models.conditioning import apply_condition, token_timesteps
from vrlvr.models.sampling import euler_step, generate_videos, sample_latents
from vrlvr.models.schedule import flow_sigmas
from vrlvr.models.tiny import TinyPixelConfig, TinyPixelPolicy, frames_to_pixels, pixels_to_frames

SMALL = TinyPixelConfig(num_layers=2, num_heads=2, head_dim=16, ffn_dim=64, text_dim=16, freq_dim=32)


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return TinyPixelPolicy(SMALL).eval()


def test_token_timesteps_zero_on_condition_frame():
    t = token_timesteps(torch.tensor([0.25, 1.0]), (2, 3, 3, 8, 12), (1, 4, 4))
    assert t.shape == (2, 3 * 2 * 3)
    assert torch.all(t[:, :6] == 0)
    assert torch.all(t[0, 6:] == 250) and torch.all(t[1, 6:] == 1000)
    with pytest.raises(ValueError, match="patch"):
        token_timesteps(torch.tensor([0.5]), (3, 9, 12), (1, 4, 4))


def test_apply_condition_replaces_only_frame_zero():
    x = torch.randn(2, 3, 4, 8, 8)
    c = torch.randn(2, 3, 1, 8, 8)
    y = apply_condition(x, c)
    assert torch.equal(y[:, :, :1], c) and torch.equal(y[:, :, 1:], x[:, :, 1:])
    with pytest.raises(ValueError, match="condition"):
        apply_condition(x, torch.randn(2, 3, 2, 8, 8))


def test_pixel_codec_is_exact():
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(pixels_to_frames(frames_to_pixels(frames)), frames)


def test_velocity_zero_on_frame0_and_blind_to_noisy_frame0(policy):
    x = torch.randn(2, 3, 4, 8, 8)
    cond = torch.rand(2, 3, 1, 8, 8) * 2 - 1
    emb = policy.encode_prompts(["a", "bb"])
    with torch.no_grad():
        v1 = policy.velocity(x, torch.tensor([0.3, 0.9]), emb, cond)
        x2 = x.clone()
        x2[:, :, 0] = torch.randn(2, 3, 8, 8)  # whatever sits in frame 0 is replaced by cond
        v2 = policy.velocity(x2, torch.tensor([0.3, 0.9]), emb, cond)
        v3 = policy.velocity(x, torch.tensor([0.3, 0.9]), emb, -cond)
    assert torch.all(v1[:, :, 0] == 0)
    assert torch.equal(v1, v2)
    assert not torch.allclose(v1[:, :, 1:], v3[:, :, 1:])  # ... but the condition itself matters


def test_sampling_keeps_frame0_exactly(policy):
    rng = np.random.default_rng(1)
    first = rng.integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
    cond = policy.encode_condition(first)
    emb = policy.encode_prompts(["x", "y", "z"])
    lat = sample_latents(policy, cond, emb, 5, flow_sigmas(4, 3.0), torch.Generator().manual_seed(0))
    assert lat.shape == (3, 3, 5, 8, 12)
    assert torch.equal(lat[:, :, :1], cond)
    assert np.array_equal(policy.decode(lat)[:, 0], first)  # no paste-over needed in pixel space
    vids = generate_videos(policy, first, ["x", "y", "z"], 5, num_steps=3, seed=7)
    assert vids.shape == (3, 5, 8, 12, 3) and vids.dtype == np.uint8
    assert np.array_equal(vids, generate_videos(policy, first, ["x", "y", "z"], 5, num_steps=3, seed=7))


def test_custom_step_fn_sees_every_step(policy):
    seen = []

    def step(x, v, s, s_next, i):
        seen.append((i, float(s), float(s_next)))
        return euler_step(x, v, s, s_next)

    cond = torch.zeros(1, 3, 1, 8, 8)
    sample_latents(policy, cond, policy.encode_prompts(["p"]), 3, flow_sigmas(5), step_fn=step)
    assert [i for i, _, _ in seen] == list(range(5)) and seen[0][1] == 1.0 and seen[-1][2] == 0.0


def test_tiny_default_size_and_roundtrip(tmp_path, policy):
    full = TinyPixelPolicy()
    n = sum(p.numel() for p in full.parameters())
    assert 0.8e6 < n < 1.3e6, n
    policy.save(tmp_path / "ck", extra={"task": "maze"})
    from vrlvr.models.policy import load_policy

    again = load_policy(tmp_path / "ck")
    x, cond = torch.randn(1, 3, 3, 8, 8), torch.randn(1, 3, 1, 8, 8)
    with torch.no_grad():
        a = policy.velocity(x, torch.tensor([0.5]), policy.encode_prompts(["q"]), cond)
        b = again.velocity(x, torch.tensor([0.5]), again.encode_prompts(["q"]), cond)
    assert torch.equal(a, b)


def test_missing_checkpoint_errors_name_the_problem(tmp_path):
    from vrlvr.models.policy import load_policy

    with pytest.raises(FileNotFoundError, match="neither a folder nor a shipped checkpoint"):
        load_policy(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no policy.json"):
        load_policy(tmp_path / "empty")


class _OraclePolicy:
    """The exact rectified-flow velocity towards a known x0: v = (x - x0) / sigma = noise - x0 on the
    straight path x = (1 - sigma) x0 + sigma noise; zero on the condition frame (as VideoPolicy)."""

    def __init__(self, x0):
        self.x0 = x0

    def velocity(self, x, sigma, prompt_embeds, cond):
        v = (x - self.x0) / sigma.view(-1, 1, 1, 1, 1)
        v[:, :, 0] = 0
        return v


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_sampling_direction_reaches_the_data(shift):
    # with the exact velocity, Euler steps from pure noise (sigma = 1) land on x0 (sigma = 0): a flipped
    # sign, a reversed schedule or a wrong interpolation convention would miss it
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(2, 3, 4, 8, 8, generator=g) * 2 - 1
    cond = x0[:, :, :1]
    lat = sample_latents(
        _OraclePolicy(x0),
        cond,
        torch.zeros(2, 1, 1),
        4,
        flow_sigmas(6, shift),
        torch.Generator().manual_seed(0),
    )
    assert torch.equal(lat[:, :, :1], cond)
    assert torch.allclose(lat, x0, atol=1e-5)
