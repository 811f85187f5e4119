"""Trivial baselines beside a model: `evaluate_baselines` on eval puzzles, and `vrlvr eval`'s report."""

import json

import pytest

from vrlvr import tasks
from vrlvr.train.data import VideoSpec, eval_puzzles
from vrlvr.train.evaluate import BASELINE_KEYS, evaluate_baselines
from vrlvr.verify.baselines import BASELINES


@pytest.mark.parametrize("name, size, frames", [("maze", 9, 9), ("flowfree", 5, 9), ("sokoban", 6, 17)])
def test_baselines_score_no_success_and_little_reward(name, size, frames):
    task = tasks.get(name)
    puzzles, _ = eval_puzzles(task, [size], 6, 100000)
    out = evaluate_baselines(task, puzzles, VideoSpec(num_frames=frames, cell_px=4))
    assert set(out) == set(BASELINES[name])
    for base, m in out.items():
        assert set(m) == set(BASELINE_KEYS)
        assert m["success_rate"] == 0.0, base
        assert m["mean_reward"] < 0.15, (base, m)
    assert out["still"]["mean_reward"] == 0.0
    if name == "maze":  # the paper's loose success is fooled by flooding; the reward is not
        assert out["flood"]["loose_success_rate"] == 1.0


def test_baselines_at_wan_resolution_and_explicit_names():
    task = tasks.get("maze")
    puzzles, _ = eval_puzzles(task, [7, 9], 4, 100000)
    out = evaluate_baselines(
        task, puzzles, VideoSpec(num_frames=5, cell_px=None, height=96, width=160), names=["flood"]
    )
    assert list(out) == ["flood"] and out["flood"]["success_rate"] == 0.0
    with pytest.raises(ValueError, match="unknown maze baseline"):
        evaluate_baselines(task, puzzles, VideoSpec(num_frames=5), names=["dilution"])


def test_eval_command_reports_baselines_beside_the_model(tmp_path, capsys):
    from vrlvr.cli import main

    out = tmp_path / "eval.json"
    args = ["eval", "--checkpoint", "maze-tiny", "--n", "4", "--allow-seen", "--steps", "2"]
    assert main([*args, "--json", str(out), "--no-progress", "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    assert set(report["baselines"]) == {"still", "flood"}
    assert report["baselines"]["still"]["mean_reward"] == 0.0
    err = capsys.readouterr().err
    assert "beside trivial baselines" in err and "flood" in err and "model" in err
