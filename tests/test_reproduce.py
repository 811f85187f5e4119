"""scripts/reproduce.py --quick: every experiment of the reproduction runs end to end (a smoke test
of the pipeline: 2 steps, a few puzzles; the numbers mean nothing) and writes its JSON and tables."""

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from reproduction import (
    experiments,
    pool,
    recipes,
    report,
    score_command,
    scoring,
    stats,
    step_timing,
    training,
)
from reproduction.settings import FULL, METRICS, QUICK_PUZZLES, TASKS

from vrlvr.models import resolve_checkpoint

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reproduce.py"
#: where --score's output turns from the gains to the puzzle-share table
SHARE_INTRO = "\n\nThe puzzle's share"


@pytest.mark.slow
def test_reproduce_quick_runs_every_experiment(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path), "--no-readme", "--tasks", "maze"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    t1 = json.loads((tmp_path / "table1.json").read_text())
    maze = t1["maze"]
    timing = json.loads((tmp_path / "seconds.json").read_text())
    jobs = len(os.sched_getaffinity(0))  # the default --jobs: runs and evaluations in one pool first
    if jobs > 1:
        what = f"table1, table4, reward, hack (maze; --jobs {jobs}; --seeds 3 (maze); --sft-control maze)"
        assert {f"runs and evaluations of {what}", f"all of {what}", "table1 (maze), scoring"} <= set(timing)
    for side in ("sft", "rl", "gain"):
        lo, hi = maze[side]["success_rate"]["ci95"]
        assert lo <= maze[side]["success_rate"]["mean"] <= hi
    assert set(maze["baselines"]) == {"still", "flood"}
    # per-puzzle values are kept: any two policies on the same puzzles can be paired later
    per = maze["per_puzzle"]
    assert len(per["sft"]) == len(per["rl"]) == maze["puzzles"] and len(per["sft"][0]) == len(per["metrics"])
    assert maze["measured"]["commit"]
    # --seeds (default 3, maze): the recipe trained with the next two seeds, scored on the same puzzles
    seeds = maze["seeds"]
    assert seeds["seeds"] == [0, 1, 2] and len(seeds["gain_per_seed"]) == 3
    assert len(seeds["per_puzzle_rl"]) == 2 and len(seeds["per_puzzle_rl"][0]) == maze["puzzles"]
    assert seeds["gain_per_seed"][0] == maze["gain"]  # seed 0 is table 1's run
    for s in (1, 2):
        assert (tmp_path / "runs" / f"maze-rl-seed{s}" / "final" / "policy.json").is_file()
    # --sft-control (default maze): more SFT from the same checkpoint, on the same puzzles
    control = maze["sft_control"]
    assert control["recipe"]["steps"] == 2 and len(control["per_puzzle"]) == maze["puzzles"]
    assert control["rl_minus_control_over_seeds"] is not None and control["wall_s"] > 0
    assert (tmp_path / "runs" / "maze-sft-more" / "final" / "policy.json").is_file()
    t4 = json.loads((tmp_path / "table4.json").read_text())
    assert t4["step_time_ratio"] > 0 and t4["windows"]["first_half"][1] * 2 == t4["windows"]["all_steps"][1]
    assert t4["ratio_at_mean_work"]["ratio"] > 0 and t4["ratio_all_trained"]["samples"] == 4  # 2 x 2
    # the two table4 runs trained at once, sharing the cores (a run alone keeps its config's threads)
    share = max(1, training.cores() // 2)
    assert t4["side_by_side"]["threads"] == {"first_half": share, "all_steps": share}
    for name in ("maze-esf-first-half", "maze-esf-all-steps"):
        rows = [json.loads(x) for x in (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        assert all(r["wall_time"] > 1.7e9 for r in rows if "step_time_s" in r)
    reward = json.loads((tmp_path / "reward.json").read_text())
    assert set(reward) == {"maze"}  # --tasks maze: flowfree's dense/sparse runs are not made
    for key in ("dense", "sparse", "dense_gain", "sparse_gain", "sparse_minus_dense"):
        assert key in reward["maze"]
    hack = json.loads((tmp_path / "hack.json").read_text())
    assert set(hack) == {"default", "paper_no_kl"} and len(hack["default"]["step"]) >= 2
    text = (tmp_path / "results.md").read_text()
    assert "--quick smoke run" in text and "| maze |" in text
    assert "## Training seeds" in text and "| maze | 0, 1, 2 |" in text
    assert "## The control: more SFT" in text and "| maze | 2 x 16," in text

    # a rerun of one experiment for some tasks keeps the other tasks' entries; --reuse takes the
    # finished run of the same config instead of training it again (the evaluation is redone)
    (tmp_path / "table1.json").write_text(json.dumps({**t1, "sokoban": t1["maze"]}))
    res = subprocess.run([*cmd, "--only", "table1", "--reuse"], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "maze-rl: reusing" in res.stderr and "maze-rl-seed2: reusing" in res.stderr
    assert "maze-sft-more: reusing" in res.stderr
    again = json.loads((tmp_path / "table1.json").read_text())
    assert again["sokoban"] == t1["maze"] and "per_puzzle" in again["maze"]
    assert set(again["maze"]["measured"]["reused_runs"]) == {"maze-rl"}  # the entry says so
    reused = set(again["maze"]["seeds"]["measured"]["reused_runs"])
    assert reused == {"maze-rl", "maze-rl-seed1", "maze-rl-seed2"}
    # the tables still show the experiments not rerun (from their JSON)
    text = (tmp_path / "results.md").read_text()
    assert "## Early-Step Focus" in text and "## Reward hacking" in text and "Where the time goes" in text

    # --score: any checkpoint of a run, paired against the run's SFT checkpoint on the same puzzles
    def score(*checkpoints, flags=("--quick",)):
        cmd = [sys.executable, str(SCRIPT), *flags, "--out", str(tmp_path), "--score", *map(str, checkpoints)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600)

    def gains_table(stdout: str) -> list[str]:  # --score's lines above its puzzle-share table
        return stdout.split(SHARE_INTRO)[0].split("\n")

    ck = tmp_path / "runs" / "maze-rl" / "final"
    res = score(ck)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"| {ck} |" in res.stdout and "Sampled with Euler sampling" in res.stdout
    # the puzzle-share table lists the run and its start; one sample per puzzle (--quick) defines none
    share = res.stdout.split(SHARE_INTRO)[1].split("\n")
    assert f"| {ck} | 2 |" in "\n".join(share) and sum("- (undefined)" in x for x in share) == 2
    # scored again with the same --out: read back from OUT/scores.json, the same table
    again = score(ck)
    assert again.returncode == 0 and again.stdout == res.stdout
    assert again.stderr.count("per-puzzle scores from") == 2, again.stderr[-2000:]  # the RL run, its start
    # ... and under the run's own rollout sampler (its SDE window): other videos, the same table
    res = score(ck, flags=("--quick", "--rollout-sampler"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"| {ck} |" in res.stdout and "rollout sampler (SDE window)" in res.stdout
    res = score(tmp_path, flags=())
    assert res.returncode != 0 and "not a checkpoint of a vrlvr-train or vrlvr sft run" in res.stderr
    # ... and the control's checkpoint (more SFT), paired against the same start
    sft = tmp_path / "runs" / "maze-sft-more"
    res = score(sft / "final", ck)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [x for x in gains_table(res.stdout) if x.startswith("| /")]
    assert [r.split(" | ")[0] for r in rows] == [f"| {sft / 'final'}", f"| {ck}"]
    assert rows[0].split(" | ")[1:3] == rows[1].split(" | ")[1:3]  # the same SFT start, same puzzles
    assert "| mean over these" not in res.stdout  # an SFT run and an RL run are not one recipe
    # two RL runs with the same start (training seeds): their mean gain, interval over runs and puzzles
    res = score(ck, tmp_path / "runs" / "maze-rl-seed1" / "final")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [x.split(" | ") for x in gains_table(res.stdout) if x.startswith("| /")]
    (mean,) = [x.split(" | ") for x in gains_table(res.stdout) if x.startswith("| mean over these 2 vrlvr")]
    assert mean[1] == "maze-tiny (its start)" and len(rows) == 2
    gains = [float(r[4].split(" ")[0]) for r in rows]
    assert abs(float(mean[4].split(" ")[0]) - sum(gains) / 2) <= 0.051
    # --against: also paired with other checkpoints that hold the same puzzles out; the run's own
    # start is not paired twice (its row is already there), a copy of it in another folder is, and
    # (evaluated afresh: a file more makes it another entry of the score cache) it must give
    # exactly the start's row
    twin = tmp_path / "twin"
    shutil.copytree(resolve_checkpoint("maze-tiny"), twin)
    (twin / "NOTE.txt").write_text("a copy of maze-tiny\n")
    res = score(ck, "--against", "maze-tiny", twin, sft / "final")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [x.split(" | ") for x in gains_table(res.stdout) if x.startswith("| /")]
    assert [r[1] for r in rows] == ["maze-tiny (its start)", str(twin), str(sft / "final")]
    assert rows[0][2:] == rows[1][2:] and rows[0][3] == rows[2][3]  # same policy, same puzzles
    leaky = tmp_path / "leaky"  # maze-tiny, but with a held-out set that lacks the scored puzzles
    shutil.copytree(resolve_checkpoint("maze-tiny"), leaky)
    record = json.loads((leaky / "heldout.json").read_text())
    (leaky / "heldout.json").write_text(json.dumps({**record, "keys": []}))
    res = score(ck, "--against", leaky)
    assert res.returncode != 0 and "outside its held-out set" in res.stderr, res.stderr[-2000:]


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_sft_run(out: Path, overrides: list[str]) -> Path:
    """A run folder as `vrlvr sft` leaves it (config.yaml resolved, final/) -> its final/."""
    import yaml

    from vrlvr.config import build_config, config_to_dict
    from vrlvr.train.sft_config import SFTConfig

    config = SCRIPT.parent.parent / "configs" / "maze-tiny-sft.yaml"
    cfg = config_to_dict(build_config(SFTConfig, config, [*overrides, f"out_dir={out}"]))
    (out / "final").mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (out / "final" / "policy.json").write_text("{}")
    return out / "final"


@pytest.mark.parametrize(
    "overrides, extra, message",
    [
        ([], [], "started from scratch: no checkpoint to pair it with"),
        (["model.path=maze-tiny"], ["--rollout-sampler"], "a `vrlvr sft` run has no rollout sampler"),
    ],
)
def test_score_refuses_sft_runs_it_cannot_pair(tmp_path, overrides, extra, message):
    ck = _fake_sft_run(tmp_path / "sft", overrides)
    with pytest.raises(SystemExit) as exc:
        _script().main(["--out", str(tmp_path / "results"), "--score", str(ck), *extra])
    assert message in str(exc.value)


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
    config = SCRIPT.parent.parent / "configs" / "maze-tiny.yaml"
    overrides = [*FULL, "optim.steps=3", "reward.kind=dense"]
    done = tmp_path / "done"
    _fake_run(done, config, overrides, last_step=3)
    # threads, out_dir and logging do not change what a run computes
    assert training.reusable(done, config, overrides)
    assert training.reusable(done, config, [*overrides, "threads=2", "log_every=5"])
    # any other key does: a run of another recipe is trained again
    assert not training.reusable(done, config, [*overrides, "optim.lr=5e-4"])
    assert not training.reusable(done, config, overrides[:-1])  # the config's own (sparse) reward
    assert not training.reusable(done, SCRIPT.parent.parent / "configs" / "flowfree-tiny.yaml", overrides)
    # a run that stopped early (max_minutes, a crash before final/) is not finished
    short = tmp_path / "short"
    _fake_run(short, config, overrides, last_step=2)
    assert not training.reusable(short, config, overrides)
    assert not training.reusable(tmp_path / "missing", config, overrides)
    # a run folder from a version with other keys is trained again, not a crash
    text = (done / "config.yaml").read_text()
    (done / "config.yaml").write_text(text + "no_such_key: 1\n")
    assert not training.reusable(done, config, overrides)


def test_table4_alone_trains_its_two_runs_only(tmp_path, monkeypatch):
    """The shipped window's step time (table 1's run) is a line for scale: table4 gives it when the
    invocation has that run (made by table1, or found by --reuse), and never trains 100 updates for it."""
    import argparse

    import numpy as np

    from vrlvr.config import build_config
    from vrlvr.train.grpo_config import GRPOConfig

    trained = []

    def fake_train(name, config, overrides, args, command="train"):
        made = args.__dict__.setdefault("runs_made", {})
        if name not in made:
            trained.append(name)
            out = Path(args.out) / "runs" / name
            full = training.full_overrides(overrides, args)
            steps = build_config(GRPOConfig, config, [*full, "out_dir=x"]).optim.steps  # a finished run
            _fake_run(out, config, full, last_step=steps)
            made[name] = (out, list(overrides))
        return made[name][0]

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(
        training,
        "train_side_by_side",
        lambda runs, args: {k: fake_train(name, c, o, args) for k, (name, c, o) in runs.items()},
    )
    monkeypatch.setattr(scoring, "held_out_eval", lambda ck, run, args: (np.zeros((4, len(METRICS))), {}))
    args = argparse.Namespace(quick=False, out=str(tmp_path), reuse=False)
    t4 = experiments.exp_table4(args)
    assert trained == ["maze-esf-first-half", "maze-esf-all-steps"] and "shipped" not in t4
    assert t4["step_time_ratio"] == 1.0 and "first_half_minus_all" in t4
    text = report.tables({"table4": t4}, quick=False)
    assert "The shipped recipe's window" not in text and "At the same training work" in text
    # table1's run made in the same invocation: its step time comes along, nothing more is trained
    experiments.rl_run("maze", args)
    t4 = experiments.exp_table4(args)
    assert trained == ["maze-esf-first-half", "maze-esf-all-steps", "maze-rl"]
    assert t4["shipped"]["sde_window"] == [0, 2] and t4["shipped"]["median_step_time_s"] == 1.0
    assert "The shipped recipe's window [0, 2]: 1.0 s" in report.tables({"table4": t4}, quick=False)
    # a later invocation: only --reuse takes the finished run in OUT/runs/
    later = argparse.Namespace(quick=False, out=str(tmp_path), reuse=False)
    assert not training.at_hand("maze-rl", *recipes.rl_recipe("maze", later), later)
    later.reuse = True
    assert training.at_hand("maze-rl", *recipes.rl_recipe("maze", later), later)


def test_table4_compares_the_windows_at_the_same_training_work(tmp_path):
    """A sparse step trains only the groups that vary, so a run's median step follows how many varied
    in it: a window twice as cheap per sample whose run happened to train more looks slower by the
    medians. Split into rollouts + time per contributing sample, the two compare at equal work."""

    def run(name, fixed, per_sample, contributing):
        out = tmp_path / name
        out.mkdir()
        rows = [{"step": 0, "tag": "before", "eval": {}}]
        for i, n in enumerate([8, *contributing], start=1):  # the first step (warm-up) is dropped
            upd = per_sample * n
            rows.append(
                {"step": i, "contributing": n, "rollout_time_s": fixed - 0.5, "verify_time_s": 0.5}
                | {"train_time_s": upd, "step_time_s": fixed + upd}
            )
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return out

    # the cheap window trained 32 samples on most steps, the dear one 0 on most
    cheap = run("half", 10.0, 0.5, [32] * 12 + [0] * 8)
    dear = run("all", 10.0, 1.0, [0] * 12 + [32] * 8)
    half, every = step_timing.step_times(cheap), step_timing.step_times(dear)
    assert statistics.median(half) > statistics.median(every)  # 26 vs 10
    cost = step_timing.step_cost(cheap)
    assert cost["fixed_s"] == 10.0 and cost["per_sample_s"] == 0.5 and len(cost["contributing"]) == 20
    at16 = step_timing.matched_ratio(cheap, dear, 16.0)
    assert at16["ratio"] == pytest.approx((10 + 8) / (10 + 16))
    assert at16["ci95"][0] <= at16["ratio"] <= at16["ci95"][1]
    assert step_timing.matched_ratio(cheap, dear, 32.0)["ratio"] == pytest.approx(26 / 42)
    assert step_timing.matched_ratio(cheap, dear, 0.0)["ratio"] == pytest.approx(1.0)  # rollouts alone


def test_table4_says_when_the_machine_drifted_under_its_runs(tmp_path):
    """Rollouts are the same work every step: when they take much longer in one stretch of a run
    than in another, the machine slowed under it and the step times are not comparable."""

    def run(name, rollouts):
        out = tmp_path / name
        out.mkdir()
        rows = [{"step": i, "rollout_time_s": t, "step_time_s": t + 1.0} for i, t in enumerate(rollouts, 1)]
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return out

    steady = run("steady", [14.0, 14.5, 13.8, 14.2] * 13)
    drifted = run("drifted", [14.0] * 21 + [21.5] * 20 + [14.5] * 10)  # 1.5x slower for 20 steps
    drift = step_timing.rollout_drift
    assert drift(steady) < 1.05 and drift(drifted) == pytest.approx(21.5 / 14.0)
    assert drift(run("short", [3.0, 9.0])) == 1.0  # one step after the warm-up: no stretches
    t4 = json.loads((SCRIPT.parent.parent / "results" / "table4.json").read_text())
    t4.pop("rollout_drift", None)
    # an entry from before the check
    assert "Not comparable" not in report.tables({"table4": t4}, quick=False)
    t4["rollout_drift"] = {"first_half": 1.02, "all_steps": step_timing.rollout_drift(drifted)}
    text = report.tables({"table4": t4}, quick=False)
    assert "Not comparable: the machine's speed drifted" in text and "1.54x (all steps)" in text
    t4["rollout_drift"] = {"first_half": 1.02, "all_steps": step_timing.rollout_drift(steady)}
    assert "Not comparable" not in report.tables({"table4": t4}, quick=False)


def test_table4_times_side_by_side_runs_only_while_both_ran(tmp_path):
    """Runs trained side by side share the machine until the faster one ends; the other's later
    steps ran alone (faster), so they are neither timed nor read as drift."""

    def run(name, rollouts, t0=1000.0):
        out = tmp_path / name
        out.mkdir()
        rows, now = [{"step": 0, "tag": "before", "eval": {}}], t0
        for i, t in enumerate(rollouts, 1):
            now += t + 1.0
            rows.append({"step": i, "rollout_time_s": t, "step_time_s": t + 1.0, "wall_time": now})
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return out

    fast = run("first-half", [10.0] * 30)  # ends at 1330
    slow = run("all-steps", [10.0] * 30 + [6.0] * 20)  # at 1330 too, then 20 steps alone
    until = step_timing.together_until(fast, slow)
    assert until == 1330.0
    assert len(step_timing.timed_steps(slow, until)) == 29 and len(step_timing.timed_steps(fast, until)) == 29
    assert len(step_timing.timed_steps(slow)) == 49
    assert (
        step_timing.rollout_drift(slow) == pytest.approx(10 / 6)
        and step_timing.rollout_drift(slow, until=until) == 1.0
    )
    assert statistics.median(step_timing.step_times(slow, until)) == 11.0
    # runs from before the trainer logged wall_time: no overlap known, every step timed
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.jsonl").write_text(json.dumps({"step": 1, "step_time_s": 2.0}) + "\n")
    assert step_timing.together_until(fast, old) is None
    t4 = json.loads((SCRIPT.parent.parent / "results" / "table4.json").read_text())
    t4["side_by_side"] = {
        "threads": {"first_half": 1, "all_steps": 1},
        "timed_updates": {"first_half": 29, "all_steps": 29},
        "until": until,
    }
    assert "side by side (1 / 1 CPU threads)" in report.tables({"table4": t4}, quick=False)


def test_seed_bootstrap_counts_the_spread_between_training_seeds():
    import numpy as np

    rng = np.random.default_rng(0)
    M = len(METRICS)
    puzzles = rng.normal(0.05, 0.2, size=(96, M))  # one run's paired gains per puzzle
    # three seeds that agree: the interval is about the puzzles' one
    same = stats.seed_bootstrap(np.stack([puzzles] * 3))
    one = stats.bootstrap(puzzles)
    for m in METRICS:
        assert abs(same[m]["mean"] - one[m]["mean"]) < 1e-12
        w_same, w_one = np.diff(same[m]["ci95"])[0], np.diff(one[m]["ci95"])[0]
        assert 0.8 * w_one < w_same < 1.25 * w_one
    # seeds that disagree by far more than the puzzles do: the mean is theirs, the interval spans them
    shifted = np.stack([puzzles - 0.3, puzzles, puzzles + 0.6])
    spread = stats.seed_bootstrap(shifted)
    for k, m in enumerate(METRICS):
        assert abs(spread[m]["mean"] - (puzzles[:, k].mean() + 0.1)) < 1e-9
        lo, hi = spread[m]["ci95"]
        assert lo < puzzles[:, k].mean() - 0.1 and hi > puzzles[:, k].mean() + 0.3
        assert np.diff(spread[m]["ci95"])[0] > 3 * np.diff(one[m]["ci95"])[0]
    # undefined values (precision of an empty painting) are left out, not zeros
    holes = np.stack([puzzles] * 2)
    holes[0, :10, 2] = np.nan
    got = stats.seed_bootstrap(holes)["precision"]["mean"]
    assert got == pytest.approx(np.nanmean(holes[..., 2])) and got != pytest.approx(
        np.nan_to_num(holes[..., 2]).mean()
    )
    # a constant gain has a point interval
    flat = stats.seed_bootstrap(np.full((3, 8, M), 0.25))
    assert flat["f1"]["ci95"] == [0.25, 0.25] and flat["f1"]["mean"] == 0.25


def test_score_gives_the_mean_gain_of_runs_with_one_start(tmp_path, monkeypatch):
    """--score with several runs of one start (training seeds): a row per run and one with their
    mean gain, the start named by its shipped name or by its folder; an SFT run from the same start
    is not averaged with the RL runs, nor two checkpoints of one run. The evaluations are replaced
    by fixed per-puzzle values (the slow test above runs the real ones)."""
    import argparse
    from types import SimpleNamespace

    import numpy as np
    import yaml

    M, P = len(METRICS), 40
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 0.2, size=(P, M))
    shift = {"rl-a": 0.10, "rl-b": 0.02, "sft-more": -0.05}
    runs = {}
    for name in shift:
        run = tmp_path / name
        (run / "final").mkdir(parents=True)
        (run / "final" / "policy.json").write_text(json.dumps({"run": name}))  # bytes of its own
        # rl-b names the same start by its folder: one start, whatever its name
        init = str(resolve_checkpoint("maze-tiny")) if name == "rl-b" else "maze-tiny"
        cfg = {"model": {"init": init}, "grpo": {}}
        if name == "sft-more":
            cfg = {"model": {"path": "maze-tiny"}}
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        runs[name] = run
    puzzles = [SimpleNamespace(key=f"p{i}") for i in range(P)]
    monkeypatch.setattr(scoring, "heldout_set", lambda run, args: (None, puzzles, None, None))

    def fake_eval(checkpoint, run, args):
        name = Path(checkpoint).parent.name
        return (start + shift[name] if name in shift else start), {}

    monkeypatch.setattr(score_command, "scored", lambda ck, run, args: fake_eval(ck, run, args)[0])
    monkeypatch.setattr(score_command, "check_against", lambda other, run, args: resolve_checkpoint(other))
    # --against the runs' own start: no second row saying the same as "its start"
    args = argparse.Namespace(
        score=[str(runs[n] / "final") for n in shift], against=["maze-tiny"], rollout_sampler=False
    )
    text = score_command.score(args)
    lines, share = (part.split("\n") for part in text.split(SHARE_INTRO))
    rows = [x.split(" | ") for x in lines if x.startswith(f"| {tmp_path}")]
    assert [float(r[4].split(" ")[0]) for r in rows] == [10.0, 2.0, -5.0]
    # the puzzle-share table: each checkpoint once, the start once whatever its name
    named = [x.split(" | ")[0][2:] for x in share if x.startswith("| ")][2:]  # the header and rule aside
    assert named[0] == "maze-tiny" and named[1:] == [str(runs[n] / "final") for n in shift]
    assert len(named) == 4
    (mean,) = [x.split(" | ") for x in lines if x.startswith("| mean over")]
    assert mean[0] == "| mean over these 2 vrlvr-train runs" and mean[1] == "maze-tiny (its start)"
    assert mean[4].startswith("6.0 [2.0, 10.0]")  # the two seeds' mean; the interval spans them
    # two checkpoints of one run are not two seeds: a row each, no mean
    (runs["rl-a"] / "checkpoints" / "step_5").mkdir(parents=True)
    (runs["rl-a"] / "checkpoints" / "step_5" / "policy.json").write_text("{}")
    args.score = [str(runs["rl-a"] / "final"), str(runs["rl-a"] / "checkpoints" / "step_5")]
    lines = score_command.score(args).split(SHARE_INTRO)[0].split("\n")
    assert len([x for x in lines if x.startswith(f"| {tmp_path}")]) == 2
    assert not [x for x in lines if x.startswith("| mean over")]


def test_score_keeps_per_puzzle_values_between_invocations(tmp_path, monkeypatch):
    """--score keeps each evaluation in OUT/scores.json: the same checkpoint on the same puzzles with
    the same sampler is read back (undefined values included) instead of evaluated again; changed
    weights, other puzzles or another sampler are evaluated anew."""
    import argparse
    from types import SimpleNamespace

    import numpy as np

    from vrlvr.train.data import VideoSpec

    ck = tmp_path / "run" / "final"
    ck.mkdir(parents=True)
    (ck / "policy.json").write_text("{}")
    (ck / "model.safetensors").write_bytes(b"weights v1")
    puzzles = [SimpleNamespace(key=f"p{i}") for i in range(5)]
    sampling = SimpleNamespace(steps=10, shift=1.0, eta=0.7, mode="sde")
    cfg = SimpleNamespace(sampling=sampling, window=lambda: (0, 2))
    task = SimpleNamespace(name="maze")
    monkeypatch.setattr(scoring, "heldout_set", lambda run, args: (task, puzzles, VideoSpec(9), cfg))
    calls = []
    values = np.arange(5 * len(METRICS), dtype=float).reshape(5, -1) / 100
    values[1, 2] = np.nan  # precision undefined on a puzzle: kept as such

    def fake_eval(checkpoint, run, args):
        calls.append(checkpoint)
        return values + len(calls), {}

    monkeypatch.setattr(scoring, "held_out_eval", fake_eval)
    args = argparse.Namespace(out=str(tmp_path / "out"), quick=False, rollout_sampler=False)
    (tmp_path / "out").mkdir()
    first = score_command.scored(ck, ck.parent, args)
    again = score_command.scored(ck, ck.parent, args)  # another invocation would read the same file
    assert len(calls) == 1 and np.array_equal(first, again, equal_nan=True) and np.isnan(again[1, 2])
    assert (tmp_path / "out" / score_command.SCORES_FILE).is_file()
    score_command.scored(ck, ck.parent, argparse.Namespace(**{**vars(args), "rollout_sampler": True}))
    assert len(calls) == 2  # another sampler: another evaluation
    (ck / "model.safetensors").write_bytes(b"weights v2")  # trained again under the same name
    changed = score_command.scored(ck, ck.parent, args)
    assert len(calls) == 3 and not np.array_equal(changed, first, equal_nan=True)
    puzzles.pop()
    score_command.scored(ck, ck.parent, args)
    assert len(calls) == 4
    # every entry survives: the first three are still read back
    score_command.scored(ck, ck.parent, args)
    assert len(calls) == 4
    # a file that is not a score cache is set aside, never a crash
    cache = tmp_path / "out" / score_command.SCORES_FILE
    cache.write_text('{"truncated": ')
    assert np.array_equal(score_command.scored(ck, ck.parent, args), values + 5, equal_nan=True)
    assert (tmp_path / "out" / (score_command.SCORES_FILE + ".bad")).is_file() and len(
        score_command.read_scores(cache)
    ) == 1


def test_heldout_set_is_built_once_per_run_and_again_when_the_run_changes(tmp_path, monkeypatch):
    """The held-out set is memoised per invocation (puzzle generation is slow and the scoring asks
    for it several times), keyed on the run's files: a run rewritten under the same name is re-read."""
    import argparse

    run = _fake_sft_run(tmp_path / "sft", ["model.path=maze-tiny"]).parent
    built = []
    monkeypatch.setattr(scoring, "_heldout_set", lambda r, a: built.append(r) or len(built))
    args = argparse.Namespace(quick=True)
    assert scoring.heldout_set(run, args) == scoring.heldout_set(run / "final" / "..", args) == 1
    assert scoring.heldout_set(run, argparse.Namespace(quick=False)) == 2  # another invocation: built anew
    assert scoring.heldout_set(run, args) == 1
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "seed: 3\n")
    assert scoring.heldout_set(run, args) == 3 and len(built) == 3


def test_tables_show_the_gain_per_training_seed():
    import numpy as np

    M = len(METRICS)
    gains = np.stack([np.full((4, M), g) for g in (0.047, 0.010, 0.013)])
    point = {m: {"mean": 0.0, "ci95": [0.0, 0.0]} for m in METRICS}
    row = {"puzzles": 4, "samples": 4, "sft": point, "rl": point, "gain": point, "baselines": {}}
    results = {
        "table1": {
            "maze": {
                **row,
                "seeds": {
                    "seeds": [0, 1, 2],
                    "gain_per_seed": [stats.bootstrap(g) for g in gains],
                    "gain": stats.seed_bootstrap(gains),
                    "measured": {"date": "2026-11-30", "commit": "abc"},
                },
            },
            "flowfree": row,  # one seed: no row in the seeds table
        }
    }
    text = report.tables(results, quick=False)
    assert "## Training seeds" in text
    line = next(x for x in text.split("\n") if x.startswith("| maze | 0, 1, 2 |"))
    assert "+4.7, +1.0, +1.3" in line and "2.3 [1.0, 4.7]" in line
    assert "| flowfree | 0, 1" not in text
    assert "## Training seeds" not in report.tables({"table1": {"flowfree": row}}, quick=False)


def test_puzzle_share_interval_covers_the_known_share():
    """puzzle_share_ci: the package's estimator with a bootstrap interval over puzzles; on drawn
    outcomes of a known share (odds 0.2 or 0.6, half each: 0.04 of the total 0.24) the interval
    holds it; None where the share is undefined."""
    import numpy as np

    rng = np.random.default_rng(1)
    odds = np.where(rng.random(400) < 0.5, 0.2, 0.6)
    ci = stats.puzzle_share_ci(rng.binomial(4, odds) / 4, 4)
    assert ci["ci95"][0] < 0.04 / 0.24 < ci["ci95"][1] and ci["ci95"][0] <= ci["mean"] <= ci["ci95"][1]
    assert stats.puzzle_share_ci(np.ones(50), 4) is None and stats.puzzle_share_ci(odds, 1) is None
    assert report.fmt_share(None) == "- (undefined)"


def test_tables_give_the_puzzle_share_of_table_1s_videos():
    import numpy as np

    point = {m: {"mean": 0.0, "ci95": [0.0, 0.0]} for m in METRICS}
    rng = np.random.default_rng(2)
    M = len(METRICS)

    def values(success):
        v = np.zeros((len(success), M))
        v[:, METRICS.index("success_rate")] = success
        return scoring.stored(v)

    decided, lottery = (rng.random(200) < 0.5) * 1.0, rng.binomial(4, 0.5, size=200) / 4
    row = {"puzzles": 200, "samples": 4, "sft": point, "rl": point, "gain": point, "baselines": {}}
    pp = {"metrics": list(METRICS), "sft": values(lottery), "rl": values(decided)}
    text = report.tables({"table1": {"maze": {**row, "per_puzzle": pp}}}, quick=False)
    share = text.split("## Whose success")[1]
    line = next(x for x in share.split("\n") if x.startswith("| maze | 200 x 4 |"))
    sft, rl = line.split(" | ")[2:4]
    assert abs(float(sft.split(" ")[0])) < 0.1 and rl.startswith("1.00 [1.00, 1.00]")
    # one sample per puzzle says nothing about it: no table
    one = {**row, "samples": 1, "per_puzzle": pp}
    assert "## Whose success" not in report.tables({"table1": {"maze": one}}, quick=False)


def test_table1_pairs_rl_with_the_checkpoint_its_config_starts_from():
    """Table 1's SFT column is the shipped config's model.init (a recipe may start from another shipped
    checkpoint than <task>-tiny, e.g. sokoban-deep8): the row says which, and it resolves."""
    for task in TASKS:
        start = recipes.start_of(task)
        assert start == recipes.config_of(task)["model"]["init"]
        assert (resolve_checkpoint(start) / "policy.json").is_file()
    point = {m: {"mean": 0.0, "ci95": [0.0, 0.0]} for m in METRICS}
    row = {"puzzles": 4, "samples": 4, "sft": point, "rl": point, "gain": point, "baselines": {}}
    text = report.tables(
        {"table1": {"maze": row, "sokoban": {**row, "sft_checkpoint": "sokoban-deep8"}}}, quick=False
    )
    assert "| maze | 4 x 4 |" in text  # an entry from before the field: the shipped <task>-tiny
    assert "| sokoban (SFT: sokoban-deep8) | 4 x 4 |" in text
    # the reward experiment pairs with the same start and says so the same way
    kinds = {"sft": point, "dense": point, "dense_gain": point, "sparse": point, "sparse_gain": point}
    reward = {"maze": kinds, "flowfree": {**kinds, "sft_checkpoint": "flowfree-deep8", "shipped": "sparse"}}
    text = report.tables({"reward": reward}, quick=False)
    assert "| maze | dense |" in text and "| flowfree (SFT: flowfree-deep8) | sparse |" in text


def test_the_control_table_pairs_more_sft_with_sft_and_with_rl():
    import numpy as np

    M = len(METRICS)
    sft, more = np.full((6, M), 0.06), np.full((6, M), 0.057)
    rl = [np.full((6, M), x) for x in (0.107, 0.07, 0.073)]
    control = {
        "recipe": {"steps": 700, "batch_size": 16, "lr": 3e-4, "warmup_steps": 10, "decay": "cosine"},
        "wall_s": 600.0,
        "rl_wall_s": 690.0,
        "more_sft": stats.bootstrap(more),
        "gain": stats.bootstrap(more - sft),
        "rl_minus_control": stats.bootstrap(rl[0] - more),
        "rl_minus_control_over_seeds": stats.seed_bootstrap(np.stack([v - more for v in rl])),
        "measured": {"date": "2026-11-30", "commit": "abc"},
    }
    row = {"puzzles": 6, "samples": 4, "sft": stats.bootstrap(sft), "rl": stats.bootstrap(rl[0])}
    row |= {"gain": stats.bootstrap(rl[0] - sft), "baselines": {}, "seeds": {"seeds": [0, 1, 2]}}
    row["seeds"] |= {"gain_per_seed": [stats.bootstrap(v - sft) for v in rl], "gain": row["gain"]}
    text = report.tables({"table1": {"maze": {**row, "sft_control": control}}}, quick=False)
    assert "## The control: more SFT for as long as RL trains" in text
    line = next(x for x in text.split("\n") if x.startswith("| maze | 700 x 16, 0.0003 |"))
    cells = line.split(" | ")
    assert cells[2] == "10.0 min, 11.5 min" and cells[3] == "6.0 [6.0, 6.0]" and cells[4] == "5.7 [5.7, 5.7]"
    assert cells[5] == "-0.3 [-0.3, -0.3]" and cells[7] == "5.0 [5.0, 5.0]"  # RL 10.7 - more SFT 5.7
    assert cells[8].startswith("2.6 [") and cells[8].endswith("(seeds 0, 1, 2) |")  # (5.0 + 1.3 + 1.6) / 3
    # a task without a control: no table
    plain = {k: v for k, v in row.items() if k != "seeds"}
    assert "## The control" not in report.tables({"table1": {"maze": plain}}, quick=False)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--seed-tasks", "maze", "chess"], "unknown task(s) chess"),
        (["--tasks", "maze", "chess"], "--tasks: invalid choice: 'chess'"),
        (["--sft-control", "chess"], "--sft-control: unknown task(s) chess"),
        (["--rollout-sampler"], "--rollout-sampler applies to --score only"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--evaluate", "maze-tiny", "runs/maze-rl"], "--evaluate needs --into, an existing folder"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "results"
    with pytest.raises(SystemExit) as exc:
        _script().main([*argv, "--out", str(out)])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def _fake_training(monkeypatch, log: list):
    """training.launch replaced by a run made on the spot: a finished run folder (config, final/, one line
    per update with an evaluation) and a job that has already ended; ``log`` gets (name, threads)."""
    import tempfile
    import time
    import types

    from vrlvr.config import build_config
    from vrlvr.train.grpo_config import GRPOConfig

    def launch(name, cmd, threads, args):
        log.append((name, threads))
        out = Path(cmd[cmd.index("--config") + 2].removeprefix("out_dir="))
        config, overrides = Path(cmd[cmd.index("--config") + 1]), cmd[cmd.index("--no-progress") + 1 :]
        if cmd[3] == "sft":
            _fake_sft_run(out, overrides)
        else:
            steps = build_config(GRPOConfig, config, [*overrides, "out_dir=x"]).optim.steps
            _fake_run(out, config, overrides, last_step=steps)
            # the evaluations before and after training (the hack experiment's curves)
            ev = json.dumps({"success_rate": 0.0, "loose_success_rate": 0.0})
            m = out / "metrics.jsonl"
            m.write_text(
                m.read_text().replace('"eval": {}', f'"eval": {ev}')
                + json.dumps({"step": steps, "eval": json.loads(ev)})
                + "\n"
            )
        proc = types.SimpleNamespace(poll=lambda: 0, wait=lambda: 0)
        return proc, tempfile.TemporaryFile(mode="w+"), time.time()

    monkeypatch.setattr(training, "launch", launch)


def _pool_args(tmp_path, tasks, quick=True, seeds=1, seed_tasks=(), sft_control=()):
    """The options train_planned reads, as main parses them: two jobs, no --reuse."""
    import argparse

    return argparse.Namespace(
        quick=quick,
        out=str(tmp_path),
        reuse=False,
        jobs=2,
        tasks=list(tasks),
        seeds=seeds,
        seed_tasks=list(seed_tasks),
        sft_control=list(sft_control),
    )


def _fake_evaluations(monkeypatch, log: list):
    """pool.launch_evaluation replaced by an evaluation made on the spot: zeros written where
    prescored reads them, under a score_key faked as the checkpoint's and the run's paths; ``log``
    gets ("evaluation", checkpoint, run name, threads)."""
    import hashlib
    import tempfile
    import time
    import types

    def key(checkpoint, run, args):
        where = Path(checkpoint)
        what = f"{where.resolve() if where.exists() else checkpoint}|{Path(run).resolve()}"
        return hashlib.sha256(what.encode()).hexdigest()

    def launch_evaluation(checkpoint, run, threads, args):
        log.append(("evaluation", checkpoint, run.name, threads))
        values = [[0.0] * len(METRICS)] * 4
        (args.prescored / f"{key(checkpoint, run, args)}.json").write_text(json.dumps({"values": values}))
        proc = types.SimpleNamespace(poll=lambda: 0, wait=lambda: 0)
        return proc, tempfile.TemporaryFile(mode="w+"), time.time()

    monkeypatch.setattr(scoring, "score_key", key)
    monkeypatch.setattr(pool, "launch_evaluation", launch_evaluation)


def test_jobs_train_every_run_of_the_plan_first_and_the_experiments_none(tmp_path, monkeypatch):
    """--jobs N trains up front what planned() lists (the experiments' own recipes) and then evaluates
    what scores_planned() lists; the experiments then ask for exactly those runs, with the same
    overrides, and train nothing more, and read every policy's values from the pool's evaluations
    (each one of them), evaluating nothing themselves. Table 4's pair trains first, alone, at half
    the cores each; the other runs at cores // N threads, the evaluations after every run started."""
    import types

    monkeypatch.setattr(training, "cores", lambda: 4)
    trained = []
    _fake_training(monkeypatch, trained)
    _fake_evaluations(monkeypatch, trained)
    args = _pool_args(tmp_path, list(TASKS), quick=False, seeds=3, seed_tasks=["maze"], sft_control=["maze"])
    todo = ["table1", "table4", "reward", "hack"]
    pool.train_planned(todo, args)
    runs = [x for x in trained if x[0] != "evaluation"]
    evaluations = [x[1:] for x in trained if x[0] == "evaluation"]
    assert trained[: len(runs)] == runs  # no evaluation before the last run started
    names = [n for n, _ in runs]
    assert names[:2] == ["maze-esf-first-half", "maze-esf-all-steps"] and runs[0][1] == 2
    assert sorted(names[2:]) == sorted(
        ["maze-rl", "maze-rl-seed1", "maze-rl-seed2", "maze-sft-more", "flowfree-rl", "sokoban-rl"]
        + ["maze-rl-dense", "flowfree-rl-dense", "maze-rl-paper-nokl"]
    )
    assert {t for _, t in runs[2:]} == {2}  # 4 cores, 2 at a time
    # the costliest first: 8-block RL runs before 4-block ones, the SFT control last
    assert (
        set(names[2:5]) == {"flowfree-rl", "sokoban-rl", "flowfree-rl-dense"} and names[-1] == "maze-sft-more"
    )
    final = {n: str(tmp_path.resolve() / "runs" / n / "final") for n in names}
    assert sorted((ck, run) for ck, run, _ in evaluations) == sorted(
        [("maze-tiny", "maze-rl"), ("flowfree-deep8", "flowfree-rl"), ("sokoban-deep8", "sokoban-rl")]
        + [(final[n], n) for n in names if n not in ("maze-sft-more", "maze-rl-paper-nokl")]
        + [(final["maze-sft-more"], "maze-rl")]  # the control, on table 1's puzzles
    )
    assert {t for *_, t in evaluations} == {2}
    # the deepest policies first (the 8-block starts; the fake runs' finals count as 4 blocks)
    assert {ck for ck, *_ in evaluations[:2]} == {"flowfree-deep8", "sokoban-deep8"}

    # the experiments find every run made (any further launch would be a run missing from the plan)
    # and every policy evaluated (any evaluation of their own would be one missing from the plan)
    monkeypatch.setattr(training, "launch", lambda name, *a: pytest.fail(f"{name} trained outside the plan"))
    monkeypatch.setattr(
        scoring, "evaluated", lambda ck, run, a: pytest.fail(f"{ck} evaluated outside the plan")
    )
    read = set()
    prescored = scoring.prescored
    monkeypatch.setattr(
        scoring, "prescored", lambda ck, run, a: read.add((str(ck), Path(run).name)) or prescored(ck, run, a)
    )
    keys = [types.SimpleNamespace(key=f"puzzle-{k}") for k in range(4)]  # held-out puzzles, by key
    sampling = types.SimpleNamespace(sampling=types.SimpleNamespace(steps=10, shift=1.0))
    task = types.SimpleNamespace(name="maze")
    monkeypatch.setattr(scoring, "heldout_set", lambda run, args: (task, keys, None, sampling))
    monkeypatch.setattr(training, "curves", lambda run, args: None)
    from vrlvr.train import data, evaluate

    monkeypatch.setattr(evaluate, "evaluate_baselines", lambda *a: {})
    monkeypatch.setattr(data, "read_heldout", lambda run, task: {"keys": [k.key for k in keys]})
    for name in todo:
        getattr(experiments, f"exp_{name}")(args)
    assert read == {(ck, run) for ck, run, _ in evaluations}  # each of the pool's evaluations is used


def test_jobs_start_no_new_run_after_one_fails_and_report_it(tmp_path, monkeypatch):
    """A run that fails stops the pool from starting more; those running finish; the script exits
    with the failure's log."""
    import subprocess
    import tempfile
    import time

    started = []

    def launch(name, cmd, threads, args):
        started.append(name)
        code = 3 if name == "flowfree-rl" else 0
        proc = subprocess.Popen(
            [sys.executable, "-c", f"print('log of {name}'); raise SystemExit({code})"],
            stdout=(log := tempfile.TemporaryFile(mode="w+")),
            stderr=log,
            text=True,
        )
        return proc, log, time.time()

    monkeypatch.setattr(training, "launch", launch)
    evaluations = []
    _fake_evaluations(monkeypatch, evaluations)
    args = _pool_args(tmp_path, ["maze", "flowfree", "sokoban"])
    with pytest.raises(SystemExit) as exc:
        pool.train_planned(["table1"], args)
    assert "run flowfree-rl failed (exit 3)" in str(exc.value) and "log of flowfree-rl" in str(exc.value)
    # the two 8-block runs (the costliest) start first; maze-rl, third, never starts
    assert sorted(started) == ["flowfree-rl", "sokoban-rl"]
    assert set(args.runs_made) == set(started) - {"flowfree-rl"}
    # an evaluation starts only on runs made (sokoban's, if it landed before flowfree failed)
    assert {run for _, _, run, _ in evaluations} <= {"sokoban-rl"}


def test_the_pools_evaluation_process_gives_what_the_experiment_would(tmp_path):
    """``--evaluate`` (the pool's evaluation process, one thread) writes a checkpoint's per-puzzle
    values where prescored finds them: exactly what the experiment's own evaluation gives in this
    process, under the key of that checkpoint, those puzzles and that sampler only."""
    import argparse

    import numpy as np

    run = tmp_path / "runs" / "maze-rl"
    _fake_run(run, SCRIPT.parent.parent / "configs" / "maze-tiny.yaml", [], last_step=1)
    shutil.copy(resolve_checkpoint("maze-tiny") / "heldout.json", run / "heldout.json")
    into = tmp_path / "evaluations"
    into.mkdir()
    cmd = [sys.executable, str(SCRIPT), "--evaluate", "maze-tiny", str(run), "--into", str(into)]
    res = subprocess.run(
        [*cmd, "--out", str(tmp_path), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    args = argparse.Namespace(quick=True, out=str(tmp_path), prescored=into)
    got = scoring.prescored("maze-tiny", run, args)
    assert got is not None and got.shape == (QUICK_PUZZLES, len(METRICS))
    assert np.array_equal(got, scoring.evaluated("maze-tiny", run, args), equal_nan=True)
    assert scoring.prescored(run / "final", run, args) is None  # another checkpoint: not evaluated
    assert scoring.prescored("maze-tiny", run, argparse.Namespace(**{**vars(args), "quick": False})) is None
    assert scoring.prescored("maze-tiny", run, argparse.Namespace(quick=True, out=str(tmp_path))) is None

    # an evaluation that fails is reported with its log's end
    job = pool.launch_evaluation("maze-tiny", tmp_path / "nowhere", 1, args)
    failure = training.failure_of(job, f"evaluating maze-tiny on {tmp_path / 'nowhere'}'s puzzles")
    assert failure and "nowhere's puzzles failed (exit 1)" in failure
    assert "config.yaml" in failure


@pytest.mark.parametrize("todo, threads", [(["table1"], 2), (["table4", "table1"], 1)])
def test_jobs_give_a_run_alone_every_core_and_share_them_with_ready_evaluations(
    tmp_path, monkeypatch, todo, threads
):
    """One run to train and nothing else to do until it ends: it takes every core; with evaluations
    ready beside it (table 4's, whose pair started and ended first) it takes its share, the
    evaluations the rest."""

    monkeypatch.setattr(training, "cores", lambda: 2)
    log = []
    _fake_training(monkeypatch, log)
    _fake_evaluations(monkeypatch, log)
    args = _pool_args(tmp_path, ["sokoban"])
    pool.train_planned(todo, args)
    assert ("sokoban-rl", threads) in log
    evaluations = [x for x in log if x[0] == "evaluation"]
    assert {run for _, _, run, _ in evaluations} == {"sokoban-rl"} | (
        {"maze-esf-first-half", "maze-esf-all-steps"} if "table4" in todo else set()
    )
    assert {t for *_, t in evaluations} == {1}
