"""The "wan" backbone: a tiny random Wan pipeline saved with save_pretrained and loaded offline
through the code path a real checkpoint takes; LoRA in the diffusers format."""

import numpy as np
import pytest
import torch

from vrlvr.models.policy import load_policy
from vrlvr.models.sampling import generate_videos
from vrlvr.models.wan import LORA_WEIGHTS, WanPolicy, build_tiny_wan_folder


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    return build_tiny_wan_folder(tmp_path_factory.mktemp("wan") / "tiny-wan")


@pytest.fixture(scope="module")
def policy(wan_folder):
    return WanPolicy.from_folder(wan_folder, max_sequence_length=24)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails (HF_HUB_OFFLINE is read at import time, so setting it
    here would prove nothing)."""
    import socket

    def refuse(*a, **k):
        raise AssertionError("network access at run time")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_folder_loads_offline_as_a_checkpoint(wan_folder, no_network):
    p = load_policy(wan_folder)  # a bare diffusers folder is a valid --checkpoint
    assert isinstance(p, WanPolicy) and p.latent_shape(9, 32, 32) == (4, 3, 4, 4)
    with pytest.raises(ValueError, match="4k \\+ 1"):
        p.latent_shape(8, 32, 32)
    with pytest.raises(FileNotFoundError, match="not a diffusers-format Wan folder"):
        WanPolicy.from_folder(wan_folder / "transformer")


def test_condition_is_first_latent_frame_and_generation_keeps_frame0(policy):
    frames = np.random.default_rng(0).integers(0, 256, (2, 9, 32, 32, 3), dtype=np.uint8)
    z = policy.encode(frames)
    assert z.shape == (2, 4, 3, 4, 4)
    assert torch.allclose(policy.encode_condition(frames[:, 0]), z[:, :, :1], atol=1e-5)  # causal VAE
    vids = generate_videos(policy, frames[:, 0], ["go", "stop"], 9, num_steps=2, shift=3.0)
    assert vids.shape == (2, 9, 32, 32, 3) and np.array_equal(vids[:, 0], frames[:, 0])


def test_prompt_embeddings_cached_and_padded(policy):
    calls = []
    h = policy.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        policy._prompt_cache.clear()
        e = policy.encode_prompts(["abc", "abcdef", "abc"])
        policy.encode_prompts(["abcdef"])
    finally:
        h.remove()
    assert len(calls) == 1  # one encoder call for the two distinct prompts, none afterwards
    assert e.shape == (3, 24, 32)
    assert torch.equal(e[0], e[2])
    assert torch.all(e[0, 4:] == 0) and torch.any(e[0, 3] != 0)  # 3 bytes + </s>, then zeros


def test_lora_trains_only_adapters_and_roundtrips(wan_folder, tmp_path, no_network):
    from vrlvr.train.sft import flow_matching_loss

    p = WanPolicy.from_folder(wan_folder, max_sequence_length=24)
    p.train()
    assert p.transformer.training and not p.text_encoder.training and not p.vae.training
    x, cond = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 4, 1, 4, 4)
    with torch.no_grad():
        base = p.velocity(x, torch.tensor([0.4]), p.encode_prompts(["a"]), cond)
    p.add_lora(rank=4, alpha=8)  # alpha != rank: the saved file must carry the scaling
    params = p.trainable_parameters()
    names = {n for n, q in p.named_parameters() if q.requires_grad}
    assert params and all("lora_" in n for n in names)
    with torch.no_grad():
        for q in params:
            q.add_(0.05 * torch.randn_like(q))
    frames = np.random.default_rng(1).integers(0, 256, (2, 5, 32, 32, 3), dtype=np.uint8)
    loss = flow_matching_loss(p, frames, ["a", "b"], torch.Generator().manual_seed(0))
    loss.backward()
    assert all(q.grad is not None for q in params)
    p.save(tmp_path / "lora")
    assert (tmp_path / "lora" / LORA_WEIGHTS).is_file()
    q = load_policy(tmp_path / "lora")
    with torch.no_grad():
        a = p.velocity(x, torch.tensor([0.4]), p.encode_prompts(["a"]), cond)
        b = q.velocity(x, torch.tensor([0.4]), q.encode_prompts(["a"]), cond)
        with q.adapters_disabled():  # GRPO's reference policy
            ref = q.velocity(x, torch.tensor([0.4]), q.encode_prompts(["a"]), cond)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(ref, base, atol=1e-6) and not torch.allclose(a, base, atol=1e-4)
    # the adapter file is a diffusers LoRA: a WanPipeline loads it with load_lora_weights
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(wan_folder, local_files_only=True)
    pipe.load_lora_weights(str(tmp_path / "lora"), weight_name=LORA_WEIGHTS)
    assert any("lora_" in n for n, _ in pipe.transformer.named_parameters())
    # ... and computes what the trained policy computes (same adapter values and alpha / rank scaling)
    t, emb = torch.full((1, 2 * 2 * 2), 400.0), torch.randn(1, 24, 32)
    with torch.no_grad():
        ours = p.transformer(x, t, emb, return_dict=False)[0]
        theirs = pipe.transformer(x, t, emb, return_dict=False)[0]
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_full_finetune_save_and_load(wan_folder, tmp_path):
    p = WanPolicy.from_folder(wan_folder, max_sequence_length=24)
    with torch.no_grad():
        p.transformer.proj_out.bias.add_(1.0)
    p.save(tmp_path / "full")
    q = load_policy(tmp_path / "full")
    assert torch.equal(q.transformer.proj_out.bias, p.transformer.proj_out.bias)
