"""Every shipped experiment config loads, validates, and starts with the command that runs it."""

import json
from pathlib import Path

import pytest

from vrlvr.config import load_config
from vrlvr.train.grpo_config import GRPOConfig
from vrlvr.train.sft_config import SFTConfig

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    for t in ("maze", "flowfree", "sokoban"):
        assert {f"{t}-tiny.yaml", f"{t}-tiny-sft.yaml", f"{t}-wan22-5b.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_names_its_command(path):
    first = path.read_text().splitlines()[0]
    sft = path.name.endswith("-sft.yaml")
    cmd = "vrlvr sft --config" if sft else "vrlvr-train --config"
    assert first.startswith("# ") and cmd in first and f"configs/{path.name}" in first, first
    cfg = load_config(SFTConfig if sft else GRPOConfig, path)
    if not sft:
        start, end = cfg.window()
        assert 0 <= start < end <= cfg.sampling.steps


@pytest.mark.parametrize("task", ["maze", "flowfree", "sokoban"])
def test_tiny_configs_match_the_shipped_checkpoint(task):
    """configs/<task>-tiny-sft.yaml made the shipped <task>-tiny, and configs/<task>-tiny.yaml starts
    RL from it: all three agree on the puzzles (task, sizes, generator options) and the video."""
    from vrlvr.models.policy import resolve_checkpoint

    folder = resolve_checkpoint(f"{task}-tiny")
    shipped = json.loads((folder / "policy.json").read_text())["data"]
    held = json.loads((folder / "heldout.json").read_text())
    sft = load_config(SFTConfig, CONFIGS[0].parent / f"{task}-tiny-sft.yaml")
    rl = load_config(GRPOConfig, CONFIGS[0].parent / f"{task}-tiny.yaml")
    # RL starts from <task>-tiny or from its 8-block twin (checked against it below)
    assert rl.model.init in (f"{task}-tiny", f"{task}-deep8")
    for d in (sft.data, rl.data):
        assert (d.sizes, d.num_frames, d.cell_px) == (
            shipped["sizes"],
            shipped["num_frames"],
            shipped["cell_px"],
        )
        assert dict(d.options) == dict(shipped.get("options") or {}) == dict(held.get("options") or {})
    assert (rl.heldout.seed, rl.heldout.n) == (held["seed"], held["n"])


@pytest.mark.parametrize("task", ["maze", "flowfree", "sokoban"])
def test_deep8_checkpoints_start_the_tiny_configs(task):
    """The shipped 8-block starts (`model.init=<task>-deep8`) have configs/<task>-tiny.yaml's puzzles
    (generator options included), video and held-out set, and 8 blocks where <task>-tiny has 4."""
    from vrlvr.models.policy import resolve_checkpoint

    deep, tiny = (
        json.loads((resolve_checkpoint(n) / "policy.json").read_text())
        for n in (f"{task}-deep8", f"{task}-tiny")
    )
    held = json.loads((resolve_checkpoint(f"{task}-deep8") / "heldout.json").read_text())
    rl = load_config(GRPOConfig, CONFIGS[0].parent / f"{task}-tiny.yaml", [f"model.init={task}-deep8"])
    d = rl.data
    assert deep["task"] == task and (d.sizes, d.num_frames, d.cell_px) == (
        deep["data"]["sizes"],
        deep["data"]["num_frames"],
        deep["data"]["cell_px"],
    )
    assert dict(d.options) == dict(deep["data"].get("options") or {})
    assert (rl.heldout.seed, rl.heldout.n) == (held["seed"], held["n"])
    assert held == json.loads((resolve_checkpoint(f"{task}-tiny") / "heldout.json").read_text())
    assert (deep["config"]["num_layers"], tiny["config"]["num_layers"]) == (8, 4)
    assert {k: v for k, v in deep["config"].items() if k != "num_layers"} == {
        k: v for k, v in tiny["config"].items() if k != "num_layers"
    }


def test_maze_deep12_config_starts_from_the_12_block_checkpoint():
    """configs/maze-deep12.yaml is configs/maze-tiny.yaml's puzzles, video, held-out set and schedule
    with the anchored awm loss from the shipped 12-block maze-deep12 (grown from maze-deep8), run to
    the end of its cosine decay (no max_minutes cut)."""
    from vrlvr.models.policy import resolve_checkpoint

    folder = CONFIGS[0].parent
    deep = load_config(GRPOConfig, folder / "maze-deep12.yaml")
    tiny = load_config(GRPOConfig, folder / "maze-tiny.yaml")
    policy = json.loads((resolve_checkpoint("maze-deep12") / "policy.json").read_text())
    held = json.loads((resolve_checkpoint("maze-deep12") / "heldout.json").read_text())
    recipe = (deep.model.init, deep.grpo.loss, deep.grpo.beta, deep.max_minutes)
    assert recipe == ("maze-deep12", "awm", 5.0, 0)
    assert policy["task"] == "maze" and policy["config"]["num_layers"] == 12
    assert (deep.data.sizes, deep.data.num_frames, deep.data.cell_px) == (
        policy["data"]["sizes"],
        policy["data"]["num_frames"],
        policy["data"]["cell_px"],
    )
    assert held == json.loads((resolve_checkpoint("maze-tiny") / "heldout.json").read_text())
    assert (deep.heldout.seed, deep.heldout.n) == (held["seed"], held["n"])
    # everything else is table 1's maze recipe
    for section in ("data", "optim", "sampling", "reward", "lora"):
        assert getattr(deep, section) == getattr(tiny, section), section
    same = ("prompts_per_step", "group_size", "sde_window", "clip_range", "adv_clip", "inner_epochs")
    for key in same:
        assert getattr(deep.grpo, key) == getattr(tiny.grpo, key), key


@pytest.mark.slow
@pytest.mark.parametrize("task", ["flowfree", "sokoban"])
def test_tiny_configs_train_as_shipped(task, tmp_path):
    """configs/<task>-tiny.yaml trains end to end from its shipped start with its own loss, KL weight
    and reward (only the sizes cut down, as scripts/reproduce.py --quick does): the flowfree and
    sokoban recipes, awm anchored by beta 5 from the 8-block checkpoints (maze's ratio recipe runs in
    tests/test_reproduce.py's quick reproduction)."""
    import math

    from reproduction.settings import QUICK  # scripts/reproduction/ (tests/conftest.py puts it on the path)

    from vrlvr.train.grpo import train_grpo

    # the smoke overrides of scripts/reproduce.py --quick (2 updates, groups of 2, 4 sampling steps)
    quick = [*QUICK, f"out_dir={tmp_path / 'run'}", "threads=1", "sample_every=0"]
    cfg = load_config(GRPOConfig, CONFIGS[0].parent / f"{task}-tiny.yaml", quick)
    summary = train_grpo(cfg, progress=False)
    assert summary["step"] == 2
    assert (tmp_path / "run" / "final" / "pytorch_lora_weights.safetensors").is_file()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_time_s" in r]
    assert len(steps) == 2
    # a step either updated (a finite loss) or had no group with reward variance (None: no update)
    assert all(math.isfinite(r["loss"]) if r["contributing"] else r["loss"] is None for r in steps), steps
    assert (cfg.model.init, cfg.grpo.loss, cfg.grpo.beta) == (f"{task}-deep8", "awm", 5.0)
