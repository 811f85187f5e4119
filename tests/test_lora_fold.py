"""FoldedLoRA (vrlvr.models.lora_fold): inference with W + s B A in place of the adapted W x + s B A x.

The reference is the adapted forward peft runs (three matmuls per projection); the folded one must
compute the same velocity to fp32 rounding, put the base weights back bit for bit, refuse to fold
where folding would change the function (bf16 weights or autocast, DoRA, adapters off), and the
samplers that use it (generate_videos, the rollout's Euler steps) must keep their outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlvr.models.configs import TinyPixelConfig
from vrlvr.models.lora_fold import FoldedLoRA
from vrlvr.models.sampling import generate_videos, sample_latents
from vrlvr.models.schedule import flow_sigmas
from vrlvr.models.tiny import TinyPixelPolicy

TINY = TinyPixelConfig(num_layers=2, num_heads=2, head_dim=8, ffn_dim=32, text_dim=16, freq_dim=16)


def adapted_policy(seed: int = 0, rank: int = 4) -> TinyPixelPolicy:
    """A random tiny policy with a LoRA adapter whose B is not zero (a fresh adapter is, and would
    fold to W exactly: nothing to test)."""
    torch.manual_seed(seed)
    p = TinyPixelPolicy(TINY)
    p.add_lora(rank, alpha=2.0 * rank)  # scale 2: the fold must carry the scaling
    with torch.no_grad():
        for n, w in p.named_parameters():
            if "lora_B" in n:
                w.normal_(0, 0.2)
    return p.eval()


def inputs(B: int = 3, f: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, f, 28, 28, generator=g)
    cond = torch.randn(B, 3, 1, 28, 28, generator=g)
    sigma = torch.rand(B, generator=g)
    return x, sigma, cond


def velocity(p, x, sigma, cond, prompts=None):
    pe = p.encode_prompts(prompts or ["maze 7x7"] * x.shape[0])
    return p.velocity(x, sigma, pe, cond)


@torch.no_grad()
def test_folded_velocity_equals_the_adapted_one_and_differs_from_the_base():
    p = adapted_policy()
    x, sigma, cond = inputs()
    adapted = velocity(p, x, sigma, cond)
    with p.adapters_disabled():
        base = velocity(p, x, sigma, cond)
    fold = p.folded_lora()
    assert fold.active, fold.reason
    with fold:
        folded = velocity(p, x, sigma, cond)
    assert (adapted - base).abs().max() > 1e-2  # the adapter matters, so equality below means something
    torch.testing.assert_close(folded, adapted, rtol=1e-5, atol=1e-5)  # fp32 reassociation only


@torch.no_grad()
def test_leaving_the_fold_restores_the_same_weight_tensors_bit_for_bit():
    p = adapted_policy()
    x, sigma, cond = inputs()
    before = {k: v.clone() for k, v in p.state_dict().items()}
    ids = {n: id(w) for n, w in p.named_parameters()}
    adapted = velocity(p, x, sigma, cond)
    fold = p.folded_lora()
    for _ in range(20):  # a rollout enters it once per Euler step
        with fold:
            velocity(p, x, sigma, cond)
    assert {n: id(w) for n, w in p.named_parameters()} == ids
    after = p.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(velocity(p, x, sigma, cond), adapted)  # adapters are back on


@torch.no_grad()
def test_an_exception_inside_the_fold_still_restores_the_policy():
    p = adapted_policy()
    x, sigma, cond = inputs()
    adapted = velocity(p, x, sigma, cond)
    with pytest.raises(KeyError), p.folded_lora():
        raise KeyError("boom")
    assert torch.equal(velocity(p, x, sigma, cond), adapted)


def test_the_fold_refuses_to_run_with_gradients_on():
    p = adapted_policy()
    with pytest.raises(RuntimeError, match="no_grad"), p.folded_lora():
        pass


@torch.no_grad()
def test_it_does_not_fold_where_folding_would_change_the_function():
    # no adapter at all
    torch.manual_seed(0)
    bare = TinyPixelPolicy(TINY)
    assert not bare.folded_lora().active and "no LoRA" in bare.folded_lora().reason
    # adapters switched off: the caller asked for the base policy
    p = adapted_policy()
    with p.adapters_disabled():
        assert "off" in p.folded_lora().reason
    # matmuls under a bf16 autocast would round s B A into W's mantissa
    p.autocast_dtype = torch.bfloat16
    assert "bfloat16" in p.folded_lora().reason
    p.autocast_dtype = None
    # bf16 base weights: same
    for _, m in p.transformer.named_modules():
        if hasattr(m, "base_layer"):
            m.base_layer.to(torch.bfloat16)
    fold = p.folded_lora()
    assert not fold.active and "float32" in fold.reason
    with fold:  # a no-op, not an error: the adapted forward runs
        pass


@pytest.mark.parametrize(
    "options, reason",
    [({"use_dora": True}, "DoRA"), ({"lora_bias": True}, "bias"), ({"lora_dropout": 0.1}, "dropout")],
)
@torch.no_grad()
def test_peft_adapters_that_do_not_fold_into_w_are_left_unfolded(options, reason):
    from peft import LoraConfig

    torch.manual_seed(0)
    p = TinyPixelPolicy(TINY)
    p.transformer.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q"], **options))
    assert reason in FoldedLoRA(p.transformer.train()).reason
    if "lora_dropout" in options:
        assert FoldedLoRA(p.transformer.eval()).active  # eval: dropout is the identity


@torch.no_grad()
def test_generate_videos_with_an_adapter_matches_the_adapted_sampler():
    p = adapted_policy(seed=3)
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, size=(2, 28, 28, 3), dtype=np.uint8)
    prompts = ["maze 7x7", "maze 7x7 again"]
    got = generate_videos(p, first, prompts, num_frames=3, num_steps=4, seed=5)
    # the adapted reference: the same loop without the fold
    cond = p.encode_condition(first)
    lat = sample_latents(
        p, cond, p.encode_prompts(prompts), 3, flow_sigmas(4, 1.0), torch.Generator().manual_seed(5)
    )
    ref = p.decode(lat)
    ref[:, 0] = first
    # uint8 after rounding: a fp32 reassociation may flip a value sitting on a .5 boundary by 1
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert (got != ref).mean() < 1e-3


@torch.no_grad()
def test_the_wan_policy_folds_too(tmp_path):
    from vrlvr.models.policy import load_policy
    from vrlvr.models.wan import build_tiny_wan_folder

    p = load_policy(build_tiny_wan_folder(tmp_path / "wan")).eval()
    p.add_lora(2)
    for n, w in p.named_parameters():
        if "lora_B" in n:
            w.normal_(0, 0.2)
    C, f, h, w_ = p.latent_shape(5, 32, 32)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, C, f, h, w_, generator=g)
    cond = torch.randn(2, C, 1, h, w_, generator=g)
    sigma = torch.tensor([0.3, 0.8])
    adapted = velocity(p, x, sigma, cond, ["a", "bb"])
    fold = p.folded_lora()
    assert fold.active, fold.reason
    with fold:
        folded = velocity(p, x, sigma, cond, ["a", "bb"])
    torch.testing.assert_close(folded, adapted, rtol=1e-5, atol=1e-5)


def test_bench_lora_fold_reports_both_forwards(tmp_path):
    import importlib
    import json

    torch.manual_seed(0)
    TinyPixelPolicy(TINY).save(tmp_path / "tiny")
    bench = importlib.import_module("vrlvr.bench.bench_lora_fold")
    out = tmp_path / "r.json"
    rep = bench.main(
        ["--init", str(tmp_path / "tiny"), "--rank", "4", "--batch", "2", "--frames", "3", "--reps", "1",
         "--json", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text()) == rep
    assert rep["setup"]["adapted_forward"].startswith("fused")
    assert rep["adapted_forward_s"] > 0 and rep["folded_forward_s"] > 0 and rep["speedup"] > 0
    assert rep["max_abs_velocity_diff"] < 1e-4
    f = rep["flops"]
    assert f["adapted_forward"] > f["folded_forward"] > 0 and 0 < f["adapter_share_of_adapted"] < 1
    rep = bench.main(
        ["--init", str(tmp_path / "tiny"), "--rank", "4", "--batch", "2", "--frames", "3", "--reps", "1",
         "--peft"]
    )  # fmt: skip
    assert rep["setup"]["adapted_forward"] == "peft" and rep["max_abs_velocity_diff"] < 1e-4
    with pytest.raises(SystemExit):
        bench.main(["--batch", "0"])


@torch.no_grad()
def test_generate_videos_folds_every_step_but_the_sde_windows():
    """The SDE window's steps run adapted, as in the trainer's rollout (same videos bit for bit);
    the Euler steps run folded."""
    from vrlvr.models.sampling import SdeWindow

    p = adapted_policy()
    entered = []
    fold = p.folded_lora()

    class Spy:
        def __enter__(self):
            entered.append(len(entered))
            return fold.__enter__()

        def __exit__(self, *exc):
            return fold.__exit__(*exc)

    p.folded_lora = lambda: Spy()
    first = np.zeros((1, 28, 28, 3), dtype=np.uint8)
    generate_videos(p, first, ["maze"], num_frames=3, num_steps=4, seed=0)
    assert len(entered) == 4
    entered.clear()
    generate_videos(p, first, ["maze"], num_frames=3, num_steps=4, seed=0, sde=SdeWindow(1, 3))
    assert len(entered) == 2  # steps 0 and 3
