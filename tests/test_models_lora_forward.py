"""FusedLoraLinear (vrlvr.models.lora_forward): peft's adapted forward with the adapter's product
accumulated into the base GEMM's output.

References: peft's own ``lora.Linear.forward`` and the readable torch expression
``W x + b + s B (A x)``. The fused forward must match both in values and in the gradients of the
adapter and the input, on ordinary and awkward shapes (one row, no rows, 4-d, non-contiguous,
rank 1, no bias), fall back to peft's forward wherever the fused path is not the same function,
survive merge / unload / deepcopy, and give the policy's velocity and a trainer's first PPO ratio
what they were."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import Linear as LoraLinear
from torch import nn

from vrlvr.models.configs import TinyPixelConfig
from vrlvr.models.lora_forward import FusedLoraLinear, fuse_lora_forward
from vrlvr.models.tiny import TinyPixelPolicy


class Net(nn.Module):
    def __init__(self, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out, bias=bias)

    def forward(self, x):
        return self.proj(x)


def adapted(d_in=12, d_out=20, rank=4, bias=True, seed=0, dtype=torch.float32, **lora):
    """A one-layer net with a peft LoRA adapter whose B is not zero (scale alpha / rank = 2.5)."""
    torch.manual_seed(seed)
    net = Net(d_in, d_out, bias).to(dtype)
    cfg = LoraConfig(r=rank, lora_alpha=2.5 * rank, target_modules=["proj"], **lora)
    net = inject_adapter_in_model(cfg, net)
    with torch.no_grad():
        net.proj.lora_B["default"].weight.normal_(0, 0.3)
    return net.to(dtype)


def torch_reference(layer, x):
    """The readable expression: W x + b + s B (A x), in x's dtype."""
    base = layer.get_base_layer()
    W, b = base.weight.to(x.dtype), None if base.bias is None else base.bias.to(x.dtype)
    A, B = (layer.lora_A["default"].weight.to(x.dtype), layer.lora_B["default"].weight.to(x.dtype))
    return nn.functional.linear(x, W, b) + layer.scaling["default"] * (x @ A.t() @ B.t())


# input shapes: ordinary 3-d, one row, no rows, 4-d
SHAPES = [(3, 7, 12), (1, 12), (0, 12), (2, 3, 5, 12)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_match_peft_and_the_torch_reference(shape, bias):
    ref_net = adapted(bias=bias)
    net = copy.deepcopy(ref_net)
    assert fuse_lora_forward(net) == 1 and type(net.proj) is FusedLoraLinear
    assert type(ref_net.proj) is LoraLinear
    x = torch.randn(*shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, ref = net(x), ref_net(x_ref)
    assert out.shape == ref.shape == (*shape[:-1], 20)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out, torch_reference(ref_net.proj, x_ref), rtol=1e-5, atol=1e-5)
    if x.numel():
        assert (out - net.proj.get_base_layer()(x)).abs().max() > 0.1  # the adapter matters here
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    for name in ("lora_A", "lora_B"):
        got = getattr(net.proj, name)["default"].weight.grad
        want = getattr(ref_net.proj, name)["default"].weight.grad
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)  # fp32 sums, another order
    # peft's base weights are frozen: the fused path must not make them trainable
    assert net.proj.get_base_layer().weight.grad is None


def test_a_non_contiguous_input_and_rank_one():
    ref_net = adapted(d_in=8, d_out=6, rank=1)
    net = copy.deepcopy(ref_net)
    fuse_lora_forward(net)
    x = torch.randn(5, 4, 8).transpose(0, 1)  # [4, 5, 8], not contiguous
    assert not x.is_contiguous()
    torch.testing.assert_close(net(x), ref_net(x), rtol=1e-6, atol=1e-6)


def test_bf16_weights_and_input_within_bf16_tolerance():
    ref_net = adapted(dtype=torch.bfloat16)
    net = copy.deepcopy(ref_net)
    fuse_lora_forward(net)
    x = torch.randn(4, 9, 12, dtype=torch.bfloat16)
    with torch.no_grad():
        want = torch_reference(ref_net.proj, x.float())  # fp32 over the same bf16 values
        out = net(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), want, rtol=2e-2, atol=2e-2)


def test_it_falls_back_to_peft_where_the_fused_path_is_another_function():
    """Every case where peft computes something else than W x + b + s B A x runs peft's forward."""
    x = torch.randn(3, 12)

    def check(net, ref_net, x=x, **kwargs):
        calls = []
        handle_fn = LoraLinear.forward

        def spy(self, *a, **k):
            calls.append(1)
            return handle_fn(self, *a, **k)

        LoraLinear.forward = spy
        try:
            out = net(x, **kwargs) if not kwargs else net.proj(x, **kwargs)
        finally:
            LoraLinear.forward = handle_fn
        torch.testing.assert_close(out, ref_net(x) if not kwargs else ref_net.proj(x, **kwargs))
        assert calls, "expected peft's forward"

    ref_net = adapted()
    net = copy.deepcopy(ref_net)
    fuse_lora_forward(net)
    # adapters off
    net.proj.enable_adapters(False)
    ref_net.proj.enable_adapters(False)
    check(net, ref_net)
    net.proj.enable_adapters(True)
    ref_net.proj.enable_adapters(True)
    # autocast (peft's casts are the reference there)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        check(net, ref_net)
    # dropout active in training mode (the same draws on both sides)
    drop_ref = adapted(lora_dropout=0.5).train()
    drop = copy.deepcopy(drop_ref)
    fuse_lora_forward(drop)
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    torch.testing.assert_close(a, drop_ref(x))
    # ... but in eval mode dropout is the identity: the fused path runs
    drop.eval()
    assert drop.proj._plain_adapter(x, (), {}) == "default"
    # DoRA
    dora_ref = adapted(use_dora=True)
    dora = copy.deepcopy(dora_ref)
    fuse_lora_forward(dora)
    assert dora.proj._plain_adapter(x, (), {}) is None
    torch.testing.assert_close(dora(x), dora_ref(x))
    # an adapter bias
    lb = adapted(lora_bias=True)
    fuse_lora_forward(lb)
    assert lb.proj._plain_adapter(x, (), {}) is None
    # an fp32 adapter over a bf16 base (the trainer's bf16 policies): peft casts, so peft runs
    mixed = adapted()
    mixed.proj.get_base_layer().to(torch.bfloat16)
    fuse_lora_forward(mixed)
    assert mixed.proj._plain_adapter(x.bfloat16(), (), {}) is None
    # a mixed batch of adapters (adapter_names=...)
    assert net.proj._plain_adapter(x, (), {"adapter_names": ["default"] * 3}) is None
    # merged into W
    net.proj.merge()
    assert net.proj._plain_adapter(x, (), {}) is None
    torch.testing.assert_close(net(x), ref_net(x), rtol=1e-5, atol=1e-5)
    net.proj.unmerge()
    assert net.proj._plain_adapter(x, (), {}) == "default"


@pytest.mark.filterwarnings("ignore:Already found a `peft_config`")
def test_two_active_adapters_run_peft():
    net = adapted()
    cfg = LoraConfig(r=2, lora_alpha=2, target_modules=["proj"], init_lora_weights=False)
    net = inject_adapter_in_model(cfg, net, adapter_name="second")
    net.proj.set_adapter(["default", "second"])
    ref = copy.deepcopy(net)
    fuse_lora_forward(net)
    x = torch.randn(3, 12)
    assert net.proj._plain_adapter(x, (), {}) is None
    torch.testing.assert_close(net(x), ref(x))


def test_fuse_and_unfuse_change_only_peft_layers():
    net = adapted()
    assert fuse_lora_forward(net) == 1
    assert fuse_lora_forward(net) == 0  # already fused
    assert fuse_lora_forward(net, enable=False) == 1
    assert type(net.proj) is LoraLinear
    assert fuse_lora_forward(Net(4, 4)) == 0  # nothing adapted


def tiny_policy(seed=0, layers=2) -> TinyPixelPolicy:
    torch.manual_seed(seed)
    p = TinyPixelPolicy(
        TinyPixelConfig(num_layers=layers, num_heads=2, head_dim=8, ffn_dim=32, text_dim=16, freq_dim=16)
    )
    p.add_lora(4, alpha=8.0)
    with torch.no_grad():
        for n, w in p.named_parameters():
            if "lora_B" in n:
                w.normal_(0, 0.2)
    return p


def test_policies_get_the_fused_forward_and_keep_their_velocity_and_gradients():
    p = tiny_policy()
    layers = [m for m in p.transformer.modules() if isinstance(m, LoraLinear)]
    assert layers and all(type(m) is FusedLoraLinear for m in layers)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 3, 28, 28, generator=g)
    cond = torch.randn(2, 3, 1, 28, 28, generator=g)
    sigma = torch.rand(2, generator=g)
    pe = p.encode_prompts(["solve", "the maze"])

    def velocity_and_grads():
        p.zero_grad()
        v = p.velocity(x, sigma, pe, cond)
        v.square().mean().backward()
        return v.detach(), [q.grad.clone() for q in p.trainable_parameters()]

    v, grads = velocity_and_grads()
    fuse_lora_forward(p.transformer, enable=False)  # peft's forward: the reference
    v_ref, grads_ref = velocity_and_grads()
    torch.testing.assert_close(v, v_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_merge_save_load_and_deepcopy_keep_working(tmp_path):
    p = tiny_policy()
    q = copy.deepcopy(p)  # the trainer's reference copy
    assert all(type(m) is FusedLoraLinear for m in q.transformer.modules() if isinstance(m, LoraLinear))
    p.save(tmp_path / "ck")
    from vrlvr.models.policy import load_policy

    r = load_policy(tmp_path / "ck")
    assert all(type(m) is FusedLoraLinear for m in r.transformer.modules() if isinstance(m, LoraLinear))
    for a, b in zip(p.lora_state_dict().values(), r.lora_state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(1, 3, 2, 28, 28)
    cond, sigma, pe = x[:, :, :1], torch.full((1,), 0.4), p.encode_prompts(["x"])
    with torch.no_grad():
        before = p.velocity(x, sigma, pe, cond)
        p.merge_lora()
        after = p.velocity(x, sigma, pe, cond)
    assert not any(isinstance(m, LoraLinear) for m in p.transformer.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_bench_lora_forward_reports_both_forwards_and_the_limit(tmp_path):
    import importlib
    import json

    torch.manual_seed(0)
    TinyPixelPolicy(
        TinyPixelConfig(num_layers=1, num_heads=2, head_dim=8, ffn_dim=32, text_dim=16, freq_dim=16)
    ).save(tmp_path / "tiny")
    bench = importlib.import_module("vrlvr.bench.bench_lora_forward")
    out = tmp_path / "r.json"
    rep = bench.main(
        ["--init", str(tmp_path / "tiny"), "--rank", "4", "--batch", "2", "--frames", "3", "--reps", "1",
         "--json", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text()) == rep
    for key in ("forward_s", "forward_backward_s"):
        assert rep[key]["peft"] > 0 and rep[key]["fused"] > 0
    assert rep["max_abs_velocity_diff"] < 1e-5
    lim = rep["limit"]
    # one block of width 16: q, k, v, out of self-attention and q, out of cross-attention on the
    # 2 x 3 x 49 video tokens, cross-attention's k, v on the 2 x L text tokens, the FFN's 16 -> 32 -> 16
    rows, text = 2 * 3 * 49, 2 * rep["setup"]["text_tokens"]
    assert lim["adapter_output_elements"] == rows * 16 * 6 + text * 16 * 2 + rows * (32 + 16)
    assert lim["forward_bytes_saved"] == 16 * lim["adapter_output_elements"]  # four fp32 passes
    assert lim["copy_bandwidth_bytes_per_s"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--batch", "0"])
