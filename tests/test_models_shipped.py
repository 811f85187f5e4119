"""Shipped tiny SFT checkpoints (vrlvr/checkpoints/<name>/): they load by name and generate; a
missing one fails with the command that makes it; nothing keeps them out of the wheel."""

import fnmatch
from pathlib import Path

import numpy as np
import pytest

from vrlvr.models.policy import SHIPPED_DIR, SHIPPED_RECIPES, load_policy

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(SHIPPED_RECIPES))
def test_shipped_checkpoint_loads_or_says_how_to_make_it(name):
    if not (SHIPPED_DIR / name / "policy.json").is_file():
        with pytest.raises(FileNotFoundError, match=SHIPPED_RECIPES[name].replace(".", r"\.")):
            load_policy(name)
        return
    import json

    from vrlvr import tasks
    from vrlvr.models.sampling import generate_videos

    policy = load_policy(name)
    meta = json.loads((SHIPPED_DIR / name / "policy.json").read_text())
    task = tasks.get(meta["task"])
    assert name.startswith(task.name) and (SHIPPED_DIR / name / "heldout.json").is_file()
    p = task.generate(100000, meta["data"]["sizes"][0])
    first = task.render(p, task.solve(p), num_frames=1, cell_px=meta["data"]["cell_px"])
    video = generate_videos(policy, first, [task.prompt(p)], meta["data"]["num_frames"], num_steps=2)
    assert video.shape[1] == meta["data"]["num_frames"] and np.array_equal(video[0, 0], first[0])


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
    for f in (
        "vrlvr/checkpoints/maze-tiny/model.safetensors",
        "vrlvr/checkpoints/maze-tiny/policy.json",
        "vrlvr/checkpoints/maze-tiny/heldout.json",
    ):
        assert not _ignored(f, patterns), f
