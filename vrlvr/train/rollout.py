"""SDE-GRPO rollouts: G videos per puzzle, SDE on the Early-Step Focus window, ODE elsewhere.

For T sampling steps over the shifted sigmas and a window [start, end):

- steps inside the window are ``vrlvr.ops.sde_step`` (fused: the sample and its Gaussian
  log-prob in one pass); the rollout keeps x_k for k = start..end and the log-prob of every window
  step, nothing else (memory: (end - start + 1) latents per video);
- steps outside are Euler ODE steps (no noise, nothing kept);
- only the generated latent frames 1.. are stepped, noised and scored: latent frame 0 is the clean
  puzzle (TI2V conditioning) and stays exactly that (an SDE step would move it even with v = 0).

Randomness: every rollout has its own CPU generator seeded from (seed, step, puzzle index, rollout
index) alone, never from the process rank or the batch layout, so a run on N processes draws the
same noise as a run on one. With ``shared_start`` the G rollouts of a puzzle start from one initial
noise (drawn from a generator seeded by (seed, step, puzzle index) alone) and differ only by their
SDE noise: the group's rewards then compare actions whose log-probs are trained, not starting
points no update can credit (DanceGRPO shares the initial noise within a group too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vrlvr.models.conditioning import apply_condition
from vrlvr.models.lora_fold import fold_outside
from vrlvr.ops import sde_step
from vrlvr.train.exploration import block_noise, step_logprob

__all__ = ["rollout_seed", "start_seed", "matching_seed", "GroupBucket", "RolloutBatch", "sample_rollouts"]


def _seed63(coords: list[int], spawn_key: tuple[int, ...] = ()) -> int:
    """A 63-bit seed from integer coordinates (SeedSequence mixes them; no collisions in practice);
    a distinct ``spawn_key`` keeps one kind of seed apart from the others."""
    state = np.random.SeedSequence([int(c) for c in coords], spawn_key=spawn_key).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1))


def rollout_seed(seed: int, step: int, puzzle: int, rollout: int) -> int:
    """A 63-bit seed for one rollout."""
    return _seed63([seed, step, puzzle, rollout])


def start_seed(seed: int, step: int, puzzle: int) -> int:
    """A 63-bit seed for the initial noise shared by a puzzle's rollouts (``shared_start``); its own
    spawn key keeps it apart from every ``rollout_seed``."""
    return _seed63([seed, step, puzzle], spawn_key=(1,))


def matching_seed(seed: int, step: int, puzzle: int, rollout: int, epoch: int) -> int:
    """A 63-bit seed for the fresh noise ``grpo.loss=awm`` re-noises one rollout's final latent with
    in one epoch: from these coordinates alone (like ``rollout_seed``), so N processes draw what one
    draws; its own spawn key keeps it apart from the rollouts' seeds."""
    return _seed63([seed, step, puzzle, rollout, epoch], spawn_key=(2,))


@dataclass
class GroupBucket:
    """Groups (puzzles) of one step that share a task and frame geometry, so their rollouts batch."""

    task: object
    puzzle_index: list[int]  # global index of each puzzle within the step
    puzzles: list
    themes: list[int]
    first_frames: np.ndarray  # uint8 [n, H, W, 3]
    prompts: list[str]


@dataclass
class RolloutBatch:
    """The n * G rollouts of one bucket (rollout r of puzzle j at row j * G + r)."""

    cond: torch.Tensor  # [N, C, 1, h, w] clean latent frame 0
    prompt_embeds: torch.Tensor  # [N, L, D]
    states: list[torch.Tensor]  # window states x_start .. x_end, each [N, C, f - 1, h, w] (frames 1..)
    logp: torch.Tensor  # fp32 [N, end - start]: rollout log-prob of each window step
    latents: torch.Tensor  # [N, C, f, h, w] the final latents (frame 0 == cond, never stepped)
    videos: np.ndarray  # uint8 [N, F, H, W, 3], frame 0 = the puzzle frame exactly


@torch.no_grad()
def sample_rollouts(
    policy,
    bucket: GroupBucket,
    group_size: int,
    num_frames: int,
    sigmas: torch.Tensor,
    window: tuple[int, int],
    eta: float,
    mode: str,
    seed: int,
    step: int,
    micro_batch: int,
    shared_start: bool = False,
    noise_block: int = 1,
) -> RolloutBatch:
    """Generate ``group_size`` videos per puzzle of the bucket, in chunks of ``micro_batch`` videos
    (the trainer re-scores in the same chunks, so the first PPO ratio is exactly 1 on CPU fp32).
    ``shared_start``: a puzzle's rollouts share their initial noise (see the module docstring).
    ``noise_block``: the window's SDE noise is drawn per k x k block of latent pixels and the logp
    is that of the block coefficients (vrlvr.train.exploration); 1 is per-element noise."""
    G = group_size
    start, end = window
    first = bucket.first_frames
    H, W = first.shape[1:3]
    C, f, h, w = policy.latent_shape(num_frames, H, W)
    device = policy.device
    cond = policy.encode_condition(first).float().repeat_interleave(G, dim=0)  # [N, C, 1, h, w]
    prompt_embeds = policy.encode_prompts(list(bucket.prompts)).repeat_interleave(G, dim=0)  # [N, L, D]
    N = cond.shape[0]
    gens = [
        torch.Generator().manual_seed(rollout_seed(seed, step, pi, r))
        for pi in bucket.puzzle_index
        for r in range(G)
    ]
    starts = None
    if shared_start:  # one initial noise per puzzle, repeated for its G rollouts: [N, C, f, h, w]
        starts = torch.stack(
            [
                torch.randn((C, f, h, w), generator=torch.Generator().manual_seed(start_seed(seed, step, pi)))
                for pi in bucket.puzzle_index
            ]
        ).repeat_interleave(G, dim=0)
    sig = [float(s) for s in sigmas]  # host floats: the op takes them without a device sync
    sig_dev = sigmas.to(device)
    states: list[list[torch.Tensor]] = [[] for _ in range(end - start + 1)]
    logps: list[torch.Tensor] = []
    latents: list[torch.Tensor] = []
    # Euler steps outside the window need no log-prob: there the adapter runs folded into the base
    # weights (the same function, one matmul per projection instead of three). Window steps run the
    # adapted forward the update re-scores, so the first PPO ratio stays exactly 1 on CPU fp32.
    step_context = fold_outside(policy, (start, end))
    for b0 in range(0, N, micro_batch):
        rows = slice(b0, min(N, b0 + micro_batch))
        gs = gens[rows]
        cb, pe = cond[rows], prompt_embeds[rows]
        B = cb.shape[0]
        # initial noise per rollout from its own generator (or the puzzle's shared one); frame 0 set
        # to the condition
        if starts is None:
            noise0 = torch.stack([torch.randn((C, f, h, w), generator=g) for g in gs]).to(device)
        else:
            noise0 = starts[rows].to(device)
        x = apply_condition(noise0, cb)  # [B, C, f, h, w] fp32
        lp = []
        for i in range(len(sig) - 1):
            with step_context(i):
                v = policy.velocity(x, sig_dev[i].expand(B), pe, cb)  # [B, C, f, h, w], 0 on frame 0
            if start <= i < end:
                xg = x[:, :, 1:].contiguous()  # [B, C, f - 1, h, w]: generated frames only
                if i == start:
                    states[0].append(xg)
                vg = v[:, :, 1:].contiguous()
                eps = block_noise(gs, tuple(xg.shape[1:]), noise_block).to(device)  # [B, C, f - 1, h, w]
                out = sde_step(xg, vg, sig[i], sig[i + 1], eps, eta=eta, mode=mode)
                states[i + 1 - start].append(out.x_next)
                if noise_block == 1:
                    lp.append(out.logp)
                else:  # the fused op scores every element; the action is the block coefficients
                    lp.append(
                        step_logprob(
                            xg, vg, out.x_next, sig[i], sig[i + 1], eta=eta, mode=mode, block=noise_block
                        )
                    )
                x = torch.cat([cb, out.x_next], dim=2)
            else:
                x = x + (sig[i + 1] - sig[i]) * v  # Euler; v is exactly 0 on frame 0
        logps.append(torch.stack(lp, dim=1))  # [B, end - start]
        latents.append(x)  # frame 0 is cond exactly: never stepped (tests check, nothing masks it)
    lat = torch.cat(latents)  # [N, C, f, h, w]
    # decoded in the same chunks: a VAE decode of a whole Wan batch would not fit in GPU memory
    videos = np.concatenate(
        [policy.decode(lat[b0 : b0 + micro_batch])[:, :num_frames] for b0 in range(0, N, micro_batch)]
    )  # uint8 [N, F, H, W, 3]
    # frame 0 is the input, not a prediction (a VAE's decode of it is only close to the input)
    videos[:, 0] = np.repeat(first, G, axis=0)
    return RolloutBatch(
        cond=cond,
        prompt_embeds=prompt_embeds,
        states=[torch.cat(s) for s in states],
        logp=torch.cat(logps),
        latents=lat,
        videos=videos,
    )
