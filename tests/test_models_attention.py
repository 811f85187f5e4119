"""vrlvr.models.attention (Wan attention in fewer passes) against diffusers' WanAttnProcessor and
readable torch references: RMSNorm, the rotary embedding, whole self- and cross-attention layers,
values and gradients, on ordinary and awkward shapes; when it does not apply; framewise with it on
and off; the benchmark."""

import json

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, WanRotaryPosEmbed
from torch import nn

from vrlvr.models import attention, framewise
from vrlvr.models.conditioning import frame_timesteps
from vrlvr.models.configs import TinyPixelConfig
from vrlvr.models.tiny import TinyPixelPolicy

TOL = dict(rtol=1e-5, atol=1e-5)  # fp32: an FMA or a reduction order apart


def ref_rms_norm(x, weight, eps):
    """x / sqrt(mean(x^2) + eps) * weight, in float64."""
    y = x.double() / torch.sqrt(x.double().pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.double() if weight is not None else y).float()


def ref_rope(x, cos, sin):
    """diffusers' rotary embedding: x [B, S, H, Dh], cos / sin [1, S, 1, Dh] with each frequency
    repeated for its pair; pair (x1, x2) = (x[2i], x[2i+1]) -> (x1 c - x2 s, x1 s + x2 c)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out


def rope_tables(frames, h, w, head_dim):
    x = torch.zeros(1, 1, frames, h, w)
    return WanRotaryPosEmbed(head_dim, (1, 1, 1), max_seq_len=64)(x)  # ([1, S, 1, Dh], [1, S, 1, Dh])


def layer(dim=32, heads=2, seed=0, cross=False):
    torch.manual_seed(seed)
    a = WanAttention(
        dim,
        heads=heads,
        dim_head=dim // heads,
        eps=1e-6,
        cross_attention_dim_head=dim // heads if cross else None,
        processor=WanAttnProcessor(),
    )
    with torch.no_grad():  # RMSNorm weights start at 1: make them matter
        a.norm_q.weight.uniform_(0.5, 1.5)
        a.norm_k.weight.uniform_(0.5, 1.5)
    return a


# RMSNorm: ordinary, one row, zero rows, width 1, a zero row (eps keeps it finite)
@pytest.mark.parametrize("shape", [(2, 7, 32), (1, 1, 16), (0, 3, 8), (3, 5, 1), (4, 64)])
@pytest.mark.parametrize("affine,eps", [(True, 1e-6), (False, 1e-6), (True, None)])
def test_rms_norm_matches_reference_and_torch(shape, affine, eps):
    torch.manual_seed(0)
    norm = nn.RMSNorm(shape[-1], eps=eps, elementwise_affine=affine)
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(shape) * 3
    if x.numel():
        x.view(-1, shape[-1])[0] = 0  # a zero row: rsqrt(eps), finite
    e = eps if eps is not None else torch.finfo(torch.float32).eps
    out = attention.rms_norm(x, norm)
    torch.testing.assert_close(out, ref_rms_norm(x, norm.weight, e), **TOL)
    torch.testing.assert_close(out, norm(x), **TOL)
    assert torch.isfinite(out).all()


def test_rms_norm_gradients_and_non_contiguous_input():
    torch.manual_seed(0)
    norm = nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    base = torch.randn(16, 3, 5)
    x1 = base.transpose(0, 2).requires_grad_()  # [5, 3, 16], non-contiguous
    x2 = base.transpose(0, 2).detach().clone().requires_grad_()
    g = torch.randn(5, 3, 16)
    out = attention.rms_norm(x1, norm)
    out.backward(g)
    gw1 = norm.weight.grad.clone()
    norm.weight.grad = None
    norm(x2).backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, **TOL)
    torch.testing.assert_close(gw1, norm.weight.grad, **TOL)


def test_rms_norm_names_a_width_mismatch():
    with pytest.raises(ValueError, match="last dim 8"):
        attention.rms_norm(torch.randn(2, 8), nn.RMSNorm(16))


# (frames, h, w, heads, head_dim): ordinary, one token, a width the split gives t/h/w unequal parts
@pytest.mark.parametrize("frames,h,w,heads,head_dim", [(3, 4, 5, 2, 16), (1, 1, 1, 1, 8), (2, 3, 2, 3, 12)])
def test_rope_matches_diffusers_formula(frames, h, w, heads, head_dim):
    cos, sin = rope_tables(frames, h, w, head_dim)
    S = frames * h * w
    x = torch.randn(2, S, heads, head_dim, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    freqs = attention.rope_as_complex((cos, sin))
    assert freqs.shape == (1, S, 1, head_dim // 2) and freqs.dtype == torch.complex64
    out = attention.apply_rope(x, freqs)
    ref = ref_rope(x_ref, cos, sin)
    torch.testing.assert_close(out, ref, **TOL)
    assert out.is_contiguous()
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
    # a non-contiguous input (a transposed view) is rotated the same
    xt = x.detach().transpose(0, 1).contiguous().transpose(0, 1)
    torch.testing.assert_close(attention.apply_rope(xt, freqs), ref.detach(), **TOL)


@pytest.mark.parametrize("B,S,L", [(2, 12, 5), (1, 1, 1), (3, 30, 7)])
def test_self_and_cross_attention_match_diffusers(B, S, L):
    torch.manual_seed(1)
    frames, h, w = {12: (3, 2, 2), 1: (1, 1, 1), 30: (2, 3, 5)}[S]
    sa, ca = layer(seed=2), layer(seed=3, cross=True)
    rot = rope_tables(frames, h, w, 16)
    freqs = attention.rope_as_complex(rot)
    x = torch.randn(B, S, 32, requires_grad=True)
    text = torch.randn(B, L, 32, requires_grad=True)
    assert attention.supports(sa, x) and attention.supports(ca, x)
    out = attention.wan_attention(sa, x, None, freqs) + attention.wan_attention(ca, x, text, None)
    x2, t2 = x.detach().clone().requires_grad_(), text.detach().clone().requires_grad_()
    ref = sa(x2, None, None, rot) + ca(x2, t2, None, None)
    torch.testing.assert_close(out, ref, **TOL)
    g = torch.randn_like(out)
    params = [*sa.parameters(), *ca.parameters()]
    got = torch.autograd.grad(out, [x, text, *params], g)
    want = torch.autograd.grad(ref, [x2, t2, *params], g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_supports_names_what_it_does_not_cover():
    x = torch.randn(1, 4, 32)
    assert attention.supports(layer(), x)
    assert not attention.supports(layer(), x.bfloat16())  # no complex bf16: diffusers' processor
    fused = layer()
    fused.fuse_projections()
    assert not attention.supports(fused, x)
    custom = layer()
    custom.set_processor(type("Custom", (WanAttnProcessor,), {})())
    assert not attention.supports(custom, x)
    backend = layer()
    backend.processor._attention_backend = "flash"
    assert not attention.supports(backend, x)
    hooked = layer()
    hooked.register_forward_hook(lambda *a: None)
    assert not attention.supports(hooked, x)
    i2v = WanAttention(
        32,
        heads=2,
        dim_head=16,
        added_kv_proj_dim=32,
        cross_attention_dim_head=16,
        processor=WanAttnProcessor(),
    )
    assert not attention.supports(i2v, x)


def tiny(seed=0):
    torch.manual_seed(seed)
    p = TinyPixelPolicy(TinyPixelConfig(num_layers=2, num_heads=2, head_dim=16, ffn_dim=48, patch=4))
    with torch.no_grad():
        for b in p.transformer.blocks:
            b.scale_shift_table.normal_(0, 0.5)
            for a in (b.attn1, b.attn2):
                a.norm_q.weight.uniform_(0.5, 1.5)
                a.norm_k.weight.uniform_(0.5, 1.5)
    return p


@pytest.mark.parametrize("lora", [False, True])
def test_framewise_forward_same_with_and_without_fast_attention(lora):
    p = tiny()
    if lora:
        p.add_lora(4)
        with torch.no_grad():
            for n, w in p.named_parameters():
                if "lora_B" in n:
                    w.normal_(0, 0.1)
    tr = p.transformer
    g = torch.Generator().manual_seed(1)
    C, f, h, w = p.latent_shape(5, 20, 12)
    x = torch.randn(2, tr.config.in_channels, f, h, w, generator=g)
    t = frame_timesteps(torch.rand(2, generator=g), x.shape, p.patch_size)
    text = torch.randn(2, 5, tr.config.text_dim, generator=g)
    params = [q for q in tr.parameters() if q.requires_grad]
    outs, grads = [], []
    for fast in (True, False):
        out = framewise.framewise_forward(tr, x, t, text, fast_attention=fast)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), params))
    torch.testing.assert_close(outs[0], outs[1], **TOL)
    for a, b in zip(*grads, strict=True):  # fp32 rounding, relative to each gradient's scale
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_framewise_forward_calls_fast_attention_for_fp32_only(monkeypatch):
    p = tiny()
    tr = p.transformer
    calls = []
    real = attention.wan_attention
    monkeypatch.setattr(attention, "wan_attention", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(1, tr.config.in_channels, 2, 8, 8)
    t = frame_timesteps(torch.rand(1), x.shape, p.patch_size)
    text = torch.randn(1, 3, tr.config.text_dim)
    with torch.no_grad():
        framewise.framewise_forward(tr, x, t, text)
        assert len(calls) == 2 * len(tr.blocks)  # self- and cross-attention of every block
        calls.clear()
        framewise.framewise_forward(tr, x, t, text, fast_attention=False)
        assert not calls
        with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 activations: diffusers' processor
            out = framewise.framewise_forward(tr, x, t, text)
        assert not calls and torch.isfinite(out).all()


def test_bench_attention_reports_both_paths(tmp_path):
    from vrlvr.bench import bench_attention as bench

    p = tiny()
    p.save(tmp_path / "tiny")
    out = tmp_path / "rep.json"
    rep = bench.main(
        ["--init", str(tmp_path / "tiny"), "--batch", "2", "--frames", "3", "--reps", "1", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == rep
    for kind in ("layer_forward_s", "policy_forward_s", "policy_forward_backward_s"):
        assert set(rep[kind]) == {"diffusers", "vrlvr"} and min(rep[kind].values()) > 0
    assert rep["max_abs_diff"] < 1e-4
    lim = rep["limit"]
    assert lim["passes_saved_per_layer"] > 0 and lim["bytes_saved_per_layer"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--batch", "0"])
