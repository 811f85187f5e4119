"""`vrlvr window` / vrlvr.train.noise_profile: per sampling step, the outcome spread of rollouts that
share their start and take SDE noise at that step only."""

import json
from functools import partial

import numpy as np
import pytest

from vrlvr import tasks
from vrlvr.cli import main
from vrlvr.models import load_policy
from vrlvr.models.schedule import flow_sigmas
from vrlvr.train.data import VideoSpec, eval_puzzles
from vrlvr.train.evaluate import verify_group
from vrlvr.train.noise_profile import noise_profile
from vrlvr.train.rollout import GroupBucket, sample_rollouts


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("sft") / "run"
    args = ["sft", "--no-progress", f"out_dir={out}", "optim.steps=2", "optim.batch_size=2", "heldout.n=12"]
    args += ["eval.n=2", "sampling.steps=3", "data.num_frames=5", "threads=1", *tiny_model]
    assert main(args) == 0
    return out / "final"


@pytest.mark.parametrize("block", [1, 4])
def test_profile_matches_rollouts_made_by_hand(checkpoint, block):
    """The reference: the trainer's rollout with the window [k, k + 1) and a shared start, verified,
    and the within-group statistics computed directly."""
    maze = tasks.get("maze")
    policy = load_policy(checkpoint).eval()
    video = VideoSpec(5, 4)
    puzzles, _ = eval_puzzles(maze, [7], 3, 100000)
    G, T = 3, 3
    profile = partial(
        noise_profile,
        policy,
        maze,
        puzzles,
        video,
        T,
        1.0,
        group_size=G,
        seed=5,
        progress=False,
        noise_block=block,
    )
    rows = profile(batch_size=4)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[0]["sigma"] == pytest.approx(1.0)
    ps = [p.puzzle for p in puzzles]
    first = video.first_frames(maze, ps, [0] * len(ps))
    for k in range(T):
        succ, f1 = [], []
        for i, p in enumerate(puzzles):  # one puzzle at a time: the batch layout must not matter
            bucket = GroupBucket(maze, [p.seed], [p.puzzle], [0], first[i : i + 1], [maze.prompt(p.puzzle)])
            r = sample_rollouts(
                policy, bucket, G, 5, flow_sigmas(T, 1.0), (k, k + 1), 0.7, "sde", 5, 0, G, True, block
            )
            vs = verify_group(maze, [p.puzzle] * G, r.videos, 0)
            succ.append([float(v.success) for v in vs])
            f1.append([float(v.f1 or 0.0) for v in vs])
        succ, f1 = np.array(succ), np.array(f1)
        assert rows[k]["success_rate"] == pytest.approx(succ.mean())
        assert rows[k]["groups_varying"] == pytest.approx(np.mean(succ.std(1) > 0))
        assert rows[k]["f1_std"] == pytest.approx(f1.std(1).mean(), abs=1e-9)
    # only the chosen steps
    again = profile(steps=[2])
    assert again == [rows[2]]


def test_profile_refuses_what_it_cannot_measure(checkpoint):
    maze = tasks.get("maze")
    policy = load_policy(checkpoint).eval()
    puzzles, _ = eval_puzzles(maze, [7], 1, 100000)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        noise_profile(policy, maze, puzzles, VideoSpec(5, 4), 3, group_size=1, progress=False)
    with pytest.raises(ValueError, match=r"steps \[3\] are outside \[0, 3\)"):
        noise_profile(policy, maze, puzzles, VideoSpec(5, 4), 3, steps=[3], progress=False)


def test_window_command_writes_the_profile(checkpoint, tmp_path, capsys):
    out = tmp_path / "profile.json"
    args = ["window", "--checkpoint", str(checkpoint), "--n", "2", "--group", "2", "--seed", "100000"]
    assert (
        main(
            [
                *args,
                "--profile-steps",
                "0",
                "2",
                "--json",
                str(out),
                "--no-progress",
                "--threads",
                "1",
                "--noise-block",
                "4",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert (
        report["task"] == "maze" and report["n"] == 2 and report["group"] == 2 and report["noise_block"] == 4
    )
    assert [r["step"] for r in report["profile"]] == [0, 2]
    for r in report["profile"]:
        assert 0 <= r["groups_varying"] <= 1 and r["success_std"] >= 0
    assert "groups varying" in capsys.readouterr().err
    for bad, msg in (
        (["--group", "1"], "--group must be >= 2"),
        (["--eta", "0"], "--eta must be > 0"),
        (["--noise-block", "0"], "--noise-block must be >= 1"),
    ):
        assert main(["window", "--checkpoint", str(checkpoint), "--n", "2", *bad, "--no-progress"]) != 0
        assert f"vrlvr window: error: {msg}" in capsys.readouterr().err
    # puzzles the checkpoint never held out (another size): refused in one line, nothing generated
    assert main(["window", "--checkpoint", str(checkpoint), "--n", "2", "--sizes", "9", "--no-progress"]) != 0
    assert "error: no held-out maze puzzles of sizes [9]" in capsys.readouterr().err
