"""Bad input meets one clear line and exit status 2, never a traceback, a hang or a half-written
folder. Every case runs the command as a user does (``vrlvr.cli.main`` or a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vrlvr
from vrlvr import tasks
from vrlvr.cli import main

ROOT = Path(vrlvr.__file__).resolve().parent.parent  # where the package under test is imported from
REPO = Path(__file__).resolve().parent.parent  # the checkout: README.md, docs/


def run_cli(*args, cwd):
    """`vrlvr ARGS` in a fresh interpreter (the code under test, wherever it is imported from)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "import sys; from vrlvr.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def one_line_error(err: str, prog: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith(f"{prog}: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


# ---- config ------------------------------------------------------------------------------------


def test_yaml_syntax_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [1,\n  steps: 3\n")
    res = run_cli("sft", "--config", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    line = one_line_error(res.stderr, "vrlvr sft")
    assert str(bad) in line and "YAML syntax error at line" in line
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", "optim.lrr (did you mean optim.lr?)"),
        ("lr=1", "lr (did you mean optim.lr?)"),
        ("optim.betas=0.9", "optim.betas: expected a list"),
        ("optim.betas=[0.9]", "optim.betas must be two numbers"),
        ("optim.lr=0", "optim.lr must be > 0"),
        ("out_dir=null", "out_dir: expected a string"),
        ("data.themes=[9]", "theme index"),
        ("optim.lr=[1,", "override 'optim.lr=[1,': YAML syntax error"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path, capsys, override, message):
    assert main(["sft", f"out_dir={tmp_path / 'run'}", override]) == 2
    assert message in one_line_error(capsys.readouterr().err, "vrlvr sft")
    assert not (tmp_path / "run").exists()


def test_config_fixed_length_tuples_and_nested_typos():
    from dataclasses import dataclass, field

    from vrlvr.config import load_config

    @dataclass
    class Inner:
        betas: tuple[float, float] = (0.9, 0.99)

    @dataclass
    class Outer:
        optim: Inner = field(default_factory=Inner)
        sizes: list[int] = field(default_factory=lambda: [7])

    assert load_config(Outer, None, ["optim.betas=[0.8, 0.9]"]).optim.betas == (0.8, 0.9)
    with pytest.raises(ValueError, match=r"optim.betas: expected 2 values, got 3"):
        load_config(Outer, None, ["optim.betas=[0.8, 0.9, 0.1]"])
    with pytest.raises(ValueError, match=r"sizes: expected a list"):
        load_config(Outer, None, ["sizes=7"])  # no silent [7]
    with pytest.raises(ValueError, match=r"optimm \(did you mean optim\?\)"):
        load_config(Outer, None, ["optimm.betas=[0.8, 0.9]"])
    with pytest.raises(ValueError, match=r"optim: expected a mapping"):
        load_config(Outer, None, ["optim=3"])


def test_config_path_that_is_a_folder(tmp_path, capsys):
    assert main(["sft", "--config", str(tmp_path)]) == 2
    assert "is a folder" in one_line_error(capsys.readouterr().err, "vrlvr sft")


def test_overrides_after_an_option_still_count(tmp_path, capsys):
    # argparse leaves `optim.lrr=1` over after --no-progress; it must reach the config, not fail parsing
    assert main(["sft", f"out_dir={tmp_path / 'r'}", "--no-progress", "optim.lrr=1"]) == 2
    assert "did you mean optim.lr" in capsys.readouterr().err


def test_plain_sft_defaults_work(tmp_path, capsys):
    # the built-in defaults (7x7 mazes) must not contradict themselves (heldout.n was 200)
    rc = main(
        ["sft", "--no-progress", f"out_dir={tmp_path / 'run'}", "optim.steps=1", "eval.n=2", "threads=1"]
    )
    assert rc == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 1


# ---- devices -----------------------------------------------------------------------------------


def test_resolve_device():
    from vrlvr.train.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda'"):
            resolve_device("cuda")
    else:
        with pytest.raises(ValueError, match="GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_device_errors_from_the_commands(tmp_path):
    res = run_cli("eval", "--checkpoint", "maze-tiny", "--device", "tpu", cwd=tmp_path)
    assert res.returncode == 2 and "unknown device 'tpu'" in one_line_error(res.stderr, "vrlvr eval")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_cuda_device_without_a_gpu(tmp_path, capsys):
    assert main(["sft", f"out_dir={tmp_path / 'r'}", "device=cuda"]) == 2
    assert "device 'cuda'" in one_line_error(capsys.readouterr().err, "vrlvr sft")
    assert not (tmp_path / "r").exists()
    assert main(["eval", "--checkpoint", "maze-tiny", "--device", "cuda"]) == 2
    assert "device 'cuda'" in capsys.readouterr().err


# ---- vrlvr data --------------------------------------------------------------------------------

DATA = [
    "data",
    "--task",
    "maze",
    "--n",
    "2",
    "--sizes",
    "7",
    "--cell-px",
    "2",
    "--num-frames",
    "3",
    "--quiet",
]


def test_data_bad_preset_leaves_nothing(tmp_path):
    out = tmp_path / "d"
    res = run_cli(*DATA, "--out", str(out), "--preset", "bogus", cwd=tmp_path)
    assert res.returncode == 2 and "invalid choice: 'bogus'" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--fps", "0", "--fps must be >= 1"),
        ("--crf", "99", "--crf must lie in 0..51"),
        ("--num-frames", "1", "--num-frames must be >= 2"),
        ("--workers", "0", "--workers must be >= 1"),
        ("--option", "bogus=1", "unknown options"),
        ("--exclude", "/nonexistent/x", "no such metadata.jsonl"),
    ],
)
def test_data_rejects_values_it_used_to_accept(tmp_path, capsys, flag, value, message):
    out = tmp_path / "d"
    assert main([*DATA, "--out", str(out), flag, value]) == 2
    assert message in one_line_error(capsys.readouterr().err, "vrlvr data")
    assert not out.exists()


def test_data_refuses_a_used_folder_and_overwrite_leaves_no_stale_videos(tmp_path, capsys):
    out = tmp_path / "d"
    assert main([*DATA, "--out", str(out)]) == 0
    assert main([*DATA, "--out", str(out)]) == 2
    assert "not empty" in one_line_error(capsys.readouterr().err, "vrlvr data")
    ff = ["data", "--task", "flowfree", "--n", "1", "--sizes", "5", "--cell-px", "2", "--num-frames", "3"]
    assert main([*ff, "--quiet", "--out", str(out), "--overwrite"]) == 0
    assert [p.name for p in (out / "videos").iterdir()] == ["flowfree_train_000000.mp4"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    assert main([*DATA, "--out", str(mine), "--overwrite"]) == 2  # not a dataset: never emptied
    assert "not a vrlvr data folder" in capsys.readouterr().err and (mine / "notes.txt").is_file()


def test_data_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, capsys):
    from vrlvr.tasks import video_io

    calls = [0]
    real = video_io.write_mp4

    def fails_second(*a, **k):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(28, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(video_io, "write_mp4", fails_second)
    out = tmp_path / "d"
    assert main([*DATA, "--n", "3", "--out", str(out)]) == 1  # the machine failed, not the input
    assert "No space left on device" in one_line_error(capsys.readouterr().err, "vrlvr data")
    assert not out.exists()  # no 0-byte video, no metadata.jsonl.tmp


def test_write_mp4_never_leaves_an_empty_file(tmp_path):
    from vrlvr.tasks.video_io import write_mp4

    frames = np.zeros((3, 8, 8, 3), np.uint8)
    for kwargs, message in [
        ({"preset": "bogus"}, "unknown x264 preset"),
        ({"crf": 99}, "crf"),
        ({"fps": 0}, "fps"),
    ]:
        with pytest.raises(ValueError, match=message):
            write_mp4(tmp_path / "v.mp4", frames, **kwargs)
        assert not (tmp_path / "v.mp4").exists()


# ---- vrlvr eval / sample -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--steps", "0"], "--steps must be >= 1"),  # used to become 10
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--num-frames", "1"], "--num-frames must be >= 2"),
        (["--shift", "0"], "--shift must be > 0"),
        (["--theme", "9"], "theme index"),
        (["--sizes", "8"], "odd number"),
        (["--height", "480"], "go together"),
        (["--json", "/nonexistent/dir/out.json"], "does not exist"),
    ],
)
def test_eval_input_errors_exit_2_before_any_work(capsys, argv, message):
    assert main(["eval", "--checkpoint", "maze-tiny", "--n", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert message in one_line_error(err, "vrlvr eval")
    assert "tokens per video" not in err  # refused before generating anything


def test_eval_json_into_a_folder_is_refused_first(tmp_path, capsys):
    assert main(["eval", "--checkpoint", "maze-tiny", "--n", "2", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_eval_refuses_a_frame_size_the_checkpoint_never_saw(capsys):
    # maze-tiny is pixel-space at 28x28: 480x832 frames are 509x the tokens (it ran > 10 min before)
    argv = ["eval", "--checkpoint", "maze-tiny", "--n", "2", "--allow-seen", "--no-progress"]
    assert main([*argv, "--height", "480", "--width", "832"]) == 2
    err = capsys.readouterr().err
    assert "224,640 tokens per video" in err  # the estimate is printed first
    line = one_line_error(err, "vrlvr eval")
    assert "was trained on videos of 441 tokens" in line and "--force" in line


def test_sample_input_errors(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", "maze-tiny", "--out", str(out), "--fps", "0"]) == 2
    assert "--fps must be >= 1" in one_line_error(capsys.readouterr().err, "vrlvr sample")
    out.mkdir()
    (out / "old.mp4").write_bytes(b"")
    assert main(["sample", "--checkpoint", "maze-tiny", "--out", str(out)]) == 2
    assert "not empty" in one_line_error(capsys.readouterr().err, "vrlvr sample")


def test_sample_writes_labelled_videos_and_refuses_to_mix_runs(tmp_path, capsys):
    out = tmp_path / "s"
    argv = [
        "sample",
        "--checkpoint",
        "maze-tiny",
        "--n",
        "1",
        "--steps",
        "1",
        "--allow-seen",
        "--no-progress",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    rec = json.loads((out / "verdicts.jsonl").read_text())
    assert rec["left"] == "generated" and rec["right"] == "ground truth"
    assert main([*argv, "--out", str(out)]) == 2
    assert main([*argv, "--out", str(out), "--overwrite", "--seed", "100001"]) == 0
    assert sorted(p.name for p in out.glob("*.mp4")) == ["000_seed100001_size7.mp4"]


def test_side_by_side_has_labels():
    from vrlvr.commands.sample import label_bar, side_by_side

    v = np.zeros((2, 28, 28, 3), np.uint8)
    both = side_by_side(v, v, 10)  # [F, h + 280, 570, 3]
    bar = label_bar(280, 280, 10)
    assert both.shape == (2, bar.shape[0] + 280, 570, 3)
    top = both[0, : bar.shape[0]]
    assert top[:, :280].max() == 255 and top[:, 290:].max() == 255  # text over both halves


# ---- vrlvr verify --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maze_files(tmp_path_factory):
    from vrlvr.tasks.video_io import write_mp4

    d = tmp_path_factory.mktemp("verify")
    maze = tasks.get("maze")
    p = maze.generate(0, 7)
    frames = maze.render(p, maze.solve(p), num_frames=9, cell_px=4)
    (d / "p7.txt").write_text(p.to_text())
    big = maze.generate(1, 21)
    (d / "p21.txt").write_text(big.to_text())
    write_mp4(d / "v.mp4", frames)
    data = (d / "v.mp4").read_bytes()
    (d / "trunc.mp4").write_bytes(data[: len(data) // 3])
    (d / "empty.mp4").write_bytes(b"")
    import imageio.v2 as imageio

    imageio.imwrite(d / "f.png", frames[0])
    from vrlvr.commands.sample import side_by_side

    write_mp4(d / "sbs.mp4", side_by_side(frames, frames, 10))
    return d


@pytest.mark.parametrize(
    "video, message",
    [
        ("trunc.mp4", "cannot read video"),
        ("empty.mp4", "is empty"),
        ("f.png", "is an image (PNG), not a video"),
        ("missing.mp4", "does not exist"),
        (".", "is a folder, not a video"),
    ],
)
def test_verify_unreadable_videos_one_line(maze_files, capsys, video, message):
    rc = main(
        [
            "verify",
            "--task",
            "maze",
            "--puzzle",
            str(maze_files / "p7.txt"),
            "--video",
            str(maze_files / video),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    line = one_line_error(err, "vrlvr verify")
    assert message in line and "ffmpeg version" not in err and "configuration:" not in err


def test_verify_truncated_mp4_in_a_subprocess(maze_files, tmp_path):
    res = run_cli(
        "verify",
        "--task",
        "maze",
        "--puzzle",
        str(maze_files / "p7.txt"),
        "--video",
        str(maze_files / "trunc.mp4"),
        cwd=tmp_path,
    )
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_verify_puzzle_file_that_is_not_text(maze_files, capsys):
    rc = main(
        [
            "verify",
            "--task",
            "maze",
            "--puzzle",
            str(maze_files / "v.mp4"),
            "--video",
            str(maze_files / "v.mp4"),
        ]
    )
    assert rc == 2 and "is not text" in capsys.readouterr().err


def test_verify_refuses_a_video_of_another_puzzle(maze_files, capsys):
    argv = [
        "verify",
        "--task",
        "maze",
        "--puzzle",
        str(maze_files / "p21.txt"),
        "--video",
        str(maze_files / "v.mp4"),
    ]
    assert main(argv) == 2
    assert "frame 0 does not show this puzzle" in one_line_error(capsys.readouterr().err, "vrlvr verify")
    assert main([*argv, "--force", "--json"]) == 1  # forced: a verdict, with the warning kept
    captured = capsys.readouterr()
    assert "warning" in captured.err
    assert json.loads(captured.out)["frame0"]["cells_differ"] > 0.25


def test_verify_refuses_a_side_by_side_sample_video(maze_files, capsys):
    argv = [
        "verify",
        "--task",
        "maze",
        "--puzzle",
        str(maze_files / "p7.txt"),
        "--video",
        str(maze_files / "sbs.mp4"),
    ]
    assert main(argv) == 2
    assert "side-by-side" in capsys.readouterr().err


def test_verify_the_right_video_has_no_warning(maze_files, capsys):
    argv = [
        "verify",
        "--task",
        "maze",
        "--puzzle",
        str(maze_files / "p7.txt"),
        "--video",
        str(maze_files / "v.mp4"),
    ]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert json.loads(captured.out)["frame0"]["warning"] is None


def test_verify_warns_on_colours_far_from_the_palette(maze_files, tmp_path, capsys):
    from vrlvr.commands.verify import WARN_DIST

    maze = tasks.get("maze")
    p = maze.from_text((maze_files / "p7.txt").read_text())
    frames = maze.render(p, maze.solve(p), num_frames=5, cell_px=4).astype(np.int16)
    tinted = np.clip(frames + np.array([0, 0, 45]), 0, 255).astype(np.uint8)  # a blue cast everywhere
    np.save(tmp_path / "tinted.npy", tinted)
    argv = [
        "verify",
        "--task",
        "maze",
        "--puzzle",
        str(maze_files / "p7.txt"),
        "--video",
        str(tmp_path / "tinted.npy"),
    ]
    main([*argv, "--json", "--theme", "0"])
    captured = capsys.readouterr()
    assert json.loads(captured.out)["frame0"]["mean_colour_distance"] > WARN_DIST
    assert "from the palette" in captured.err


# ---- info, help, pipes ----------------------------------------------------------------------------


def test_info_says_no_driver_when_there_is_none(monkeypatch, capsys):
    # cudart reports a machine without any NVIDIA driver as "insufficient driver"
    from vrlvr import backends
    from vrlvr.commands import info

    def statuses(driver_version):
        status = backends.BackendStatus(
            "cuda",
            False,
            "built (CUDA 13.0, sm 80,90); no device: cudaErrorInsufficientDriver: driver is insufficient",
            {
                "device_status": {
                    "device_count": 0,
                    "driver_version": driver_version,
                    "error": "cudaErrorInsufficientDriver",
                }
            },
        )
        return lambda: [status]

    monkeypatch.setattr(backends, "all_statuses", statuses(0))
    monkeypatch.setattr(info, "_driver_loadable", lambda: False)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "no NVIDIA driver installed" in out and "insufficient" not in out
    monkeypatch.setattr(backends, "all_statuses", statuses(12040))
    monkeypatch.setattr(info, "_driver_loadable", lambda: True)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "supports CUDA 12.4" in out and "update the driver" in out


@pytest.mark.parametrize("name", ["eval", "sample"])
def test_help_keeps_the_example_on_its_own_line(name, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    lines = capsys.readouterr().out.splitlines()
    example = [i for i, ln in enumerate(lines) if ln.startswith(f"    vrlvr {name} ")]
    assert example, lines
    end = example[0]
    while end + 1 < len(lines) and lines[end + 1].startswith(f"    vrlvr {name} "):
        end += 1  # several example lines, one per line
    assert lines[end + 1] == ""  # the next paragraph starts after a blank line, not on it


def test_bench_listing_is_not_cut_mid_sentence(capsys):
    assert main(["bench"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert 'in under 15 minutes on 2 cores".' in text  # the tasks summary, whole
    assert main(["bench", "parse", "--help"]) == 0
    assert "videos in the group" in capsys.readouterr().out


def test_broken_pipe_is_quiet(monkeypatch, capsys):
    # `vrlvr info | head -1`: the reader went away; that is not an error to report with a traceback
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info"]) == 0
    monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err


def test_out_of_memory_is_one_line_but_bugs_keep_their_traceback(monkeypatch, capsys):
    from vrlvr.commands import info

    def oom():
        raise MemoryError("could not allocate 58 GB")

    monkeypatch.setattr(info, "collect", oom)
    assert main(["info"]) == 1
    assert "out of memory" in one_line_error(capsys.readouterr().err, "vrlvr info")

    def bug():
        raise RuntimeError("a bug")

    monkeypatch.setattr(info, "collect", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info"])


def test_readme_points_to_docs_in_the_repository():
    import re

    readme = (REPO / "README.md").read_text()
    assert "design document" not in readme and "../shared" not in readme
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]+))?\)", readme)
    assert {path for path, _ in links} >= {"docs/architecture.md", "docs/contracts.md"}
    for path, anchor in links:
        text = (REPO / path).read_text()
        if anchor:  # GitHub's anchor of a "## Title" heading
            headings = {
                re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", text, re.M)
            }
            assert anchor in headings, (path, anchor)
