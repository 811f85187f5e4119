"""data.options: the task generator's difficulty keywords, for training, held-out puzzles, the
checkpoint's record, `vrlvr eval` and `vrlvr-train` alike (a curriculum rung is one config key)."""

import json

import pytest

from vrlvr import tasks
from vrlvr.cli import main
from vrlvr.config import load_config
from vrlvr.train.data import SolutionStream, VideoSpec, check_inside_heldout, eval_puzzles
from vrlvr.train.grpo import PuzzleStream, train_grpo
from vrlvr.train.grpo_config import GRPOConfig

EASY = "data.options={boxes: 1, min_moves: 2, max_moves: 4}"


def _one_box_short(puzzle) -> bool:
    sokoban = tasks.get("sokoban")
    text = "".join(puzzle.rows)
    return text.count("$") + text.count("*") == 1 and len(sokoban.solve(puzzle)) <= 4


@pytest.fixture(scope="module")
def easy_sft(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("sft") / "run"
    argv = [
        "sft",
        "--no-progress",
        f"out_dir={out}",
        "data.task=sokoban",
        "data.sizes=[6]",
        EASY,
        "optim.steps=2",
        "optim.batch_size=2",
        "heldout.n=10",
        "eval.n=2",
        "sampling.steps=2",
        "data.num_frames=5",
        "threads=1",
        *tiny_model,
    ]
    assert main(argv) == 0
    return out


def test_eval_puzzles_and_the_training_stream_use_the_options():
    sokoban = tasks.get("sokoban")
    opts = {"boxes": 1, "min_moves": 2, "max_moves": 4}
    held, _ = eval_puzzles(sokoban, [6], 12, 100000, options=opts)
    assert len(held) == 12 and all(_one_box_short(p.puzzle) for p in held)
    plain, _ = eval_puzzles(sokoban, [6], 12, 100000)
    assert not all(_one_box_short(p.puzzle) for p in plain)  # the default draws harder boards
    stream = SolutionStream(sokoban, [6], {p.key for p in held}, 0, VideoSpec(5, 4), options=opts)
    _, _, seeds = stream.next_batch(6)
    assert all(_one_box_short(sokoban.generate(s, 6, **opts)) for s in seeds)


def test_the_checkpoint_records_the_options_and_eval_draws_the_same_kind(easy_sft, tmp_path):
    held = json.loads((easy_sft / "heldout.json").read_text())
    meta = json.loads((easy_sft / "final" / "policy.json").read_text())
    assert held["options"] == meta["data"]["options"] == {"boxes": 1, "min_moves": 2, "max_moves": 4}
    out = tmp_path / "e.json"
    argv = ["eval", "--checkpoint", str(easy_sft / "final"), "--n", "10", "--no-progress", "--threads", "1"]
    # without the recorded options eval would draw default boards, none of them held out: n would be 0
    assert main([*argv, "--steps", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 10 and report["options"] == held["options"]
    # --option overrides the recorded ones: harder boards were never held out, so none are left
    assert main([*argv, "--steps", "1", "--option", "max_moves=12", "--option", "min_moves=10"]) == 2


def test_a_bad_option_is_one_line_naming_the_key(tmp_path, capsys, tiny_model):
    argv = ["sft", "--no-progress", f"out_dir={tmp_path / 'x'}", "data.task=sokoban", "data.sizes=[6]"]
    assert main([*argv, "data.options={boxs: 1}", *tiny_model]) == 2
    err = capsys.readouterr().err
    assert "data.options" in err and "boxs" in err and "Traceback" not in err
    assert main([*argv, "data.options={boxes: 9}", *tiny_model]) == 2
    assert "boxes must lie in" in capsys.readouterr().err


def test_rl_from_the_checkpoint_keeps_its_options(easy_sft, tmp_path):
    def cfg(out, *extra):
        return load_config(
            GRPOConfig,
            None,
            [
                f"out_dir={out}",
                f"model.init={easy_sft / 'final'}",
                "data.task=sokoban",
                "data.sizes=[6]",
                "data.num_frames=5",
                "heldout.n=10",
                "eval.n=2",
                "sampling.steps=2",
                "grpo.prompts_per_step=2",
                "grpo.group_size=2",
                "lora.rank=2",
                "optim.steps=1",
                "threads=1",
                *extra,
            ],
        )

    # another distribution than the checkpoint's: the held-out check names both option sets
    with pytest.raises(ValueError, match=r"data.options=\{'boxes': 1.*this run with \{\}"):
        train_grpo(cfg(tmp_path / "plain"), progress=False)
    res = train_grpo(cfg(tmp_path / "easy", EASY), progress=False)
    assert res["step"] == 1
    assert json.loads((tmp_path / "easy" / "heldout.json").read_text())["options"]["max_moves"] == 4
    meta = json.loads((tmp_path / "easy" / "final" / "policy.json").read_text())
    assert meta["data"]["options"]["boxes"] == 1


def test_mixed_batches_take_options_per_task():
    cfg = load_config(
        GRPOConfig,
        None,
        [
            "data.task=[maze,sokoban]",
            "data.sizes_by_task={maze: [7], sokoban: [6]}",
            "data.options_by_task={sokoban: {boxes: 1, min_moves: 2, max_moves: 4}}",
        ],
    )
    assert cfg.data.options_for("maze") == {} and cfg.data.options_for("sokoban")["boxes"] == 1
    maze, sokoban = tasks.get("maze"), tasks.get("sokoban")
    stream = PuzzleStream(
        [maze, sokoban],
        {"maze": [7], "sokoban": [6]},
        {"maze": set(), "sokoban": set()},
        0,
        [0],
        {t: cfg.data.options_for(t) for t in ("maze", "sokoban")},
    )
    items = stream.draw(0, 4)
    assert all(_one_box_short(it.puzzle) for it in items if it.task.name == "sokoban")
    with pytest.raises(ValueError, match="options_by_task names"):
        load_config(GRPOConfig, None, ["data.options_by_task={flowfree: {colours: 7}}"])


def test_the_heldout_check_names_differing_options(tmp_path):
    from vrlvr.train.data import write_heldout

    sokoban = tasks.get("sokoban")
    held, _ = eval_puzzles(sokoban, [6], 4, 100000)
    write_heldout(tmp_path / "heldout.json", "sokoban", [6], 4, 100000, {"nothing"}, {"boxes": 1})
    with pytest.raises(ValueError, match=r"data.options=\{'boxes': 1\}, this run with \{\}"):
        check_inside_heldout(tmp_path, "sokoban", held, "model.path")
