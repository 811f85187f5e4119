"""vrlvr.models.framewise (the transformer's time path per latent frame) against diffusers' own
forward given per-token timesteps (the reference): outputs and gradients, with and without LoRA,
gradient checkpointing and bf16 autocast, on ordinary and awkward shapes; and the fallback."""

import pytest
import torch

from vrlvr.models import framewise
from vrlvr.models.conditioning import frame_timesteps, token_timesteps
from vrlvr.models.configs import TinyPixelConfig
from vrlvr.models.tiny import TinyPixelPolicy


def tiny(patch: int = 4, layers: int = 2, seed: int = 0) -> TinyPixelPolicy:
    torch.manual_seed(seed)
    p = TinyPixelPolicy(TinyPixelConfig(num_layers=layers, num_heads=2, head_dim=16, ffn_dim=48, patch=patch))
    # a random init has zeroed pieces (diffusers zeroes none here, but make the modulation matter)
    with torch.no_grad():
        for b in p.transformer.blocks:
            b.scale_shift_table.normal_(0, 0.5)
        p.transformer.scale_shift_table.normal_(0, 0.5)
    return p


def reference(transformer, x, sigma, text, patch_size):
    """diffusers' forward with per-token timesteps [B, seq_len]."""
    t = token_timesteps(sigma, x.shape, patch_size)
    return transformer(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]


def inputs(p, B, frames, H, W, seed=1):
    g = torch.Generator().manual_seed(seed)
    C, f, h, w = p.latent_shape(frames, H, W)
    c_in = p.transformer.config.in_channels
    x = torch.randn(B, c_in, f, h, w, generator=g)
    sigma = torch.rand(B, generator=g)
    text = torch.randn(B, 5, p.transformer.config.text_dim, generator=g)
    return x, sigma, text


# (patch, B, frames, H, W): ordinary, one video, the condition frame only, two frames, non-square
SHAPES = [(4, 3, 9, 28, 28), (4, 1, 5, 20, 12), (4, 2, 1, 8, 8), (2, 2, 2, 6, 10), (2, 4, 7, 14, 6)]


@pytest.mark.parametrize("patch,B,frames,H,W", SHAPES)
def test_forward_matches_diffusers(patch, B, frames, H, W):
    p = tiny(patch)
    x, sigma, text = inputs(p, B, frames, H, W)
    with torch.no_grad():
        ref = reference(p.transformer, x, sigma, text, p.patch_size)
        out = framewise.framewise_forward(
            p.transformer, x, frame_timesteps(sigma, x.shape, p.patch_size), text
        )
    assert out.shape == ref.shape
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_timesteps_differ_per_sample_and_frame():
    """Not one timestep for the batch: each sample its own sigma, frame 0 at 0 (a wrong broadcast
    of the per-frame modulation onto the wrong tokens would show here)."""
    p = tiny()
    x, _, text = inputs(p, 3, 9, 16, 16)
    sigma = torch.tensor([0.05, 0.5, 0.95])
    ft = frame_timesteps(sigma, x.shape, p.patch_size)
    assert ft.shape == (3, 9) and (ft[:, 0] == 0).all() and torch.allclose(ft[:, 1], sigma * 1000)
    with torch.no_grad():
        ref = reference(p.transformer, x, sigma, text, p.patch_size)
        out = framewise.framewise_forward(p.transformer, x, ft, text)
        # and the frames are really modulated differently: another sigma changes the output
        other = framewise.framewise_forward(
            p.transformer, x, frame_timesteps(sigma.flip(0), x.shape, p.patch_size), text
        )
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (other - out).abs().max() > 1e-3


@pytest.mark.parametrize("checkpointing", [False, True])
def test_lora_gradients_match_diffusers(checkpointing):
    p = tiny(layers=3)
    p.add_lora(4)
    with torch.no_grad():  # B is zero at init: make the adapter part of the function
        for name, prm in p.transformer.named_parameters():
            if "lora_B" in name:
                prm.normal_(0, 0.1)
    if checkpointing:
        p.transformer.enable_gradient_checkpointing()
    p.train()
    x, sigma, text = inputs(p, 2, 5, 16, 12)
    params = p.trainable_parameters()
    assert params
    target = torch.randn(reference(p.transformer, x, sigma, text, p.patch_size).shape)

    def grads(fn):
        for q in params:
            q.grad = None
        out = fn()
        ((out - target) ** 2).mean().backward()
        return out.detach(), [q.grad.clone() for q in params]

    ref, g_ref = grads(lambda: reference(p.transformer, x, sigma, text, p.patch_size))
    ft = frame_timesteps(sigma, x.shape, p.patch_size)
    out, g_out = grads(lambda: framewise.framewise_forward(p.transformer, x, ft, text))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert max(float(g.abs().max()) for g in g_ref) > 0


def test_bf16_autocast_matches_diffusers():
    p = tiny()
    x, sigma, text = inputs(p, 2, 5, 16, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = reference(p.transformer, x, sigma, text, p.patch_size).float()
        out = framewise.framewise_forward(
            p.transformer, x, frame_timesteps(sigma, x.shape, p.patch_size), text
        )
    # bf16 matmuls: 8 bits of mantissa, rounded in a different row order for the time embedding
    torch.testing.assert_close(out.float(), ref, rtol=3e-2, atol=3e-2)


def test_policy_velocity_uses_it_and_falls_back(monkeypatch):
    """VideoPolicy.velocity takes the per-frame path when supported and diffusers' forward otherwise:
    the same velocity either way."""
    p = tiny()
    assert framewise.supports(p.transformer)
    C, f, h, w = p.latent_shape(9, 16, 16)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, C, f, h, w, generator=g)
    cond = torch.randn(2, C, 1, h, w, generator=g)
    emb = p.encode_prompts(["maze a", "maze b"])
    sigma = torch.tensor([0.3, 0.8])
    calls = []
    real = framewise.framewise_forward
    monkeypatch.setattr(framewise, "framewise_forward", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        fast = p.velocity(x, sigma, emb, cond)
        assert calls == [1]
        monkeypatch.setattr(framewise, "supports", lambda t: False)
        slow = p.velocity(x, sigma, emb, cond)
    assert calls == [1]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_supports_refuses_what_it_does_not_reimplement():
    from diffusers.models.transformers.transformer_wan import WanTransformer3DModel, WanTransformerBlock

    p = tiny()
    assert framewise.supports(p.transformer)

    class MyBlock(WanTransformerBlock):
        pass

    class MyModel(WanTransformer3DModel):
        pass

    blk = p.transformer.blocks[0]
    p.transformer.blocks[0].__class__ = MyBlock  # a user's own block forward: not ours to rewrite
    assert not framewise.supports(p.transformer)
    blk.__class__ = WanTransformerBlock
    p.transformer.__class__ = MyModel
    assert not framewise.supports(p.transformer)
    p.transformer.__class__ = WanTransformer3DModel
    p.transformer.condition_embedder.image_embedder = torch.nn.Identity()  # I2V's CLIP path
    assert not framewise.supports(p.transformer)
    p.transformer.condition_embedder.image_embedder = None
    assert framewise.supports(p.transformer)
    handle = p.transformer.register_forward_hook(lambda *a: None)  # would not run on our forward
    assert not framewise.supports(p.transformer)
    handle.remove()
    assert framewise.supports(p.transformer)
    assert not framewise.supports(torch.nn.Linear(2, 2))


def test_bad_frame_timesteps_named():
    p = tiny()
    x, sigma, text = inputs(p, 2, 5, 16, 16)
    with pytest.raises(ValueError, match=r"frame_timesteps must be \[B, F\] = \[2, 5\]"):
        framewise.framewise_forward(p.transformer, x, token_timesteps(sigma, x.shape, p.patch_size), text)


def test_token_timesteps_repeat_frame_timesteps():
    sigma = torch.tensor([0.25, 1.0])
    ft = frame_timesteps(sigma, (2, 3, 3, 8, 12), (1, 4, 4))
    tt = token_timesteps(sigma, (2, 3, 3, 8, 12), (1, 4, 4))
    assert ft.shape == (2, 3) and tt.shape == (2, 3 * 2 * 3)
    assert torch.equal(tt, ft.repeat_interleave(6, dim=1))


def test_bench_models_times_both_paths():
    import importlib

    bench = importlib.import_module("vrlvr.bench.bench_models")
    rep = bench.bench_time_path(reps=1, batch=2)
    for kind in ("forward", "forward_base", "forward_backward"):
        r = rep[kind]
        assert r["per_token_s"] > 0 and r["per_frame_s"] > 0 and r["per_frame_over_per_token"] > 0
        assert set(r["gflops_per_s"]) == {"per_token", "per_frame"}
    assert rep["forward_flops"]["per_token"] > rep["forward_flops"]["per_frame"] > 0
    b = rep["modulation_bytes_per_block"]
    assert b["per_token"] == 49 * b["per_frame"]  # 441 tokens over 9 frames
