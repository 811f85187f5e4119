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

    # a rerun of one experiment for some tasks keeps the other tasks' entries; --reuse takes the
    # finished run of the same config instead of training it again (the evaluation is redone)
    (tmp_path / "table1.json").write_text(json.dumps({**t1, "sokoban": t1["maze"]}))
    res = subprocess.run([*cmd, "--only", "table1", "--reuse"], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "maze-rl: reusing" in res.stderr
    again = json.loads((tmp_path / "table1.json").read_text())
    assert again["sokoban"] == t1["maze"] and "per_puzzle" in again["maze"]
    assert set(again["maze"]["measured"]["reused_runs"]) == {"maze-rl"}  # the entry says so
    # the tables still show the experiments not rerun (from their JSON)
    text = (tmp_path / "results.md").read_text()
    assert "## Early-Step Focus" in text and "## Reward hacking" in text and "Where the time goes" in text

    # --score: any checkpoint of a run, paired against the run's SFT checkpoint on the same puzzles
    ck = tmp_path / "runs" / "maze-rl" / "final"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path), "--score", str(ck)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"| {ck} |" in res.stdout and "Sampled with Euler sampling" in res.stdout
    # ... and under the run's own rollout sampler (its SDE window): other videos, the same table
    res = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--out",
            str(tmp_path),
            "--score",
            str(ck),
            "--rollout-sampler",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"| {ck} |" in res.stdout and "rollout sampler (SDE window)" in res.stdout
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--score", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode != 0 and "not a checkpoint of a vrlvr-train run" in res.stderr


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_run(out: Path, config: Path, overrides: list[str], last_step: int) -> None:
    """A run folder as vrlvr-train leaves it: config.yaml (resolved), final/, one line per update."""
    import yaml

    from vrlvr.config import build_config, config_to_dict
    from vrlvr.train.grpo_config import GRPOConfig

    cfg = config_to_dict(build_config(GRPOConfig, config, [*overrides, f"out_dir={out}", "threads=1"]))
    (out / "final").mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (out / "final" / "policy.json").write_text("{}")
    lines = [{"step": 0, "tag": "before", "eval": {}}] + [
        {"step": s, "step_time_s": 1.0} for s in range(1, last_step + 1)
    ]
    (out / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_reuse_takes_only_a_finished_run_of_exactly_the_same_config(tmp_path):
    rep = _script()
    config = SCRIPT.parent.parent / "configs" / "maze-tiny.yaml"
    overrides = [*rep.FULL, "optim.steps=3", "reward.kind=dense"]
    done = tmp_path / "done"
    _fake_run(done, config, overrides, last_step=3)
    # threads, out_dir and logging do not change what a run computes
    assert rep.reusable(done, config, overrides)
    assert rep.reusable(done, config, [*overrides, "threads=2", "log_every=5"])
    # any other key does: a run of another recipe is trained again
    assert not rep.reusable(done, config, [*overrides, "optim.lr=5e-4"])
    assert not rep.reusable(done, config, overrides[:-1])  # the config's own (sparse) reward
    assert not rep.reusable(done, SCRIPT.parent.parent / "configs" / "flowfree-tiny.yaml", overrides)
    # a run that stopped early (max_minutes, a crash before final/) is not finished
    short = tmp_path / "short"
    _fake_run(short, config, overrides, last_step=2)
    assert not rep.reusable(short, config, overrides)
    assert not rep.reusable(tmp_path / "missing", config, overrides)
    # a run folder from a version with other keys is trained again, not a crash
    text = (done / "config.yaml").read_text()
    (done / "config.yaml").write_text(text + "no_such_key: 1\n")
    assert not rep.reusable(done, config, overrides)
