"""SFT: the loss goes down, resume continues identically after a kill, held-out puzzles are never
trained on, and configs fail loudly."""

import json

import numpy as np
import pytest
import torch

from vrlvr import tasks
from vrlvr.config import load_config
from vrlvr.models.tiny import TinyPixelConfig, TinyPixelPolicy
from vrlvr.train import sft as S
from vrlvr.train.data import SolutionStream, VideoSpec, eval_puzzles
from vrlvr.train.sft_config import SFTConfig

TINY = [
    "model.tiny.num_layers=2",
    "model.tiny.num_heads=2",
    "model.tiny.head_dim=16",
    "model.tiny.ffn_dim=64",
    "model.tiny.text_dim=16",
    "model.tiny.freq_dim=32",
]


def small_cfg(out, *extra):
    return load_config(
        SFTConfig,
        None,
        [
            f"out_dir={out}",
            "optim.steps=6",
            "optim.batch_size=4",
            "log_every=1",
            "checkpoint_every=3",
            "heldout.n=16",
            "eval.n=4",
            "sampling.steps=2",
            "optim.warmup_steps=2",
            "threads=1",
            *TINY,
            *extra,
        ],
    )


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    maze = tasks.get("maze")
    ps = [maze.generate(s, 7) for s in range(4)]
    videos = np.stack([maze.render(p, maze.solve(p), num_frames=5, cell_px=4) for p in ps])
    prompts = [maze.prompt(p) for p in ps]
    cfg = TinyPixelConfig(
        num_layers=2, num_heads=2, head_dim=16, ffn_dim=64, text_dim=16, max_prompt_bytes=64
    )
    policy = TinyPixelPolicy(cfg)
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=3e-3)

    def fixed_loss():  # same noise and sigmas every time
        return S.flow_matching_loss(policy, videos, prompts, torch.Generator().manual_seed(123))

    with torch.no_grad():
        before = fixed_loss().item()
    for _ in range(10):
        opt.zero_grad()
        fixed_loss().backward()
        opt.step()
    with torch.no_grad():
        after = fixed_loss().item()
    assert after < 0.7 * before, (before, after)


def test_loss_is_rectified_flow_on_generated_frames_only():
    # an oracle that returns the exact velocity (x_t - x0) / sigma, i.e. noise - x0 when
    # x_t = (1 - sigma) x0 + sigma noise, and garbage on frame 0: the loss is zero only if the
    # interpolation, the target and the frame-0 exclusion are all as specified
    from vrlvr.models.tiny import frames_to_pixels

    maze = tasks.get("maze")
    ps = [maze.generate(s, 7) for s in range(3)]
    videos = np.stack([maze.render(p, maze.solve(p), num_frames=5, cell_px=4) for p in ps])
    x0 = frames_to_pixels(videos)
    seen = {}

    class Oracle:
        def encode(self, v):
            return frames_to_pixels(v)

        def encode_prompts(self, prompts):
            return torch.zeros(len(prompts), 1, 1)

        def velocity(self, xt, sigma, emb, cond):
            seen["cond"] = cond
            v = (xt - x0) / sigma.view(-1, 1, 1, 1, 1)
            v[:, :, 0] = 1e3
            return v

    loss = S.flow_matching_loss(Oracle(), videos, ["p"] * 3, torch.Generator().manual_seed(0), shift=3.0)
    assert float(loss) < 1e-8
    assert torch.equal(seen["cond"], x0[:, :, :1])  # the condition is the clean first frame


def test_resume_after_kill_repeats_the_same_losses(tmp_path, monkeypatch):
    full = small_cfg(tmp_path / "full")
    S.train_sft(full, progress=False)

    killed = small_cfg(tmp_path / "killed")
    real, calls = S.flow_matching_loss, [0]

    def dies_in_step_5(*a, **k):
        calls[0] += 1
        if calls[0] == 5:  # after the step-3 checkpoint, mid-run
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(S, "flow_matching_loss", dies_in_step_5)
    with pytest.raises(KeyboardInterrupt):
        S.train_sft(killed, progress=False)
    monkeypatch.setattr(S, "flow_matching_loss", real)
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip() == "step_0000003"
    S.train_sft(killed, resume=True, progress=False)

    def losses(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"]) for r in rows if "loss" in r]

    a, b = losses(tmp_path / "full"), losses(tmp_path / "killed")
    assert [s for s, _ in a] == list(range(1, 7))
    assert a == b
    for name in ("policy.json", "model.safetensors", "heldout.json"):
        assert (tmp_path / "killed" / "final" / name).is_file()


def test_training_stream_rejects_every_heldout_puzzle():
    maze = tasks.get("maze")
    held, stats = eval_puzzles(maze, [7], 40, 100000)
    keys = {p.key for p in held}
    assert len(keys) == 40  # distinct by construction
    stream = SolutionStream(maze, [7], keys, seed=0, video=VideoSpec(num_frames=3, cell_px=4))
    seen = []
    for _ in range(10):
        _, _, seeds = stream.next_batch(16)
        seen += [maze.canonical_key(maze.generate(s, 7)) for s in seeds]
    assert stream.rejected > 0  # 7x7 mazes repeat: the filter is doing real work
    assert not keys & set(seen)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="optim.lrr"):
        load_config(SFTConfig, None, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="model.path"):
        load_config(SFTConfig, None, ["model.kind=wan"])
    with pytest.raises(ValueError, match="eval.n"):
        load_config(SFTConfig, None, ["eval.n=500"])
    with pytest.raises(FileNotFoundError, match="nothere.yaml"):
        load_config(SFTConfig, tmp_path / "nothere.yaml")


@pytest.mark.parametrize("name", ["maze", "flowfree", "sokoban"])
def test_shipped_configs_load(name):
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "configs" / f"{name}-tiny-sft.yaml"
    assert path.read_text().startswith(f"# vrlvr sft --config configs/{name}-tiny-sft.yaml")
    cfg = load_config(SFTConfig, path)
    assert cfg.data.task == name and cfg.model.kind == "tiny-pixel"


def test_folder_stream_reads_a_vrlvr_data_folder(tmp_path):
    from vrlvr.cli import main
    from vrlvr.train.data import FolderStream

    out = tmp_path / "d"
    rc = main(
        [
            "data",
            "--task",
            "maze",
            "--n",
            "12",
            "--sizes",
            "7",
            "--cell-px",
            "4",
            "--num-frames",
            "5",
            "--no-video",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    recs = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    held = {recs[0]["canonical_key"]}
    maze = tasks.get("maze")
    stream = FolderStream(out, maze, [7], held, seed=0, video=VideoSpec(num_frames=5, cell_px=4))
    videos, prompts, seeds = stream.next_batch(30)  # more than an epoch: cycles
    assert videos.shape == (30, 5, 28, 28, 3) and stream.rejected >= 1
    keys = {r["seed"]: r["canonical_key"] for r in recs}
    assert held.isdisjoint(keys[s] for s in seeds)
    r = next(x for x in recs if x["seed"] == seeds[0])
    p = maze.from_text((out / r["puzzle"]).read_text())
    assert np.array_equal(videos[0], maze.render(p, maze.solve(p), num_frames=5, cell_px=4))
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        FolderStream(tmp_path, maze, [7], set(), 0, VideoSpec(5))


def test_wan_lora_sft_end_to_end(tmp_path):
    from vrlvr.models.policy import load_policy
    from vrlvr.models.wan import LORA_WEIGHTS, build_tiny_wan_folder

    folder = build_tiny_wan_folder(tmp_path / "wan")
    cfg = load_config(
        SFTConfig,
        None,
        [
            f"out_dir={tmp_path / 'run'}",
            "model.kind=wan",
            f"model.path={folder}",
            "model.lora_rank=4",
            "model.max_sequence_length=16",
            "data.cell_px=null",
            "data.height=32",
            "data.width=32",
            "data.num_frames=5",
            "optim.steps=2",
            "optim.batch_size=2",
            "heldout.n=4",
            "eval.n=2",
            "sampling.steps=2",
            "threads=1",
        ],
    )
    result = S.train_sft(cfg, progress=False)
    final = tmp_path / "run" / "final"
    assert (final / LORA_WEIGHTS).is_file() and not (final / "transformer").exists()
    assert result["eval"]["n"] == 2 and 0.0 <= result["eval"]["mean_reward"] <= 1.0
    policy = load_policy(final)
    assert policy.lora["rank"] == 4 and policy.base == str(folder.resolve())


def test_checkpoint_killed_mid_write_leaves_the_previous_one(tmp_path, monkeypatch):
    from vrlvr.train import checkpoint as C

    policy = TinyPixelPolicy(TinyPixelConfig(num_layers=1, num_heads=1, head_dim=8, ffn_dim=8, text_dim=8))
    gen = torch.Generator().manual_seed(0)
    state = {"optimizer": {}, "scheduler": {}, "data": {"position": 3}, "rng": C.rng_state(gen)}
    C.save_checkpoint(tmp_path, 1, policy, state, {}, None)

    def killed(*a, **k):  # the process dies while writing step 2's train state
        raise KeyboardInterrupt

    monkeypatch.setattr(C.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        C.save_checkpoint(tmp_path, 2, policy, state, {}, None)
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    assert not (root / "step_0000002").exists()  # only a hidden temporary folder, never a partial step
    assert C.latest_checkpoint(tmp_path) == root / "step_0000001"
    assert C.load_train_state(C.latest_checkpoint(tmp_path))["data"] == {"position": 3}
    C.save_checkpoint(tmp_path, 2, policy, state, {}, None, keep=1)  # the next save cleans up
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_0000002"]
    (root / "latest").unlink()  # a lost pointer falls back to the newest complete checkpoint
    assert C.latest_checkpoint(tmp_path) == root / "step_0000002"
    with pytest.raises(ValueError, match="keep_checkpoints"):
        C.save_checkpoint(tmp_path, 3, policy, state, {}, None, keep=0)


def test_starting_from_a_checkpoint_keeps_its_heldout_set(tmp_path):
    # maze-tiny trained on every 7x7 maze outside its 200 held-out ones: a run starting from it must not
    # hold out (and later score) puzzles it trained on
    cfg = small_cfg(tmp_path / "run", "model.path=maze-tiny", "heldout.n=260", "optim.steps=1")
    with pytest.raises(ValueError, match="may have been trained on"):
        S.train_sft(cfg, progress=False)
    same = small_cfg(tmp_path / "ok", "model.path=maze-tiny", "heldout.n=200", "optim.steps=1", "eval.n=2")
    assert S.train_sft(same, progress=False)["step"] == 1  # its own held-out settings are fine


def test_a_smaller_eval_set_is_a_per_size_prefix_of_the_heldout_set():
    # train_sft takes its periodic eval set as each size's prefix of the held-out set, not a new draw
    from vrlvr.train.data import size_quotas

    maze = tasks.get("maze")
    held, _ = eval_puzzles(maze, [7, 9], 21, 100000)
    small, _ = eval_puzzles(maze, [7, 9], 7, 100000)
    prefix = [p for s, k in size_quotas([7, 9], 7).items() for p in [q for q in held if q.size == s][:k]]
    assert [p.key for p in small] == [p.key for p in prefix] and len(small) == 7


def _tiny_policy(seed: int = 0, layers: int = 3) -> TinyPixelPolicy:
    torch.manual_seed(seed)
    cfg = TinyPixelConfig(
        num_layers=layers, num_heads=2, head_dim=16, ffn_dim=64, text_dim=16, freq_dim=32, max_prompt_bytes=64
    )
    policy = TinyPixelPolicy(cfg)
    with torch.no_grad():  # random non-zero weights everywhere (the output head is zero-initialised)
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy


@pytest.mark.parametrize("layers,to", [(3, 6), (3, 4), (2, 7)])
def test_deepen_keeps_the_function_and_spreads_the_new_blocks(layers, to):
    from vrlvr.models.tiny import deepen

    policy = _tiny_policy(layers=layers).eval()
    grown = deepen(policy, to).eval()
    assert grown.config.num_layers == to and len(grown.transformer.blocks) == to
    # the old blocks keep their order; a new block is a copy of the block before it, outputs zeroed
    old_ids, k = [], 0
    for block in grown.transformer.blocks:
        out = block.ffn.net[2].weight
        if out.abs().sum() == 0:
            assert block.attn1.to_out[0].weight.abs().sum() == 0
            assert block.attn2.to_out[0].bias.abs().sum() == 0
            before = policy.transformer.blocks[old_ids[-1]]  # the old block it follows
            assert torch.equal(block.attn1.to_q.weight, before.attn1.to_q.weight)
        else:
            assert torch.equal(out, policy.transformer.blocks[k].ffn.net[2].weight)
            old_ids.append(k)
            k += 1
    assert old_ids == list(range(layers))
    x = torch.randn(2, 3, 5, 12, 12)
    cond = torch.randn(2, 3, 1, 12, 12)
    sigma = torch.tensor([0.9, 0.2])
    prompts = ["maze 3", "maze 3 again"]
    with torch.no_grad():
        v0 = policy.velocity(x, sigma, policy.encode_prompts(prompts), cond)
        v1 = grown.velocity(x, sigma, grown.encode_prompts(prompts), cond)
    assert torch.equal(v0, v1)  # identity blocks add exact zeros
    # and the new blocks learn: their zeroed projections get a gradient on the first backward
    grown.train()
    v = grown.velocity(x, sigma, grown.encode_prompts(prompts), cond)
    (v**2).mean().backward()
    new = [b for b in grown.transformer.blocks if b.ffn.net[2].weight.abs().sum() == 0]
    assert new and all(b.ffn.net[2].weight.grad.abs().sum() > 0 for b in new)


def test_deepen_refuses_what_it_cannot_grow():
    from vrlvr.models.tiny import deepen

    policy = _tiny_policy(layers=3)
    with pytest.raises(ValueError, match="must exceed"):
        deepen(policy, 3)
    policy.add_lora(2)
    with pytest.raises(ValueError, match="LoRA"):
        deepen(policy, 5)
    # a checkpoint with weights the grown model has no place for is refused, not silently trimmed
    odd = _tiny_policy(layers=3)
    odd.register_buffer("stray_scale", torch.ones(1))
    with pytest.raises(RuntimeError, match="unexpected \\['stray_scale'\\]"):
        deepen(odd, 5)
    with pytest.raises(ValueError, match="model.deepen_to"):
        load_config(SFTConfig, None, ["model.deepen_to=8"])  # nothing to grow
    with pytest.raises(ValueError, match="model.deepen_to"):
        load_config(SFTConfig, None, ["model.deepen_to=-1", "model.path=maze-tiny"])


def test_sft_grows_a_checkpoint_into_a_deeper_run(tmp_path):
    first = small_cfg(tmp_path / "a", "optim.steps=2")
    S.train_sft(first, progress=False)
    grown = small_cfg(
        tmp_path / "b", f"model.path={tmp_path / 'a' / 'final'}", "model.deepen_to=4", "optim.steps=3"
    )
    assert S.train_sft(grown, progress=False)["step"] == 3
    meta = json.loads((tmp_path / "b" / "final" / "policy.json").read_text())
    assert meta["config"]["num_layers"] == 4
    from vrlvr.models import load_policy

    assert len(load_policy(tmp_path / "b" / "final").transformer.blocks) == 4
