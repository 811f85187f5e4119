"""SDE-GRPO trainer: the objective against a plain-torch reference, rollout invariants, the
first-epoch ratio, zero-variance groups, non-finite steps, outputs of a run, mixed tasks, the Wan path.

Every run here uses a 1-layer tiny-pixel policy built from config and saved as a run folder
(``tiny_init``), 7x7 mazes at 4 px (28 x 28) and 3 frames, so a step takes about a second.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from vrlvr import tasks
from vrlvr.config import load_config
from vrlvr.models.configs import TinyPixelConfig
from vrlvr.models.schedule import flow_sigmas
from vrlvr.models.tiny import TinyPixelPolicy
from vrlvr.ops.sde_reference import step_mean_std
from vrlvr.tasks.base import Verdict
from vrlvr.tasks.maze import MazeTask
from vrlvr.train.data import VideoSpec
from vrlvr.train.grpo import (
    PuzzleStream,
    TrainingDiverged,
    awm_loss,
    backward_awm_loss,
    backward_grpo_loss,
    buckets_of,
    build_rl_policy,
    group_advantages,
    ppo_loss,
    train_grpo,
)
from vrlvr.train.grpo_config import GRPOConfig
from vrlvr.train.rollout import matching_seed, rollout_seed, sample_rollouts

TINY = TinyPixelConfig(num_layers=1, num_heads=2, head_dim=8, ffn_dim=32, text_dim=16, freq_dim=16)


@pytest.fixture(scope="module")
def tiny_init(tmp_path_factory) -> Path:
    """A random 1-layer tiny-pixel policy saved as a checkpoint folder (no held-out record)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("init") / "tiny"
    TinyPixelPolicy(TINY).save(folder, extra={"task": "maze"})
    return folder


def small_cfg(out: Path, init: Path, *extra: str) -> GRPOConfig:
    return load_config(
        GRPOConfig,
        None,
        [
            f"out_dir={out}",
            f"model.init={init}",
            "data.task=maze",
            "data.sizes=[7]",
            "data.num_frames=3",
            "heldout.n=8",
            "eval.n=4",
            "eval.batch_size=8",
            "sampling.steps=4",
            "grpo.prompts_per_step=2",
            "grpo.group_size=4",
            "grpo.micro_batch=4",
            "lora.rank=4",
            "optim.steps=2",
            "optim.lr=1e-3",
            "threads=2",
            *extra,
        ],
    )


# --- the objective, pieces -----------------------------------------------------------------
def test_group_advantages_normalise_within_groups_and_skip_constant_groups():
    r = torch.tensor([[0.0, 1.0, 0.5, 0.5], [0.3, 0.3, 0.3, 0.3]], dtype=torch.float64)
    adv, keep = group_advantages(r, adv_clip=5.0)
    assert keep.tolist() == [True, False]
    assert torch.equal(adv[1], torch.zeros(4, dtype=torch.float64))
    assert adv[0].mean().abs() < 1e-12 and abs(float(adv[0].std(unbiased=False)) - 1.0) < 1e-9
    clipped, _ = group_advantages(torch.tensor([[0.0] * 15 + [1.0]]), adv_clip=2.0)
    assert float(clipped.max()) == 2.0  # (1 - 1/16) / std = 3.87 before the clip


def test_ppo_loss_is_the_clipped_surrogate():
    logp_old = torch.zeros(4)
    logp = torch.log(torch.tensor([0.5, 1.5, 0.5, 1.5]))
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, ratio = ppo_loss(logp, logp_old, adv, clip_range=0.2)
    # A > 0: min(r, clip(r)) * A; A < 0: max(r, clip(r)) * A; loss is the negative
    assert torch.allclose(loss, torch.tensor([-0.5, -1.2, 0.8, 1.5]))
    assert torch.allclose(ratio, torch.tensor([0.5, 1.5, 0.5, 1.5]))


def test_rollout_seed_depends_on_each_coordinate_only():
    seeds = {rollout_seed(0, s, p, r) for s in range(3) for p in range(3) for r in range(3)}
    assert len(seeds) == 27
    assert rollout_seed(5, 1, 2, 3) == rollout_seed(5, 1, 2, 3)


def test_a_pool_cycles_a_fixed_set_of_training_puzzles():
    maze = tasks.get("maze")
    stream = PuzzleStream([maze], {"maze": [7]}, {"maze": set()}, 0, [0], pool=3)
    seeds = [it.seed for s in range(4) for it in stream.draw(s, 2)]
    assert seeds == [0, 1, 2, 0, 1, 2, 0, 1]
    # a held-out seed is skipped, the others still cycle
    held = {maze.canonical_key(maze.generate(1, 7))}
    stream = PuzzleStream([maze], {"maze": [7]}, {"maze": held}, 0, [0], pool=3)
    assert [it.seed for it in stream.draw(0, 4)] == [0, 2, 0, 2]
    # a pool of held-out puzzles only: one line naming the setting, not an endless search
    stream = PuzzleStream([maze], {"maze": [7]}, {"maze": held}, 1, [0], pool=1)
    with pytest.raises(ValueError, match="data.pool"):
        stream.draw(0, 1)


# --- rollouts ------------------------------------------------------------------------------
def _bucket_and_policy(tiny_init, tmp_path, *extra):
    cfg = small_cfg(tmp_path / "run", tiny_init, *extra)
    policy, ref = build_rl_policy(cfg, torch.device("cpu"))
    maze = tasks.get("maze")
    video = VideoSpec(cfg.data.num_frames, cfg.data.cell_px)
    stream = PuzzleStream([maze], {"maze": [7]}, {"maze": set()}, 0, [0])
    buckets = buckets_of(stream.draw(0, cfg.grpo.prompts_per_step), video)
    return cfg, policy, ref, buckets


def test_rollouts_never_move_frame_0_and_keep_only_the_window(tiny_init, tmp_path):
    cfg, policy, _, (bucket,) = _bucket_and_policy(tiny_init, tmp_path, "grpo.sde_window=[1,3]")
    sigmas = flow_sigmas(cfg.sampling.steps, cfg.sampling.shift)
    r = sample_rollouts(policy, bucket, 4, 3, sigmas, (1, 3), 0.7, "sde", 0, 0, 4)
    N = 2 * 4
    assert r.latents.shape == (N, 3, 3, 28, 28)
    assert torch.equal(r.latents[:, :, :1], r.cond)  # bit for bit: no step ever touched frame 0
    # tiny-pixel decodes exactly, so the decoded frame 0 is the puzzle frame without any overwrite
    assert np.array_equal(policy.decode(r.latents)[:, 0], np.repeat(bucket.first_frames, 4, axis=0))
    assert len(r.states) == 3 and all(s.shape == (N, 3, 2, 28, 28) for s in r.states)  # x_1, x_2, x_3
    assert r.logp.shape == (N, 2) and torch.isfinite(r.logp).all()
    # rollouts of one puzzle differ (their own noise); the same seeds give the same videos
    assert not torch.equal(r.latents[0], r.latents[1])
    r2 = sample_rollouts(policy, bucket, 4, 3, sigmas, (1, 3), 0.7, "sde", 0, 0, 2)  # other chunking
    # the same noise, so the same videos up to fp32 rounding: not bit for bit, because with two
    # threads BLAS may split a GEMM of a few rows (the time and text embeddings: B x frames, B x
    # prompt tokens) differently as the micro-batch changes (and MKL picks its threads by load)
    torch.testing.assert_close(r.latents, r2.latents, rtol=1e-5, atol=1e-5)
    assert torch.equal(r.latents[:, :, :1], r2.latents[:, :, :1])


def test_shared_start_gives_a_group_one_initial_noise_and_its_own_sde_noise(tiny_init, tmp_path):
    cfg, policy, _, (bucket,) = _bucket_and_policy(tiny_init, tmp_path)
    sigmas = flow_sigmas(cfg.sampling.steps, cfg.sampling.shift)
    G = 4
    r = sample_rollouts(policy, bucket, G, 3, sigmas, (0, 2), 0.7, "sde", 0, 0, 4, shared_start=True)
    x0, x1 = r.states[0], r.states[1]  # [N, C, f - 1, h, w]: the initial noise and after one SDE step
    for j in range(len(bucket.puzzles)):
        group = slice(j * G, (j + 1) * G)
        assert all(torch.equal(x0[group][0], x) for x in x0[group])  # one start per puzzle
        assert not torch.equal(x1[group][0], x1[group][1])  # each rollout's own SDE noise
    assert not torch.equal(x0[0], x0[G])  # puzzles start apart
    # independent of the chunking (and so of the process layout), like every other noise
    r2 = sample_rollouts(policy, bucket, G, 3, sigmas, (0, 2), 0.7, "sde", 0, 0, 2, shared_start=True)
    assert torch.equal(r.latents, r2.latents)
    # off (the default): every rollout starts from its own noise
    r3 = sample_rollouts(policy, bucket, G, 3, sigmas, (0, 2), 0.7, "sde", 0, 0, 4)
    assert not torch.equal(r3.states[0][0], r3.states[0][1])


@pytest.mark.parametrize("window", [(0, 2), (1, 3)])
def test_folded_euler_steps_keep_the_rollout_and_the_window_logp_bit_for_bit(tiny_init, tmp_path, window):
    """The rollout runs its Euler steps (outside the window) with the adapter folded into W
    (vrlvr.models.lora_fold); the adapted sampler is the reference. Before the window nothing is
    stochastic, so a fold there moves the window's start by fp32 rounding only."""
    cfg, policy, _, (bucket,) = _bucket_and_policy(tiny_init, tmp_path)
    with torch.no_grad():  # a trained adapter: a fresh one (B = 0) folds to W exactly
        for n, w in policy.named_parameters():
            if "lora_B" in n:
                w.normal_(0, 0.3, generator=torch.Generator().manual_seed(len(n)))
    sigmas = flow_sigmas(cfg.sampling.steps, cfg.sampling.shift)
    r = sample_rollouts(policy, bucket, 4, 3, sigmas, window, 0.7, "sde", 0, 0, 4)
    unfolded = contextlib.nullcontext
    with mock.patch.object(type(policy), "folded_lora", lambda self: unfolded()):
        ref = sample_rollouts(policy, bucket, 4, 3, sigmas, window, 0.7, "sde", 0, 0, 4)
    torch.testing.assert_close(r.latents, ref.latents, rtol=1e-4, atol=1e-4)
    assert np.abs(r.videos.astype(int) - ref.videos.astype(int)).max() <= 1
    if window[0] == 0:  # no Euler step before the window: its log-probs are the adapted ones exactly
        assert torch.equal(r.logp, ref.logp) and all(torch.equal(a, b) for a, b in zip(r.states, ref.states))
    else:
        torch.testing.assert_close(r.logp, ref.logp, rtol=1e-4, atol=1e-4)


def test_shared_start_seed_is_apart_from_every_rollout_seed():
    from vrlvr.train.rollout import start_seed

    starts = {start_seed(0, s, p) for s in range(3) for p in range(3)}
    rollouts = {rollout_seed(0, s, p, r) for s in range(3) for p in range(3) for r in range(3)}
    assert len(starts) == 9 and not starts & rollouts


@pytest.mark.parametrize("block", [1, 4])
def test_window_logp_matches_a_rescore_and_the_first_ratio_is_exactly_one(tiny_init, tmp_path, block):
    cfg, policy, ref, (bucket,) = _bucket_and_policy(
        tiny_init, tmp_path, "grpo.beta=0.1", f"grpo.noise_block={block}"
    )
    sigmas = flow_sigmas(cfg.sampling.steps, cfg.sampling.shift)
    start, end = cfg.window()
    r = sample_rollouts(policy, bucket, 4, 3, sigmas, (start, end), 0.7, "sde", 0, 0, 4, noise_block=block)
    if block > 1:  # the SDE moved x_1 off its mean by one value per 4 x 4 block (28 x 28 frames)
        x0, x1 = r.states[0], r.states[1]
        v = policy.velocity(torch.cat([r.cond, x0], dim=2), sigmas[start].expand(8), r.prompt_embeds, r.cond)
        mean, _ = step_mean_std(x0, v[:, :, 1:], float(sigmas[0]), float(sigmas[1]), eta=0.7, mode="sde")
        d = (x1 - mean).reshape(8, 3, 2, 7, 4, 7, 4)
        torch.testing.assert_close(d, d[:, :, :, :, :1, :, :1].expand_as(d), rtol=0, atol=1e-5)
    rewards = torch.tensor([[0.1, 0.9, 0.4, 0.2], [0.5, 0.6, 0.5, 0.8]], dtype=torch.float64)
    adv, keep = group_advantages(rewards, 5.0)
    stats = torch.zeros(6, dtype=torch.float64)
    backward_grpo_loss(
        policy, ref, r, adv.float(), keep, 4, sigmas, start, end, cfg, 8 * (end - start), stats, 0
    )
    assert float(stats[4]) == 0.0  # max |ratio - 1| on the first epoch: exactly 0 on CPU fp32
    assert float(stats[2]) == 0.0  # nothing clipped


# --- the loss and gradient against a plain-torch reference ---------------------------------
def _blocks(t, k):
    """[B, C, f, h, w] -> the k x k block sums / k (h, w multiples of k): the block coefficients."""
    B, C, f, h, w = t.shape
    return t.reshape(B, C, f, h // k, k, w // k, k).sum(dim=(4, 6)) / k


def _reference_logp(x, v, x_next, sigma, sigma_next, eta, sigma_max, block=1):
    """Flow-GRPO's SDE step density, written out in plain torch (fp64); for block k > 1, the
    density of the block coefficients, per latent element. Returns (logp, mean, s) where mean is
    that of what is scored (the block coefficients of the step mean for k > 1)."""
    x, v, x_next = x.double(), v.double(), x_next.double()
    dt = sigma_next - sigma
    denom = 1 - (sigma_max if sigma == 1 else sigma)
    std = eta * math.sqrt(sigma / denom)
    mean = x * (1 + std**2 / (2 * sigma) * dt) + v * (1 + std**2 * (1 - sigma) / (2 * sigma)) * dt
    s = std * math.sqrt(-dt)
    if block > 1:
        mean, x_next = _blocks(mean, block), _blocks(x_next, block)
    lp = -((x_next - mean) ** 2) / (2 * s**2) - math.log(s) - math.log(math.sqrt(2 * math.pi))
    return lp.flatten(1).mean(1) / block**2, mean, s


def _make_adapter_live(policy) -> None:
    """LoRA B is zero at init (the adapter changes nothing); give it values so the KL term is live."""
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in policy.transformer.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)


@pytest.mark.parametrize("block", [1, 4])
def test_trainer_loss_and_lora_gradient_equal_a_plain_reference(tiny_init, tmp_path, block):
    """Two groups, LoRA with non-zero B (so the KL term is live), beta > 0, one group partly clipped;
    per-element noise and noise per 4 x 4 block (the density of the block coefficients)."""
    cfg, policy, ref, (bucket,) = _bucket_and_policy(
        tiny_init, tmp_path, "grpo.beta=0.3", "grpo.clip_range=0.05", f"grpo.noise_block={block}"
    )
    assert ref is None  # LoRA: the reference is the same transformer with adapters off
    _make_adapter_live(policy)
    sigmas = flow_sigmas(cfg.sampling.steps, cfg.sampling.shift)
    start, end = cfg.window()
    r = sample_rollouts(policy, bucket, 4, 3, sigmas, (start, end), 0.7, "sde", 0, 0, 4, noise_block=block)
    # pretend the rollout came from an older policy: shifts the ratios off 1 so clipping acts
    r.logp = r.logp + torch.linspace(-0.3, 0.3, r.logp.numel()).view_as(r.logp)
    rewards = torch.tensor([[0.1, 0.9, 0.4, 0.2], [0.5, 0.6, 0.5, 0.8]], dtype=torch.float64)
    adv, keep = group_advantages(rewards, 5.0)
    params = policy.trainable_parameters()
    W = end - start
    denom = 8 * W
    stats = torch.zeros(6, dtype=torch.float64)
    policy.zero_grad(set_to_none=True)
    backward_grpo_loss(policy, None, r, adv.float(), keep, 4, sigmas, start, end, cfg, denom, stats, 0)
    got_loss = float(stats[5])
    got_grads = [p.grad.clone() for p in params]

    # the reference: one sample at a time, plain formulas, one backward of the mean loss
    policy.zero_grad(set_to_none=True)
    total = torch.zeros((), dtype=torch.float64)
    sig = [float(s) for s in sigmas]
    for n in range(8):
        a = float(adv.view(-1)[n])
        for k in range(start, end):
            xk, xk1 = r.states[k - start][n : n + 1], r.states[k + 1 - start][n : n + 1]
            x_full = torch.cat([r.cond[n : n + 1], xk], dim=2)
            sg = torch.tensor([sig[k]])
            v = policy.velocity(x_full, sg, r.prompt_embeds[n : n + 1], r.cond[n : n + 1])[:, :, 1:]
            with torch.no_grad(), policy.adapters_disabled():
                v_ref = policy.velocity(x_full, sg, r.prompt_embeds[n : n + 1], r.cond[n : n + 1])[:, :, 1:]
            lp, mean, s = _reference_logp(xk, v, xk1, sig[k], sig[k + 1], 0.7, sig[1], block)
            _, mean_ref, _ = _reference_logp(xk, v_ref, xk1, sig[k], sig[k + 1], 0.7, sig[1], block)
            kl = ((mean - mean_ref) ** 2).flatten(1).mean(1) / (2 * s**2) / block**2
            ratio = torch.exp(lp - r.logp[n, k - start].double())
            surrogate = torch.maximum(-a * ratio, -a * ratio.clamp(1 - 0.05, 1 + 0.05))
            total = total + (surrogate + 0.3 * kl).sum()
    total = total / denom
    total.backward()
    want = float(total.detach())
    assert abs(got_loss - want) < 1e-5 * max(1.0, abs(want))
    assert float(stats[2]) > 0  # the clip was exercised
    for g, p in zip(got_grads, params):
        torch.testing.assert_close(g, p.grad.float(), rtol=2e-4, atol=1e-7)
    assert any(float(g.abs().max()) > 0 for g in got_grads)


def test_awm_loss_is_the_advantage_weighted_velocity_error():
    torch.manual_seed(0)
    v, noise, x0 = (torch.randn(3, 2, 2, 4, 4) for _ in range(3))
    adv = torch.tensor([1.0, -0.5, 0.0])
    want = [float(a) * float(((v[i] - (noise[i] - x0[i])) ** 2).mean()) for i, a in enumerate(adv)]
    torch.testing.assert_close(awm_loss(v, noise, x0, adv), torch.tensor(want), rtol=1e-6, atol=0)
    # a positive advantage pulls v towards the flow's velocity noise - x0, a negative one pushes away
    v = v.requires_grad_()
    awm_loss(v, noise, x0, adv).sum().backward()
    step = -v.grad  # gradient descent
    towards = ((noise - x0 - v.detach()) * step).flatten(1).sum(1)
    assert towards[0] > 0 and towards[1] < 0 and towards[2] == 0


@pytest.mark.parametrize("negative", [0.0, 0.25])
def test_awm_negative_scales_only_the_below_average_terms(negative):
    torch.manual_seed(1)
    v, noise, x0 = (torch.randn(4, 2, 2, 4, 4) for _ in range(3))
    adv = torch.tensor([1.5, -0.5, 0.0, -1.0])
    plain = awm_loss(v, noise, x0, adv)
    got = awm_loss(v, noise, x0, adv, negative)
    want = torch.where(adv < 0, negative * plain, plain)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    if negative == 0.0:  # a weighted regression on the above-average rollouts: bounded below by 0
        assert float(got.min()) >= 0 and float(got[0]) > 0
        far = awm_loss(v + 100.0, noise, x0, adv, negative)  # v far from every target
        assert float(far.sum()) > float(got.sum())  # moving away no longer pays


@pytest.mark.parametrize("negative", [1.0, 0.0])
def test_awm_trainer_loss_and_lora_gradient_equal_a_plain_reference(tiny_init, tmp_path, negative):
    """grpo.loss=awm, two groups, beta > 0 with a live adapter: the trainer's micro-batched loss and
    LoRA gradient against one sample at a time in fp64 formulas, with the same fresh noise; with
    grpo.awm_negative=0 the below-average rollouts keep only their KL term."""
    cfg, policy, _, (bucket,) = _bucket_and_policy(
        tiny_init, tmp_path, "grpo.beta=0.3", "grpo.loss=awm", f"grpo.awm_negative={negative}"
    )
    _make_adapter_live(policy)
    sigmas = flow_sigmas(cfg.sampling.steps, cfg.sampling.shift)
    start, end = cfg.window()
    r = sample_rollouts(policy, bucket, 4, 3, sigmas, (start, end), 0.7, "sde", 0, 0, 4)
    rewards = torch.tensor([[0.1, 0.9, 0.4, 0.2], [0.5, 0.6, 0.5, 0.8]], dtype=torch.float64)
    adv, keep = group_advantages(rewards, 5.0)
    params = policy.trainable_parameters()
    denom = 8 * (end - start)

    def generators():  # one per rollout: puzzle p of the bucket, rollout j, epoch 0
        return [torch.Generator().manual_seed(matching_seed(0, 0, p, j, 0)) for p in (0, 1) for j in range(4)]

    stats = torch.zeros(6, dtype=torch.float64)
    policy.zero_grad(set_to_none=True)
    backward_awm_loss(
        policy, None, r, adv.float(), keep, 4, sigmas, start, end, cfg, denom, stats, generators()
    )
    got_loss, got_grads = float(stats[5]), [p.grad.clone() for p in params]
    assert float(stats[2]) == 0 and float(stats[3]) == 8 * (end - start)

    # the reference: each rollout's own draws, window steps in order, one sample at a time
    x0 = r.latents[:, :, 1:]
    gens = generators()
    draws = {
        (n, k): torch.randn(tuple(x0.shape[1:]), generator=gens[n])[None]
        for n in range(8)
        for k in range(start, end)
    }
    policy.zero_grad(set_to_none=True)
    total = torch.zeros((), dtype=torch.float64)
    sig = [float(s) for s in sigmas]
    for n in range(8):
        a = float(adv.view(-1)[n])
        a = negative * a if a < 0 else a
        c, pe = r.cond[n : n + 1], r.prompt_embeds[n : n + 1]
        for k in range(start, end):
            e = draws[n, k]
            xs = (1 - sig[k]) * x0[n : n + 1] + sig[k] * e
            x_full = torch.cat([c, xs], dim=2)
            sg = torch.tensor([sig[k]])
            v = policy.velocity(x_full, sg, pe, c)[:, :, 1:].double()
            with torch.no_grad(), policy.adapters_disabled():
                v_ref = policy.velocity(x_full, sg, pe, c)[:, :, 1:].double()
            err = ((v - (e.double() - x0[n : n + 1].double())) ** 2).mean()
            _, mean, s = _reference_logp(xs, v, xs, sig[k], sig[k + 1], 0.7, sig[1])
            _, mean_ref, _ = _reference_logp(xs, v_ref, xs, sig[k], sig[k + 1], 0.7, sig[1])
            kl = ((mean - mean_ref) ** 2).mean() / (2 * s**2)
            total = total + a * err + 0.3 * kl
    total = total / denom
    total.backward()
    want = float(total.detach())
    assert abs(got_loss - want) < 1e-5 * max(1.0, abs(want))
    for g, p in zip(got_grads, params):
        torch.testing.assert_close(g, p.grad.float(), rtol=2e-4, atol=1e-7)
    assert any(float(g.abs().max()) > 0 for g in got_grads)


def test_matching_seed_is_apart_from_the_rollout_and_start_seeds():
    from vrlvr.train.rollout import start_seed

    seeds = {
        matching_seed(0, s, p, r, e) for s in range(3) for p in range(3) for r in range(4) for e in range(2)
    }
    assert len(seeds) == 72
    assert not seeds & {rollout_seed(0, s, p, r) for s in range(3) for p in range(3) for r in range(4)}
    assert not seeds & {start_seed(0, s, p) for s in range(3) for p in range(3)}


# --- whole runs ----------------------------------------------------------------------------
def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_learns_nothing_silently_and_writes_a_readable_folder(tiny_init, tmp_path):
    run = tmp_path / "run"
    cfg = small_cfg(run, tiny_init, "sample_every=2", "checkpoint_every=1", "keep_checkpoints=1")
    res = train_grpo(cfg, progress=False)
    assert res["step"] == 2 and set(res["before"]) == {"maze"} and set(res["after"]) == {"maze"}
    lines = _metrics(run)
    steps = [m for m in lines if "reward_mean" in m]
    assert [m["step"] for m in steps] == [1, 2]
    required = {
        "reward_mean", "reward_std", "success_rate", "loose_success_rate", "loss", "kl", "clip_frac",
        "ratio_dev", "frac_zero_std", "grad_norm", "lr", "step_time_s", "rollout_time_s", "verify_time_s",
        "train_time_s", "world_size",
    }  # fmt: skip
    for m in steps:
        assert required <= set(m), required - set(m)
        assert any(k.startswith("reward/") for k in m)  # every reward component
    evals = [m for m in lines if "eval" in m]
    assert [e["tag"] for e in evals] == ["before", "after"]
    for name in ("config.yaml", "heldout.json", "curves.png", "final/policy.json"):
        assert (run / name).is_file(), name
    assert (run / "final" / "pytorch_lora_weights.safetensors").is_file()
    assert (run / "samples" / "step_0000002.mp4").is_file()
    ckpts = sorted((run / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_0000002"]  # keep_checkpoints=1
    assert (ckpts[0] / "train_state.pt").is_file()
    # the adapter in final/ is diffusers' format and reloads into the same policy
    from vrlvr.models import load_policy

    back = load_policy(run / "final")
    assert back.lora and back.lora["rank"] == 4


def test_zero_variance_groups_are_skipped_and_counted(tiny_init, tmp_path):
    """A task whose reward never varies: every group is skipped, nothing is updated."""
    run = tmp_path / "run"
    tasks.register("constmaze", ConstMaze, overwrite=True)
    cfg = small_cfg(run, tiny_init, "data.task=constmaze", "optim.steps=1")
    before = {k: v.clone() for k, v in build_rl_policy(cfg, torch.device("cpu"))[0].lora_state_dict().items()}
    train_grpo(cfg, progress=False)
    (m,) = [m for m in _metrics(run) if "reward_mean" in m]
    assert m["frac_zero_std"] == 1.0 and m["contributing"] == 0 and m["grad_norm"] is None
    # nothing was measured: no loss, KL or clipping to report (a KL of 0 would read as "no drift")
    assert all(m[k] is None for k in ("loss", "pg_loss", "kl", "clip_frac", "ratio_dev")), m
    from vrlvr.models import load_policy

    after = load_policy(run / "final").lora_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class HalfMaze(MazeTask):
    """A maze whose reward varies (with the video) only on puzzles of an even seed: half the groups
    carry signal, the other half none."""

    name = "halfmaze"

    def verify_video(self, puzzle, frames, **kwargs) -> Verdict:
        even = int(self.canonical_key(puzzle), 16) % 2 == 0
        r = float(np.asarray(frames[1:], dtype=np.float32).mean()) / 255.0 if even else 0.5
        return Verdict(success=False, reward=r, components={"half": r})


def test_dynamic_sampling_draws_more_groups_until_enough_vary(tiny_init, tmp_path):
    """grpo.resample_rounds: a step rolls out more puzzles while fewer than prompts_per_step groups
    vary, and stops as soon as they do (or the rounds run out); every drawn group is counted."""
    tasks.register("constmaze", ConstMaze, overwrite=True)
    run = tmp_path / "const"
    cfg = small_cfg(
        run, tiny_init, "data.task=constmaze", "optim.steps=1", "grpo.resample_rounds=2", "eval.n=0"
    )
    train_grpo(cfg, progress=False)
    (m,) = [m for m in _metrics(run) if "reward_mean" in m]
    assert m["rounds"] == 3 and m["groups"] == 6 and m["frac_zero_std"] == 1.0  # 3 rounds of P = 2
    tasks.register("halfmaze", HalfMaze, overwrite=True)
    run = tmp_path / "half"
    cfg = small_cfg(
        run, tiny_init, "data.task=halfmaze", "optim.steps=4", "grpo.resample_rounds=6", "eval.n=0"
    )
    train_grpo(cfg, progress=False)
    steps = [m for m in _metrics(run) if "reward_mean" in m]
    assert len(steps) == 4 and any(m["rounds"] > 1 for m in steps)
    for m in steps:
        varied = round(m["groups"] * (1 - m["frac_zero_std"]))
        assert m["groups"] == 2 * m["rounds"]
        assert varied >= 2 or m["rounds"] == 7  # enough groups vary, or the rounds ran out
        assert m["contributing"] == varied * 4  # every varying group trains (G = 4 samples each)
    plain = small_cfg(tmp_path / "plain", tiny_init, "data.task=halfmaze", "optim.steps=1", "eval.n=0")
    train_grpo(plain, progress=False)
    (m,) = [m for m in _metrics(tmp_path / "plain") if "reward_mean" in m]
    assert m["rounds"] == 1 and m["groups"] == 2  # off by default


def test_non_finite_rewards_skip_steps_then_stop_with_a_checkpoint(tiny_init, tmp_path):
    run = tmp_path / "run"
    tasks.register("nanmaze", NanMaze, overwrite=True)
    cfg = small_cfg(run, tiny_init, "data.task=nanmaze", "optim.steps=5", "grpo.max_nonfinite=2")
    with pytest.raises(TrainingDiverged, match="non-finite reward"):
        train_grpo(cfg, progress=False)
    steps = [m for m in _metrics(run) if "reward_mean" in m]
    assert len(steps) == 2 and all("non-finite" in m["skipped"] for m in steps)
    assert all(m["loss"] is None and m["kl"] is None for m in steps)  # skipped: nothing measured
    assert (run / "checkpoints" / "step_0000002" / "train_state.pt").is_file()


def test_mixed_maze_and_sokoban_batch(tiny_init, tmp_path):
    run = tmp_path / "run"
    cfg = small_cfg(
        run,
        tiny_init,
        "data.task=[maze,sokoban]",
        "data.sizes_by_task={maze: [7], sokoban: [6]}",
        "optim.steps=1",
        "eval.n=2",
    )
    res = train_grpo(cfg, progress=False)
    assert set(res["after"]) == {"maze", "sokoban"}
    (m,) = [m for m in _metrics(run) if "reward_mean" in m]
    # each sample is scored by its own task's verifier: both tasks' components are there
    assert "reward/boxes_on_goals" in m and any("connect" in k for k in m)
    held = json.loads((run / "heldout.json").read_text())
    assert set(held["tasks"]) == {"maze", "sokoban"}
    meta = json.loads((run / "final" / "policy.json").read_text())
    assert meta["tasks"] == ["maze", "sokoban"] and meta["task"] is None
    # `vrlvr eval` takes the mixed policy per task, on that task's held-out puzzles and sizes
    from vrlvr.cli import main

    out = tmp_path / "sokoban.json"
    argv = ["eval", "--checkpoint", str(run / "final"), "--n", "2", "--no-progress", "--json", str(out)]
    assert main([*argv, "--task", "sokoban"]) == 0
    report = json.loads(out.read_text())
    assert report["task"] == "sokoban" and report["heldout_checked"] and set(report["per_size"]) == {"6"}
    assert main([*argv, "--task", "flowfree"]) == 2  # not one of its tasks


def test_full_fine_tune_uses_a_frozen_reference_copy(tiny_init, tmp_path):
    cfg = small_cfg(tmp_path / "run", tiny_init, "lora.rank=0")
    policy, ref = build_rl_policy(cfg, torch.device("cpu"))
    assert policy.lora is None and ref is not None
    assert all(not p.requires_grad for p in ref.parameters())
    assert all(p.dtype == torch.float32 for p in policy.trainable_parameters())
    assert sum(p.numel() for p in policy.trainable_parameters()) == sum(
        p.numel() for p in policy.transformer.parameters()
    )


def test_init_from_an_adapted_policy_merges_its_adapter(tiny_init, tmp_path):
    """An RL run's final/ as model.init: its adapter is folded in, a fresh one trains on top."""
    cfg = small_cfg(tmp_path / "a", tiny_init)
    policy, _ = build_rl_policy(cfg, torch.device("cpu"))
    with torch.no_grad():
        for n, p in policy.transformer.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    policy.save(tmp_path / "adapted", extra={"task": "maze"})
    x = torch.randn(1, 3, 3, 28, 28)
    sig, pe = torch.tensor([0.5]), policy.encode_prompts(["maze"])
    want = policy.velocity(x, sig, pe, x[:, :, :1])
    cfg2 = small_cfg(tmp_path / "b", tmp_path / "adapted")
    merged, _ = build_rl_policy(cfg2, torch.device("cpu"))
    assert merged.lora["rank"] == 4  # a new adapter, B = 0: the policy equals the adapted one
    torch.testing.assert_close(merged.velocity(x, sig, pe, x[:, :, :1]), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "override, message",
    [
        ("grpo.group_size=1", "group_size must be >= 2"),
        ("grpo.sde_window=[2,9]", "sde_window"),
        ("grpo.sde_window=[2,2]", "sde_window"),
        ("grpo.sde_window=[-1,2]", "sde_window"),
        ("sampling.eta=-0.5", "sampling.eta"),
        ("grpo.clip_range=-0.1", "grpo.clip_range"),
        ("grpo.beta=-1", "grpo.beta"),
        ("lora.rank=-2", "lora.rank"),
        ("data.task=[maze,maze]", "twice"),
        ("data.dir=/tmp", "data.dir"),
        ("data.pool=-1", "data.pool"),
        ("grpo.noise_block=0", "grpo.noise_block"),
        ("grpo.loss=dpo", "grpo.loss"),
        ("grpo.awm_negative=0.5", "grpo.awm_negative"),  # weighs awm's terms; the loss is ppo
        ("grpo.loss=awm grpo.awm_negative=-0.1", "grpo.awm_negative"),
        ("grpo.loss=awm grpo.awm_negative=1.5", "grpo.awm_negative"),
    ],
)
def test_invalid_settings_are_refused_naming_the_key(tiny_init, tmp_path, override, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        small_cfg(tmp_path, tiny_init, *override.split())


def test_unknown_keys_name_the_closest_valid_one(tiny_init, tmp_path):
    with pytest.raises(ValueError, match="group_size"):
        small_cfg(tmp_path, tiny_init, "grpo.group_sise=4")


class ConstMaze(MazeTask):
    """A maze whose every video scores the same reward: no group has variance."""

    name = "constmaze"

    def verify_video(self, puzzle, frames, **kwargs) -> Verdict:
        return Verdict(success=False, reward=0.25, components={"const": 0.25})


class NanMaze(MazeTask):
    """A maze whose verifier returns NaN: a broken reward must never reach the optimizer."""

    name = "nanmaze"

    def verify_video(self, puzzle, frames, **kwargs) -> Verdict:
        return Verdict(success=False, reward=float("nan"), components={})


def test_the_wan_path_runs_two_steps(tmp_path):
    """A tiny random Wan pipeline (VAE + UMT5 + tokenizer, loaded like a real checkpoint): LoRA,
    VAE latents, frame 0 held by the VAE's causal first frame, 2 GRPO steps, a final/ that reloads."""
    from vrlvr.models import build_tiny_wan_folder, load_policy

    wan = build_tiny_wan_folder(tmp_path / "wan")
    run = tmp_path / "run"
    cfg = small_cfg(
        run,
        wan,
        "data.cell_px=null",
        "data.height=32",
        "data.width=32",
        "data.num_frames=5",
        "model.max_sequence_length=32",
        "lora.rank=2",
        "eval.n=2",
    )
    res = train_grpo(cfg, progress=False)
    assert res["step"] == 2
    steps = [m for m in _metrics(run) if "reward_mean" in m]
    assert len(steps) == 2 and all(math.isfinite(m["reward_mean"]) for m in steps)
    back = load_policy(run / "final")
    assert back.kind == "wan" and back.lora["rank"] == 2


def test_metrics_logger_writes_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vrlvr.train.logger import MetricsLogger, read_metrics

    log = MetricsLogger(tmp_path)
    log.log({"step": 1, "reward_mean": 0.5, "reward/progress": 0.25, "skipped": "text is not a scalar"})
    log.log({"step": 1, "tag": "after", "task": "maze", "eval": {"success_rate": 0.1}})
    log.close()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 1]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"reward_mean", "reward/progress", "after/maze/eval/success_rate"} <= tags
    # resume: lines after the checkpoint's step are dropped, the rest kept
    log = MetricsLogger(tmp_path, resume_step=0)
    log.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == []


def test_curves_leave_a_gap_where_a_step_trained_nothing(tmp_path):
    """A step without any group to train measured no KL: the curve shows a gap there, whether the
    run logged null (now) or 0 with contributing 0 (runs made before), and the PNG is written."""
    from vrlvr.train.logger import MetricsLogger, plot_curves, update_series

    base = {"reward_mean": 0.1, "success_rate": 0.0, "loose_success_rate": 0.0}
    rows = [
        {**base, "step": 1, "kl": 0.0, "contributing": 8},
        {**base, "step": 2, "kl": None, "contributing": 0},  # logged now: null
        {**base, "step": 3, "kl": 0.0, "contributing": 0},  # logged before: 0
        {**base, "step": 4, "kl": 2e-4, "contributing": 16},
    ]
    kl = update_series(rows, "kl")
    assert kl[0] == 0.0 and kl[3] == 2e-4 and math.isnan(kl[1]) and math.isnan(kl[2])
    assert math.isnan(update_series(rows, "clip_frac")[0])  # never logged: a gap too
    log = MetricsLogger(tmp_path)
    for r in rows:
        log.log(r)
    log.close()
    png = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png")
    assert png is not None and png.stat().st_size > 0


@pytest.mark.slow
def test_bench_rollout_reports_every_configuration(tmp_path):
    import importlib

    bench = importlib.import_module("vrlvr.bench.bench_rollout")
    out = tmp_path / "r.json"
    args = "--steps 2 --B 2 --G 4 --T 2 --micro-batch 8 --threads 2".split()
    rep = bench.main([*args, "--json", str(out)])
    assert json.loads(out.read_text()) == rep
    assert set(rep["cases"]) == {"half", "all", "half_eager", "half_unfolded", "half_peft"}
    assert rep["cases"]["half"]["lora_fold"] and not rep["cases"]["half_unfolded"]["lora_fold"]
    assert (
        rep["cases"]["half"]["adapted_forward"] == "fused"
        and rep["cases"]["half_peft"]["adapted_forward"] == "peft"
    )
    assert rep["lora_fold_rollout_speedup"] > 0 and rep["fused_lora_train_speedup"] > 0
    assert rep["cases"]["half"]["window"] == [0, 1] and rep["cases"]["all"]["window"] == [0, 2]
    assert rep["early_step_focus_step_time_ratio"] > 0 and rep["cases"]["half"]["rollout_videos_per_s"] > 0


@pytest.mark.slow
def test_bench_rollout_takes_a_recipe_from_a_config(tmp_path):
    """--config: the shipped 12-block recipe's window, loss and KL weight (a 4-block policy and small
    sizes keep it short); --window-end overrides the window."""
    import importlib

    bench = importlib.import_module("vrlvr.bench.bench_rollout")
    config = str(Path(__file__).resolve().parents[1] / "configs" / "maze-deep12.yaml")
    small = "--steps 2 --B 2 --G 4 --T 3 --micro-batch 8 --threads 2 --init maze-tiny".split()
    rep = bench.main(["--config", config, *small])
    assert rep["setup"]["loss"] == "awm" and rep["setup"]["beta"] == 5.0 and rep["setup"]["T"] == 3
    assert rep["cases"]["half"]["window"] == [0, 2] and rep["cases"]["all"]["window"] == [0, 3]
    assert rep["cases"]["half_unfolded"]["window"] == [0, 2]
    assert all(c["loss"] == "awm" and c["init"] == "maze-tiny" for c in rep["cases"].values())
    assert rep["cases"]["half"]["rollout_videos_per_s"] > 0


def test_bench_rollout_rejects_a_bad_window_or_config(tmp_path, capsys):
    import importlib

    bench = importlib.import_module("vrlvr.bench.bench_rollout")
    for argv, what in (
        (["--window-end", "0"], "--window-end must be in [1, 10]"),
        (["--T", "4", "--window-end", "5"], "--window-end must be in [1, 4]"),
        (["--config", str(tmp_path / "nope.yaml")], "--config: no such file"),
    ):
        with pytest.raises(SystemExit):
            bench.main(argv)
        assert what in capsys.readouterr().err


class BlueMaze(MazeTask):
    """A maze whose reward is how blue the generated frames are (``sign`` -1: how little): a
    reward any policy can move, so a run must move it the way it is paid."""

    name = "bluemaze"
    sign = 1.0

    def verify_video(self, puzzle, frames, **kwargs) -> Verdict:
        f = np.asarray(frames[1:], dtype=np.float32) / 255.0  # generated frames only
        blue = float((f[..., 2] - 0.5 * (f[..., 0] + f[..., 1])).mean())
        return Verdict(success=False, reward=self.sign * blue, components={"blue": blue})


class UnblueMaze(BlueMaze):
    name = "unbluemaze"
    sign = -1.0


@pytest.mark.parametrize("loss", ["ppo", "awm"])
@pytest.mark.parametrize("task_cls", [BlueMaze, UnblueMaze])
def test_the_trainer_moves_the_reward_the_way_it_is_paid(tiny_init, tmp_path, task_cls, loss):
    """End to end (rollouts, advantages, the clipped loss or advantage-weighted matching, LoRA,
    AdamW): a few steps raise the mean of a reward the policy can easily change, and its negation
    lowers it. A sign error anywhere in the objective fails one of the two; a step that learns
    nothing fails both."""
    tasks.register(task_cls.name, task_cls, overwrite=True)
    run = tmp_path / "run"
    # from the shipped maze-tiny (it paints blue paths, so blueness is within LoRA's easy reach)
    cfg = small_cfg(
        run, "maze-tiny", f"data.task={task_cls.name}", "optim.steps=8", "optim.lr=3e-3", "grpo.beta=0",
        "eval.n=0", "grpo.group_size=8", "grpo.micro_batch=16", "lora.rank=8", f"grpo.loss={loss}",
    )  # fmt: skip
    train_grpo(cfg, progress=False)
    blue = [m["reward/blue"] for m in _metrics(run) if "reward_mean" in m]
    assert len(blue) == 8
    first, last = np.mean(blue[:2]), np.mean(blue[-2:])
    moved = (last - first) * task_cls.sign
    assert moved > 0.02, (task_cls.name, blue)


def test_with_beta_0_the_kl_is_watched_not_optimised(tiny_init, tmp_path):
    """grpo.beta=0 keeps the KL out of the loss but still logs it (first window step): exactly 0
    while the adapter is zero (step 1), above 0 once the policy has moved."""
    run = tmp_path / "run"
    tasks.register(BlueMaze.name, BlueMaze, overwrite=True)  # a reward with variance: steps update
    cfg = small_cfg(
        run, tiny_init, "data.task=bluemaze", "grpo.beta=0", "optim.steps=2", "optim.lr=1e-2", "eval.n=0"
    )
    train_grpo(cfg, progress=False)
    kl = [m["kl"] for m in _metrics(run) if "reward_mean" in m]
    assert kl[0] == 0.0 and kl[1] > 0.0, kl
