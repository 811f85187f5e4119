"""`vrlvr eval` and `vrlvr sample` on a tiny checkpoint made by `vrlvr sft`."""

import json

import numpy as np
import pytest

from vrlvr.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("sft") / "run"
    rc = main(
        [
            "sft",
            "--no-progress",
            f"out_dir={out}",
            "optim.steps=2",
            "optim.batch_size=2",
            "heldout.n=12",
            "eval.n=2",
            "sampling.steps=2",
            "data.num_frames=5",
            "threads=1",
            *tiny_model,
        ]
    )
    assert rc == 0
    return out / "final"


def run_eval(checkpoint, out, *extra):
    """`vrlvr eval` on the checkpoint from seed 100000, the report written to out."""
    args = ["--checkpoint", str(checkpoint), "--seed", "100000", "--json", str(out), "--no-progress"]
    return main(["eval", *args, "--threads", "1", *extra])


def test_eval_writes_the_promised_json(checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    rc = run_eval(checkpoint, out, "--task", "maze", "--n", "6")
    assert rc == 0
    r = json.loads(out.read_text())
    for key in (
        "task",
        "n",
        "success_rate",
        "precision",
        "recall",
        "f1",
        "mean_reward",
        "loose_success_rate",
        "components",
        "per_size",
        "n_distinct",
    ):
        assert key in r, key
    assert r["task"] == "maze" and r["n"] == 6 and r["n_distinct"] == 6 and r["heldout_checked"] is True
    assert 0.0 <= r["mean_reward"] <= 1.0 and 0.0 <= r["success_rate"] <= 1.0
    assert r["per_size"]["7"]["n"] == 6 and "paper_success" in r["components"]


def test_eval_only_scores_heldout_puzzles(checkpoint, tmp_path, capsys):
    # the checkpoint held out 12 puzzles from seed 100000: asking for 20 yields only those 12
    out = tmp_path / "e.json"
    rc = run_eval(checkpoint, out, "--n", "20", "--steps", "1")
    assert rc == 0
    assert json.loads(out.read_text())["n"] == 12
    assert "12 distinct held-out puzzles available of 20" in capsys.readouterr().err


def test_sample_writes_videos_and_verdicts(checkpoint, tmp_path):
    from vrlvr.tasks.video_io import read_video

    rc = main(
        [
            "sample",
            "--checkpoint",
            str(checkpoint),
            "--task",
            "maze",
            "--n",
            "2",
            "--out",
            str(tmp_path / "s"),
            "--no-progress",
            "--threads",
            "1",
            "--scale",
            "2",
        ]
    )
    assert rc == 0
    rows = [json.loads(x) for x in (tmp_path / "s" / "verdicts.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"success", "reward", "components", "video"} <= set(rows[0])
    video = read_video(tmp_path / "s" / rows[0]["video"])
    from vrlvr.commands.sample import label_bar

    bar = label_bar(56, 56, 2).shape[0]  # the GENERATED / GROUND TRUTH labels on top
    height = 56 + bar + (56 + bar) % 2  # 28 px * 2 under the labels, padded to even for yuv420p
    assert video.shape == (5, height, 114, 3)  # (28 + 1 + 28) px * 2 wide


def test_sample_with_an_sde_window_samples_as_the_trainer(checkpoint, tmp_path, capsys):
    """`vrlvr sample --sde-window` takes the trainer's rollout sampler (as `vrlvr eval` does): the
    same seed gives other videos than Euler steps, and the printed summary names the sampler."""
    from vrlvr.tasks.video_io import read_video

    def sample(out, *extra):
        argv = ["sample", "--checkpoint", str(checkpoint), "--n", "2", "--out", str(out)]
        return main([*argv, "--no-progress", "--threads", "1", "--scale", "1", *extra])

    assert sample(tmp_path / "ode") == 0
    assert json.loads(capsys.readouterr().out)["sampler"] == "ode"
    assert sample(tmp_path / "sde", "--sde-window", "0", "1", "--eta", "1.0", "--mode", "cps") == 0
    assert json.loads(capsys.readouterr().out)["sampler"] == {"sde_window": [0, 1], "eta": 1.0, "mode": "cps"}
    name = json.loads((tmp_path / "ode" / "verdicts.jsonl").read_text().splitlines()[0])["video"]
    assert not np.array_equal(read_video(tmp_path / "ode" / name), read_video(tmp_path / "sde" / name))
    for bad, msg in (
        (["--eta", "0.5"], "--eta and --mode set the SDE steps of --sde-window"),
        (["--sde-window", "0", "3"], "0 <= start < end <= 2"),  # the checkpoint samples 2 steps
    ):
        assert sample(tmp_path / "bad", *bad) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_eval_samples_pool_the_videos_and_report_pass_at_k(checkpoint, tmp_path, capsys):
    out = tmp_path / "k.json"
    rc = run_eval(checkpoint, out, "--n", "4", "--samples", "3", "--steps", "1")
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["n"] == 4 and r["videos"] == 12 and r["samples"] == 3 and r["per_size"]["7"]["n"] == 12
    # a puzzle counts for pass@k when any of its samples succeeds: never below the mean success
    assert 0.0 <= r["success_rate"] <= r["pass_at_k"] <= 1.0
    share = r["success_puzzle_share"]  # None when no puzzle (or every one) is solved
    assert share is None or -0.5 <= share <= 1.0
    err = capsys.readouterr().err
    assert err.count("vrlvr eval: 12 videos x") == 1 and "4 videos x" not in err  # one work estimate
    assert run_eval(checkpoint, tmp_path / "bad.json", "--samples", "0") == 2
    assert "--samples must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()


def test_pass_at_k_counts_puzzles_solved_by_any_sample():
    from vrlvr.commands.eval import pass_at_k
    from vrlvr.tasks.base import Verdict

    def rec(ok):
        return {"verdict": Verdict(success=ok, reward=float(ok))}

    # 3 puzzles x 2 samples: the first solved once, the second never, the third twice
    records = [[rec(True), rec(False), rec(True)], [rec(False), rec(False), rec(True)]]
    assert pass_at_k(records) == pytest.approx(2 / 3)
    assert pass_at_k([[rec(False)] * 3]) == 0.0


def test_puzzle_share_tells_a_puzzle_decided_outcome_from_a_lottery():
    """puzzle_share (ICC(1) of 0/1 outcomes within a puzzle) on drawn outcomes whose answer is known:
    1 when each puzzle is always or never solved, about 0 when every puzzle has the same odds, the
    between-puzzle share of the variance for a mixture; undefined without a within-puzzle spread."""
    import numpy as np

    from vrlvr.train.evaluate import puzzle_share

    rng = np.random.default_rng(1)
    k, n = 4, 4000
    decided = (rng.random(n) < 0.3).astype(float)  # the k videos of a puzzle all succeed or all fail
    assert puzzle_share(decided, k) == pytest.approx(1.0)
    lottery = rng.binomial(k, 0.14, size=n) / k  # every puzzle the same odds
    assert abs(puzzle_share(lottery, k)) < 0.03
    # odds 0.2 or 0.6, half each: between-puzzle variance 0.04 of the total 0.4 x 0.6
    mixed = rng.binomial(k, np.where(rng.random(n) < 0.5, 0.2, 0.6)) / k
    assert puzzle_share(mixed, k) == pytest.approx(0.04 / 0.24, abs=0.03)
    # the lowest it can go: every puzzle solved exactly half the time
    assert puzzle_share(np.full(10, 0.5), k) == pytest.approx(-1 / (k - 1))
    assert puzzle_share(lottery, 1) is None  # one sample: nothing within a puzzle to compare with
    assert puzzle_share(np.zeros(50), k) is None and puzzle_share(np.ones(50), k) is None
    assert puzzle_share([0.25], k) is None  # one puzzle
    assert puzzle_share([0.25, np.nan, 0.5, 0.0], k) == puzzle_share([0.25, 0.5, 0.0], k)  # NaN skipped


def test_success_puzzle_share_reads_the_records():
    from vrlvr.commands.eval import success_puzzle_share
    from vrlvr.tasks.base import Verdict

    def rec(ok):
        return {"verdict": Verdict(success=ok, reward=float(ok))}

    # 3 puzzles x 2 samples, each puzzle's pair agreeing: the puzzle decides everything
    records = [[rec(True), rec(False), rec(True)], [rec(True), rec(False), rec(True)]]
    assert success_puzzle_share(records) == pytest.approx(1.0)
    assert success_puzzle_share([[rec(True), rec(False)]]) is None  # one sample per puzzle


def test_eval_errors_are_clear(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "missing"), "--task", "maze"]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", "sokoban-tinyy", "--task", "sokoban"]) == 2
    assert "shipped" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["maze", "flowfree", "sokoban"])
@pytest.mark.parametrize("geometry", [{"cell_px": 4}, {"cell_px": None, "height": 48, "width": 80}])
def test_first_frames_equal_the_rendered_frame0_without_solving(name, geometry, monkeypatch):
    import numpy as np

    from vrlvr import tasks
    from vrlvr.train.data import VideoSpec

    task = tasks.get(name)
    ps = [task.generate(s, 7 if name != "flowfree" else 5) for s in range(3)]
    spec = VideoSpec(num_frames=5, **geometry)
    want = spec.render(task, ps, [task.solve(p) for p in ps], [0, 1, 2])[:, 0]

    def no_solving(puzzle):
        raise AssertionError("first_frames solved a puzzle")

    monkeypatch.setattr(task, "solve", no_solving)
    got = spec.first_frames(task, ps, [0, 1, 2])
    assert got.shape == want.shape and np.array_equal(got, want)


def test_the_sde_window_sampler_is_the_trainers_rollout(checkpoint):
    """generate_videos with an SdeWindow draws, from its one generator, what the trainer's rollout
    of one video draws from that video's generator (the initial noise, then one normal per window
    step), so with the same seed both samplers must give the same video; Euler elsewhere."""
    import numpy as np
    import torch

    from vrlvr import tasks
    from vrlvr.models import load_policy
    from vrlvr.models.sampling import SdeWindow, generate_videos
    from vrlvr.models.schedule import flow_sigmas
    from vrlvr.train.data import VideoSpec, eval_puzzles
    from vrlvr.train.rollout import GroupBucket, rollout_seed, sample_rollouts

    maze = tasks.get("maze")
    policy = load_policy(checkpoint).eval()
    video = VideoSpec(5, 4)
    (p,), _ = eval_puzzles(maze, [7], 1, 100000)
    first = video.first_frames(maze, [p.puzzle], [0])
    prompt = maze.prompt(p.puzzle)
    T, window = 4, (1, 3)
    bucket = GroupBucket(maze, [0], [p.puzzle], [0], first, [prompt])
    r = sample_rollouts(policy, bucket, 1, 5, flow_sigmas(T, 1.0), window, 0.7, "sde", 7, 3, 1)
    seed = rollout_seed(7, 3, 0, 0)
    got = generate_videos(policy, first, [prompt], 5, T, 1.0, seed=seed, sde=SdeWindow(*window, 0.7, "sde"))
    # the Euler steps round their step size once in fp64 (rollout) or in fp32 (sampling): one level
    assert np.abs(got.astype(int) - r.videos.astype(int)).max() <= 1
    assert np.array_equal(got[:, 0], first)
    ode = generate_videos(policy, first, [prompt], 5, T, 1.0, seed=seed)
    assert not np.array_equal(got, ode)  # the window's noise changed the video
    again = generate_videos(policy, first, [prompt], 5, T, 1.0, seed=seed, sde=SdeWindow(*window, 0.7, "sde"))
    assert np.array_equal(got, again)
    with pytest.raises(ValueError, match=r"0 <= start < end <= 4"):
        generate_videos(policy, first, [prompt], 5, T, 1.0, sde=SdeWindow(2, 5))
    with pytest.raises(ValueError, match="eta must be > 0"):
        generate_videos(policy, first, [prompt], 5, T, 1.0, sde=SdeWindow(0, 2, 0.0))
    assert torch.is_grad_enabled()  # sampling does not leak no_grad


def test_eval_with_an_sde_window_reports_its_sampler(checkpoint, tmp_path, capsys):
    out = tmp_path / "sde.json"
    assert run_eval(checkpoint, out, "--n", "3", "--sde-window", "0", "1", "--eta", "0.5") == 0
    r = json.loads(out.read_text())
    assert r["sampling"]["sampler"] == {"sde_window": [0, 1], "eta": 0.5, "mode": "sde"}
    assert 0.0 <= r["success_rate"] <= 1.0 and r["n"] == 3
    plain = tmp_path / "ode.json"
    assert run_eval(checkpoint, plain, "--n", "3") == 0
    assert json.loads(plain.read_text())["sampling"]["sampler"] == "ode"
    capsys.readouterr()
    for bad, msg in (
        (["--sde-window", "1", "1"], "--sde-window/--eta: the SDE window must be"),
        (["--sde-window", "0", "3"], "0 <= start < end <= 2"),  # the checkpoint samples 2 steps
        (["--sde-window", "0", "1", "--eta", "0"], "eta must be > 0"),
        (["--eta", "0.5"], "--eta and --mode set the SDE steps of --sde-window"),
    ):
        assert run_eval(checkpoint, tmp_path / "bad.json", "--n", "2", *bad) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()
