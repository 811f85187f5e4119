"""Videos end to end: solution videos through MP4 (libx264) and pixel noise verify as success; the
puzzle held still, the video reversed and another puzzle's video fail; the batch form; the CLI."""

import json

import numpy as np
import pytest

from vrlvr import tasks, verify
from vrlvr.tasks.video_io import read_video, write_mp4

CASES = [("maze", 11), ("flowfree", 6), ("sokoban", 8)]
CELL_PX = 8


def _noisy(frames, seed, sigma=6.0):
    rng = np.random.default_rng(seed)
    noisy = frames.astype(np.int16) + rng.normal(0, sigma, frames.shape).astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _mp4_roundtrip(tmp_path, frames, name):
    path = tmp_path / f"{name}.mp4"
    write_mp4(path, frames, crf=23)
    back = read_video(path)
    assert back.shape == frames.shape
    return back


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request):
    name, size = request.param
    task = tasks.get(name)
    puzzle = task.generate(seed=11, size=size)
    other = task.generate(seed=12, size=size)
    return task, puzzle, other


@pytest.mark.parametrize("theme", [0, 4])
def test_solution_video_through_mp4_and_noise_verifies(case, tmp_path, theme):
    task, puzzle, _ = case
    frames = task.render(puzzle, num_frames=33, cell_px=CELL_PX, theme=theme)
    back = _noisy(_mp4_roundtrip(tmp_path, frames, task.name), seed=theme)
    assert not np.array_equal(back, frames)  # the codec and the noise really changed pixels
    v = verify.verify_video(task, puzzle, back, theme=theme)
    assert v.success, v.reason
    assert v.reward >= 0.95 and v.f1 == 1.0
    # the Task method is the same verifier, and theme=None finds the theme
    assert task.verify_video(puzzle, back).success


def test_held_still_reversed_and_other_puzzle_fail(case, tmp_path):
    task, puzzle, other = case
    frames = task.render(puzzle, num_frames=33, cell_px=CELL_PX)
    still = np.repeat(frames[:1], 33, axis=0)
    wrong = task.render(other, num_frames=33, cell_px=CELL_PX)
    if wrong.shape != frames.shape:  # another puzzle of another size: use the same frame size
        wrong = task.render(other, num_frames=33, height=frames.shape[1], width=frames.shape[2])
    for label, video in (("still", still), ("reversed", frames[::-1]), ("other puzzle", wrong)):
        back = _noisy(_mp4_roundtrip(tmp_path, np.ascontiguousarray(video), f"{task.name}-{label}"), seed=1)
        v = verify.verify_video(task, puzzle, back)
        assert not v.success, f"{task.name}: the {label} video passed"
        assert v.reward < 0.9, f"{task.name}: the {label} video earned {v.reward}"


def test_odd_frame_sides_padded_by_the_mp4_writer_still_verify(tmp_path):
    maze = tasks.get("maze")
    puzzle = maze.generate(seed=2, size=7)
    frames = maze.render(puzzle, num_frames=12, cell_px=5)  # 35 x 35: padded to 36 x 36 for yuv420p
    back = _mp4_roundtrip_padded(tmp_path, frames)
    assert back.shape[1:3] == (36, 36)
    v = verify.verify_video(maze, puzzle, back)
    assert v.success and v.reward >= 0.95, v.reason


def _mp4_roundtrip_padded(tmp_path, frames):
    path = tmp_path / "odd.mp4"
    write_mp4(path, frames, crf=23)
    return read_video(path)


def test_verify_batch_matches_single_verdicts_with_one_parse_per_geometry(monkeypatch):
    maze = tasks.get("maze")
    small = [maze.generate(seed=s, size=9) for s in range(3)]
    big = maze.generate(seed=5, size=13)
    puzzles = [small[0], small[0], small[1], big, small[2]]
    videos = [maze.render(p, num_frames=17, cell_px=CELL_PX) for p in puzzles]
    videos[1] = np.ascontiguousarray(videos[1][::-1])  # a failing rollout in the group
    singles = [verify.verify_video(maze, p, v) for p, v in zip(puzzles, videos)]

    calls = []
    real = verify.video.parse_frames

    def counting(frames, *args, **kwargs):
        calls.append(len(frames) if isinstance(frames, list) else 1)
        return real(frames, *args, **kwargs)

    monkeypatch.setattr(verify.video, "parse_frames", counting)
    batch = verify.verify_batch(maze, puzzles, videos, themes=0)
    assert sorted(calls) == [1, 4]  # one call for the four 9x9 videos, one for the 13x13 one
    assert [b.to_dict() for b in batch] == [s.to_dict() for s in singles]
    assert [b.success for b in batch] == [True, False, True, True, True]

    calls.clear()  # a 5-D array of one geometry: one call, views not copies
    same = np.stack([videos[0], videos[2], videos[4]])
    batch = verify.verify_batch(maze, [puzzles[0], puzzles[2], puzzles[4]], same, themes=0)
    assert calls == [3] and all(b.success for b in batch)

    calls.clear()  # theme detection: one parse of the first frames per theme, then the group's call
    n_themes = len(tasks.THEMES)
    batch = verify.verify_batch(maze, [puzzles[0], puzzles[2], puzzles[4]], same, themes=[0, None, 0])
    assert calls == [1] * n_themes + [3] and all(b.success for b in batch)


def test_verify_batch_parses_each_puzzle_text_once(monkeypatch):
    """A GRPO group passes each puzzle's text G times: it is parsed once, and verdicts match."""
    maze = tasks.get("maze")
    puzzles = [maze.generate(seed=s, size=7) for s in range(2)]
    texts = [puzzles[0].to_text()] * 3 + [puzzles[1].to_text()] * 2
    videos = [maze.render(maze.from_text(t), num_frames=9, cell_px=CELL_PX) for t in texts]
    parsed = []
    real = type(maze).from_text

    def counting(self, text):
        parsed.append(text)
        return real(self, text)

    monkeypatch.setattr(type(maze), "from_text", counting)
    batch = verify.verify_batch(maze, texts, videos, themes=0)
    assert sorted(parsed) == sorted(set(texts)) and all(b.success for b in batch)


def test_verify_batch_bad_input():
    maze = tasks.get("maze")
    p = maze.generate(seed=0, size=7)
    v = maze.render(p, num_frames=5, cell_px=4)
    with pytest.raises(ValueError, match="one puzzle per video"):
        verify.verify_batch(maze, [p, p], [v])
    with pytest.raises(ValueError, match=r"\[N, F, H, W, 3\]"):
        verify.verify_batch(maze, [p], v)
    with pytest.raises(ValueError, match="uint8"):
        verify.verify_video(maze, p, v.astype(np.float32))
    with pytest.raises(ValueError, match="inside the"):
        verify.verify_video(maze, p, v, bbox=(0, 0, 100, 100))
    with pytest.raises(ValueError, match="no verification rules"):
        verify.verify_video(type("T", (), {"name": "chess"})(), p, v)


def test_cli_verify(tmp_path, capsys):
    from vrlvr.cli import main

    task = tasks.get("sokoban")
    puzzle = task.generate(seed=3, size=8)
    (tmp_path / "p.txt").write_text(puzzle.to_text())
    write_mp4(tmp_path / "good.mp4", task.render(puzzle, num_frames=40, cell_px=CELL_PX, theme=2))
    write_mp4(
        tmp_path / "still.mp4", task.render(puzzle, task.plain_solution([]), num_frames=8, cell_px=CELL_PX)
    )
    args = ["verify", "--task", "sokoban", "--puzzle", str(tmp_path / "p.txt"), "--json"]
    assert main([*args, "--video", str(tmp_path / "good.mp4")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["success"] is True and report["theme"] == "brg" and report["reward"] == 1.0
    assert {"boxes_on_goals", "legal_fraction"} <= set(report["components"])
    assert main([*args, "--video", str(tmp_path / "still.mp4")]) == 1
    assert json.loads(capsys.readouterr().out)["success"] is False
    assert main(args[:-1] + ["--video", str(tmp_path / "good.mp4")]) == 0
    assert "SOLVED" in capsys.readouterr().out
    assert main([*args, "--video", str(tmp_path / "missing.mp4")]) == 2
    assert main([*args, "--video", str(tmp_path / "good.mp4"), "--bbox", "1,2"]) == 2
    assert "--bbox must be four numbers" in capsys.readouterr().err


def test_cli_verify_preset_scores_the_flood_hack_as_each_reward_does(tmp_path, capsys):
    """--preset paper: the paper's maze reward pays flooding every corridor (its reward hack); the
    default does not; neither calls it solved. The same numbers as the library's reward configs."""
    from vrlvr.cli import main
    from vrlvr.verify.baselines import baseline_states

    maze = tasks.get("maze")
    puzzle = maze.generate(seed=4, size=11)
    H, W = maze.render(puzzle, num_frames=2, cell_px=CELL_PX).shape[1:3]
    layout = maze.layout(puzzle, H, W)
    flood = maze.paint(puzzle, baseline_states(maze, puzzle, "flood", 9), layout)
    np.save(tmp_path / "flood.npy", flood)
    (tmp_path / "p.txt").write_text(puzzle.to_text())
    args = [
        "verify",
        "--task",
        "maze",
        "--puzzle",
        str(tmp_path / "p.txt"),
        "--video",
        str(tmp_path / "flood.npy"),
    ]
    reports = {}
    for preset in ("default", "paper"):
        assert main([*args, "--json", "--preset", preset]) == 1  # not solved under either
        reports[preset] = json.loads(capsys.readouterr().out)
        want = verify.verify_video(maze, puzzle, flood, config=verify.reward_config("maze", preset))
        assert reports[preset]["preset"] == preset and reports[preset]["reward"] == pytest.approx(want.reward)
    assert reports["paper"]["reward"] == 1.0 and reports["default"]["reward"] < 0.2
    assert main(args) == 1 and "default reward" in capsys.readouterr().out  # the default, named
    with pytest.raises(SystemExit):
        main([*args, "--preset", "generous"])
    assert "invalid choice: 'generous'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("maze", 21), ("flowfree", 8), ("sokoban", 10)])
def test_full_size_solution_videos_verify(tmp_path, name, size):
    task = tasks.get(name)
    puzzle = task.generate(seed=21, size=size)
    frames = task.render(puzzle, num_frames=81, height=480, width=832, theme=1)
    back = _noisy(_mp4_roundtrip(tmp_path, frames, name), seed=2, sigma=10.0)
    v = verify.verify_video(task, puzzle, back, theme=None)
    assert v.success and v.reward >= 0.95, v.reason
    assert not verify.verify_video(task, puzzle, np.ascontiguousarray(back[::-1])).success
