"""Shipped tiny SFT checkpoints (vrlvr/checkpoints/<name>/): they load by name and generate; a
missing one fails with the command that makes it; nothing keeps them out of the wheel."""

import fnmatch
from pathlib import Path

import numpy as np
import pytest

from vrlvr.models.policy import SHIPPED_DIR, SHIPPED_RECIPES, load_policy

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(SHIPPED_RECIPES))
def test_shipped_checkpoint_loads_generates_and_is_trained(name):
    import json

    import torch

    from vrlvr import tasks
    from vrlvr.models.sampling import generate_videos
    from vrlvr.models.tiny import TinyPixelConfig, TinyPixelPolicy
    from vrlvr.train.sft import flow_matching_loss

    folder = SHIPPED_DIR / name
    for f in ("policy.json", "model.safetensors", "heldout.json"):
        assert (folder / f).is_file(), f"{name} does not ship {f}"
    # small enough to ship in the wheel (the 12-block maze-deep12: 10.5 MB)
    assert (folder / "model.safetensors").stat().st_size < 12e6
    policy = load_policy(name).eval()
    meta = json.loads((folder / "policy.json").read_text())
    task = tasks.get(meta["task"])
    assert name.startswith(task.name)
    d = meta["data"]
    p = task.generate(100000, d["sizes"][0])
    first = task.render(p, task.solve(p), num_frames=1, cell_px=d["cell_px"])
    video = generate_videos(policy, first, [task.prompt(p)], d["num_frames"], num_steps=2)
    assert video.shape[1] == d["num_frames"] and np.array_equal(video[0, 0], first[0])
    # trained, not just initialised: its flow-matching loss on solution videos is far below a fresh model's
    ps = [task.generate(s, d["sizes"][0]) for s in range(4)]
    videos = np.stack(
        [task.render(q, task.solve(q), num_frames=d["num_frames"], cell_px=d["cell_px"]) for q in ps]
    )
    prompts = [task.prompt(q) for q in ps]
    torch.manual_seed(0)
    fresh = TinyPixelPolicy(TinyPixelConfig(**meta["config"])).eval()
    with torch.no_grad():
        ours = flow_matching_loss(policy, videos, prompts, torch.Generator().manual_seed(0)).item()
        base = flow_matching_loss(fresh, videos, prompts, torch.Generator().manual_seed(0)).item()
    assert ours < 0.2 * base, (ours, base)


def test_missing_shipped_checkpoint_says_how_to_make_it(tmp_path, monkeypatch):
    from vrlvr.models import policy as P

    monkeypatch.setattr(P, "SHIPPED_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=SHIPPED_RECIPES["maze-tiny"].replace(".", r"\.")):
        load_policy("maze-tiny")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Simple .gitignore matching (name globs, anchored paths, dir/ suffixes): enough for ours."""
    parts = path.split("/")
    for pat in patterns:
        pat = pat.strip()
        if not pat or pat.startswith(("#", "!")):
            continue
        pat = pat.rstrip("/")
        if pat.startswith("/") or "/" in pat:
            if fnmatch.fnmatch(path, pat.lstrip("/")) or fnmatch.fnmatch(path, pat.lstrip("/") + "/*"):
                return True
        elif any(fnmatch.fnmatch(part, pat) for part in parts):
            return True
    return False


def test_checkpoints_ship_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]
    assert cfg["wheel"]["packages"].get("vrlvr") == "vrlvr"
    assert not any("checkpoints" in x or "safetensors" in x for x in cfg.get("wheel", {}).get("exclude", []))
    patterns = (ROOT / ".gitignore").read_text().splitlines()  # scikit-build-core honours .gitignore
    assert _ignored("build/x.o", patterns)  # the matcher works
    for name in SHIPPED_RECIPES:
        for f in ("model.safetensors", "policy.json", "heldout.json"):
            assert not _ignored(f"vrlvr/checkpoints/{name}/{f}", patterns), (name, f)


def test_every_shipped_folder_has_a_recipe_and_is_named_in_the_help():
    """vrlvr/checkpoints/ and SHIPPED_RECIPES list the same checkpoints, and the help of the trainer's
    model.init and of `vrlvr eval/sample --checkpoint` names each of them (read from that one list)."""
    import argparse
    import dataclasses

    from vrlvr.cli import build_parser
    from vrlvr.train.grpo_config import RLModelConfig

    folders = {p.name for p in SHIPPED_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders == set(SHIPPED_RECIPES)
    init = next(f for f in dataclasses.fields(RLModelConfig) if f.name == "init")
    helps = {"model.init": init.metadata["help"]}
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("eval", "sample"):
        actions = commands[command]._actions
        helps[command] = next(a.help for a in actions if "--checkpoint" in a.option_strings)
    for where, text in helps.items():
        for name in SHIPPED_RECIPES:
            assert name in text, (where, name, text)
