"""Every shipped experiment config loads, validates, and starts with the command that runs it."""

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
