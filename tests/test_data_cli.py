"""`vrlvr data`: files, metadata, seeds per split, exclusion, parallel workers, errors."""

import json
import os

import numpy as np
import pytest

from vrlvr import tasks
from vrlvr.cli import main
from vrlvr.tasks.dataset import puzzle_seed
from vrlvr.tasks.video_io import read_video


def _meta(out):
    with open(os.path.join(out, "metadata.jsonl")) as fh:
        return [json.loads(line) for line in fh]


@pytest.mark.parametrize("task_name", ["maze", "flowfree", "sokoban"])
def test_data_writes_consistent_samples(tmp_path, task_name, capsys):
    out = str(tmp_path / task_name)
    rc = main(
        [
            "data",
            "--task",
            task_name,
            "--n",
            "3",
            "--seed",
            "5",
            "--out",
            out,
            "--cell-px",
            "4",
            "--num-frames",
            "9",
            "--quiet",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 3 and summary["task"] == task_name
    task = tasks.get(task_name)
    lines = _meta(out)
    assert [m["index"] for m in lines] == [0, 1, 2]
    sizes = task.default_sizes
    for i, m in enumerate(lines):
        assert m["seed"] == puzzle_seed(5 + i, "train") == 2 * (5 + i)
        assert m["size"] == sizes[i % len(sizes)]
        for key in (
            "id",
            "task",
            "prompt",
            "puzzle",
            "first_frame",
            "video",
            "solution",
            "layout",
            "canonical_key",
        ):
            assert key in m
        with open(os.path.join(out, m["puzzle"])) as fh:
            puzzle = task.from_text(fh.read())
        assert puzzle == task.generate(m["seed"], m["size"])
        assert task.check_solution(puzzle, m["solution"]).success
        assert m["canonical_key"] == task.canonical_key(puzzle)
        assert m["prompt"] == task.prompt(puzzle)
        R, C = task.grid_shape(puzzle)
        assert m["layout"] == {
            "grid_shape": [R, C],
            "height": 4 * R,
            "width": 4 * C,
            "bbox": [0.0, 0.0, 4.0 * R, 4.0 * C],
        }
        frames = task.render(puzzle, m["solution"], num_frames=9, cell_px=4)
        import imageio.v2 as imageio

        png = imageio.imread(os.path.join(out, m["first_frame"]))
        assert np.array_equal(png[..., :3], frames[0])
        video = read_video(os.path.join(out, m["video"]))
        H, W = 4 * R + (4 * R) % 2, 4 * C + (4 * C) % 2
        assert video.shape == (9, H, W, 3)
        # lossy, but close: mean error of a few levels on flat 4 px cells
        assert np.abs(video[:, : 4 * R, : 4 * C].astype(int) - frames).mean() < 12
        assert m["num_actions"] == len(task.solution_actions(puzzle, m["solution"]))


def test_train_and_test_never_share_seeds_and_exclude(tmp_path, capsys):
    test_dir, train_dir = str(tmp_path / "test"), str(tmp_path / "train")
    common = [
        "--task",
        "maze",
        "--sizes",
        "7",
        "--seed",
        "0",
        "--no-video",
        "--cell-px",
        "2",
        "--num-frames",
        "4",
        "--quiet",
        "--option",
        "distribution=classic",  # the classic 7x7 mazes (< 200 distinct) repeat often
    ]
    assert main(["data", *common, "--n", "30", "--split", "test", "--out", test_dir]) == 0
    assert (
        main(["data", *common, "--n", "30", "--split", "train", "--out", train_dir, "--exclude", test_dir])
        == 0
    )
    capsys.readouterr()
    test_meta, train_meta = _meta(test_dir), _meta(train_dir)
    assert all(m["seed"] % 2 == 1 for m in test_meta) and all(m["seed"] % 2 == 0 for m in train_meta)
    test_keys = {m["canonical_key"] for m in test_meta}
    assert not test_keys & {m["canonical_key"] for m in train_meta}
    # 7x7 mazes repeat often: the exclusion really removed some
    summary = json.load(open(os.path.join(train_dir, "dataset.json")))
    assert summary["skipped"] > 0 and len(train_meta) == 30
    assert not os.path.exists(os.path.join(train_dir, "videos"))


def test_workers_give_identical_output(tmp_path, capsys):
    outs = []
    for workers in (1, 2):
        out = str(tmp_path / f"w{workers}")
        assert (
            main(
                [
                    "data",
                    "--task",
                    "sokoban",
                    "--n",
                    "4",
                    "--out",
                    out,
                    "--workers",
                    str(workers),
                    "--cell-px",
                    "3",
                    "--num-frames",
                    "5",
                    "--theme",
                    "random",
                    "--quiet",
                    "--option",
                    "boxes=2",
                ]
            )
            == 0
        )
        outs.append(_meta(out))
    capsys.readouterr()
    assert outs[0] == outs[1]
    assert all(
        len(tasks.get("sokoban").from_text(open(tmp_path / "w1" / m["puzzle"]).read()).boxes) == 2
        for m in outs[0]
    )
    # odd frame sizes (7 px wide boards at 3 px) are padded to even for yuv420p
    m = outs[0][1]
    v = read_video(tmp_path / "w2" / m["video"])
    assert v.shape[1] % 2 == 0 and v.shape[2] % 2 == 0


def test_wan_resolution_layout(tmp_path, capsys):
    out = str(tmp_path / "wan")
    assert main(["data", "--task", "flowfree", "--n", "1", "--out", out, "--num-frames", "3", "--quiet"]) == 0
    capsys.readouterr()
    m = _meta(out)[0]
    assert m["layout"]["height"] == 480 and m["layout"]["width"] == 832
    assert read_video(os.path.join(out, m["video"])).shape == (3, 480, 832, 3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "nope", "--n", "1"], "unknown task"),
        (["--task", "maze", "--n", "0"], "--n must be >= 1"),
        (["--task", "maze", "--n", "1", "--sizes", "8"], "odd number"),
        (["--task", "maze", "--n", "1", "--cell-px", "4", "--height", "480", "--width", "832"], "not both"),
        (["--task", "maze", "--n", "1", "--height", "480"], "go together"),
        (["--task", "maze", "--n", "1", "--theme", "sepia"], "unknown theme"),
    ],
)
def test_errors_exit_2(tmp_path, capsys, argv, message):
    rc = main(["data", *argv, "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_exclusion_that_leaves_too_few_puzzles_fails_clearly(tmp_path, capsys):
    out = str(tmp_path / "u")
    rc = main(
        [
            "data",
            "--task",
            "maze",
            "--n",
            "400",
            "--sizes",
            "7",
            "--unique",
            "--no-video",
            "--cell-px",
            "1",
            "--num-frames",
            "2",
            "--out",
            out,
            "--quiet",
            "--option",
            "endpoints=corners",
        ]
    )
    assert rc == 2
    assert "too few" in capsys.readouterr().err


def test_video_io_round_trip_and_errors(tmp_path):
    from vrlvr.tasks.video_io import even_pad, write_mp4

    frames = np.zeros((3, 7, 9, 3), np.uint8)
    frames[:, :, 4:] = (255, 0, 0)
    assert even_pad(frames).shape == (3, 8, 10, 3)
    write_mp4(tmp_path / "v.mp4", frames, crf=0)
    back = read_video(tmp_path / "v.mp4")
    assert back.shape == (3, 8, 10, 3)
    assert np.abs(back[:, 2:5, 6:8].astype(int) - (255, 0, 0)).max() < 40  # red stays red inside
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "bad.mp4", frames.astype(np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        write_mp4(tmp_path / "bad.mp4", frames[:0])
