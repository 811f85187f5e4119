"""scripts/reproduce.py --quick: every experiment of the reproduction runs end to end (a smoke test
of the pipeline: 2 steps, a few puzzles; the numbers mean nothing) and writes its JSON and tables."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reproduce.py"


@pytest.mark.slow
def test_reproduce_quick_runs_every_experiment(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path), "--no-readme", "--tasks", "maze"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    t1 = json.loads((tmp_path / "table1.json").read_text())
    maze = t1["maze"]
    for side in ("sft", "rl", "gain"):
        lo, hi = maze[side]["success_rate"]["ci95"]
        assert lo <= maze[side]["success_rate"]["mean"] <= hi
    assert set(maze["baselines"]) == {"still", "flood"}
    t4 = json.loads((tmp_path / "table4.json").read_text())
    assert t4["step_time_ratio"] > 0
    assert set(json.loads((tmp_path / "reward.json").read_text())) == {"maze", "flowfree"}
    hack = json.loads((tmp_path / "hack.json").read_text())
    assert set(hack) == {"default", "paper_no_kl"} and len(hack["default"]["step"]) >= 2
    text = (tmp_path / "results.md").read_text()
    assert "--quick smoke run" in text and "| maze |" in text
