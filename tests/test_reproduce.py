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
    # per-puzzle values are kept: any two policies on the same puzzles can be paired later
    per = maze["per_puzzle"]
    assert len(per["sft"]) == len(per["rl"]) == maze["puzzles"] and len(per["sft"][0]) == len(per["metrics"])
    assert maze["measured"]["commit"]
    t4 = json.loads((tmp_path / "table4.json").read_text())
    assert t4["step_time_ratio"] > 0 and t4["windows"]["first_half"][1] * 2 == t4["windows"]["all_steps"][1]
    reward = json.loads((tmp_path / "reward.json").read_text())
    assert set(reward) == {"maze"}  # --tasks maze: flowfree's dense/sparse runs are not made
    for key in ("dense", "sparse", "dense_gain", "sparse_gain", "sparse_minus_dense"):
        assert key in reward["maze"]
    hack = json.loads((tmp_path / "hack.json").read_text())
    assert set(hack) == {"default", "paper_no_kl"} and len(hack["default"]["step"]) >= 2
    text = (tmp_path / "results.md").read_text()
    assert "--quick smoke run" in text and "| maze |" in text

    # a rerun of one experiment for some tasks keeps the other tasks' entries
    (tmp_path / "table1.json").write_text(json.dumps({**t1, "sokoban": t1["maze"]}))
    res = subprocess.run([*cmd, "--only", "table1"], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    again = json.loads((tmp_path / "table1.json").read_text())
    assert again["sokoban"] == t1["maze"] and "per_puzzle" in again["maze"]

    # --score: any checkpoint of a run, paired against the run's SFT checkpoint on the same puzzles
    ck = tmp_path / "runs" / "maze-rl" / "final"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path), "--score", str(ck)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"| {ck} |" in res.stdout
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--score", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode != 0 and "not a checkpoint of a vrlvr-train run" in res.stderr
