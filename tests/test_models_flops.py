"""The analytic Wan FLOP count agrees with torch's FLOP counter on a small transformer."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from vrlvr.models.flops import wan_forward_flops

#: a small WanTransformer3DModel config both counts are checked on
SMALL = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    text_dim=24,
    freq_dim=32,
    ffn_dim=48,
    num_layers=2,
)


def test_flops_match_torch_counter():
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel(**SMALL).eval()
    x = torch.randn(1, 4, 3, 8, 8)
    n = 3 * 4 * 4
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.full((1, n), 500.0), torch.randn(1, 10, 24))
    ours = wan_forward_flops(model.config, (4, 3, 8, 8), text_len=10)
    assert ours["tokens"] == n
    # torch's counter sees every matmul but the attention scores (diffusers' attention dispatch)
    assert ours["forward"] - ours["attention_scores"] == counter.get_total_flops()
    assert ours["attention_scores"] == 2 * (4 * n * n * 32 + 4 * n * 10 * 32)


def test_framewise_flops_match_torch_counter():
    """vrlvr's per-frame time path (vrlvr.models.framewise) embeds f / p_t timesteps, not N."""
    import pytest
    from diffusers import WanTransformer3DModel

    from vrlvr.models.framewise import framewise_forward

    model = WanTransformer3DModel(**SMALL).eval()
    x = torch.randn(2, 4, 3, 8, 8)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        framewise_forward(model, x, torch.full((2, 3), 500.0), torch.randn(2, 10, 24))
    ours = wan_forward_flops(model.config, (4, 3, 8, 8), text_len=10, timesteps="frame")
    per_token = wan_forward_flops(model.config, (4, 3, 8, 8), text_len=10)
    assert 2 * (ours["forward"] - ours["attention_scores"]) == counter.get_total_flops()  # batch of 2
    assert per_token["time_embedding"] == 16 * ours["time_embedding"]  # 48 tokens, 3 frames
    with pytest.raises(ValueError, match="timesteps must be"):
        wan_forward_flops(model.config, (4, 3, 8, 8), text_len=10, timesteps="tokens")
