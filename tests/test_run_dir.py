"""Run folders (vrlvr.train.run_dir): a new run refuses a used folder, --resume reads the folder's
config and refuses changes to model, task or data, and `vrlvr sft` follows these rules end to end."""

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from vrlvr.cli import main
from vrlvr.train import run_dir as R


@dataclass
class Model:
    layers: int = 4
    width: int = 32


@dataclass
class Optim:
    steps: int = 10
    lr: float = 1e-3


@dataclass
class Cfg:
    out_dir: str = "runs/x"
    device: str = "auto"
    model: Model = field(default_factory=Model)
    optim: Optim = field(default_factory=Optim)
    sizes: list[int] = field(default_factory=lambda: [7])


FROZEN = ("model", "sizes", "optim.lr")


def fake_checkpoint(out: Path, step: int = 3) -> Path:
    """The layout vrlvr.train.checkpoint writes: checkpoints/step_N/train_state.pt + latest."""
    folder = out / "checkpoints" / f"step_{step:07d}"
    folder.mkdir(parents=True)
    torch.save({"step": step}, folder / "train_state.pt")
    (out / "checkpoints" / "latest").write_text(folder.name + "\n")
    return folder


def saved(out: Path) -> dict:
    return yaml.safe_load((out / "config.yaml").read_text())


def test_new_run_writes_the_resolved_config(tmp_path):
    out = tmp_path / "run"
    start = R.start_run(Cfg, None, [f"out_dir={out}", "model.layers=2"])
    assert start.checkpoint is None and start.changes == {}
    assert start.cfg.model.layers == 2 and saved(out)["model"]["layers"] == 2
    assert not list(out.glob(".*tmp*"))  # written atomically: no temporary file left


def test_new_run_refuses_a_used_folder_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    R.start_run(Cfg, None, [f"out_dir={out}"])
    fake_checkpoint(out)
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match=r"is not empty.*--resume.*--overwrite"):
        R.start_run(Cfg, None, [f"out_dir={out}"])
    assert (out / "metrics.jsonl").is_file()  # nothing was touched
    with pytest.raises(ValueError, match="model.layerz"):  # a bad override deletes nothing
        R.start_run(Cfg, None, [f"out_dir={out}", "model.layerz=8"], overwrite=True)
    assert (out / "metrics.jsonl").is_file()
    start = R.start_run(Cfg, None, [f"out_dir={out}", "model.layers=8"], overwrite=True)
    assert start.checkpoint is None
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]  # old checkpoints and metrics gone


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match="not a run folder"):
        R.start_run(Cfg, None, [f"out_dir={out}"], overwrite=True)
    assert (out / "thesis.tex").is_file()


def test_overwrite_refuses_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text("out_dir: .\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="working directory"):
        R.start_run(Cfg, None, ["out_dir=."], overwrite=True)
    assert (tmp_path / "config.yaml").is_file()


def test_resume_with_nothing_to_resume_fails_auto_starts_new(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"nothing to resume.*--resume auto"):
        R.start_run(Cfg, None, [f"out_dir={out}"], resume="yes")
    assert not out.exists()
    start = R.start_run(Cfg, None, [f"out_dir={out}"], resume="auto")
    assert start.checkpoint is None and (out / "config.yaml").is_file()
    # a run stopped before its first checkpoint: auto starts it again instead of refusing
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    start = R.start_run(Cfg, None, [f"out_dir={out}", "model.layers=3"], resume="auto")
    assert start.checkpoint is None and not (out / "metrics.jsonl").exists()


def test_resume_reads_the_folder_config_and_applies_only_the_overrides(tmp_path, capsys):
    out = tmp_path / "run"
    R.start_run(Cfg, None, [f"out_dir={out}", "model.layers=2", "optim.steps=5"])
    ckpt = fake_checkpoint(out)
    start = R.start_run(Cfg, None, [f"out_dir={out}", "optim.steps=9", "device=cpu"], resume="yes")
    assert start.checkpoint == ckpt
    assert start.cfg.model.layers == 2  # from OUT/config.yaml, not the class default
    assert start.changes == {"optim.steps": (5, 9), "device": ("auto", "cpu")}
    err = capsys.readouterr().err
    assert "deliberate changes" in err and "optim.steps: 5 -> 9" in err
    assert saved(out)["optim"]["steps"] == 9  # config.yaml is what the run now goes with
    log = [json.loads(x) for x in (out / "resumes.jsonl").read_text().splitlines()]
    assert log[-1]["checkpoint"] == ckpt.name and log[-1]["changes"]["optim.steps"] == [5, 9]
    assert R.start_run(Cfg, None, [f"out_dir={out}"], resume="auto").checkpoint == ckpt


def test_resume_refuses_frozen_changes_naming_key_old_and_new(tmp_path):
    out = tmp_path / "run"
    R.start_run(Cfg, None, [f"out_dir={out}"])
    fake_checkpoint(out)
    before = (out / "config.yaml").read_text()
    with pytest.raises(ValueError) as exc:
        R.start_run(
            Cfg, None, [f"out_dir={out}", "model.layers=2", "optim.lr=0.5"], resume="yes", frozen=FROZEN
        )
    msg = str(exc.value)
    assert "model.layers: 4 -> 2" in msg and "optim.lr: 0.001 -> 0.5" in msg
    assert (out / "config.yaml").read_text() == before  # a refused resume changes nothing


def test_resume_with_a_config_file_must_agree_on_frozen_keys(tmp_path):
    out = tmp_path / "run"
    R.start_run(Cfg, None, [f"out_dir={out}"])
    fake_checkpoint(out)
    other = tmp_path / "other.yaml"
    other.write_text(f"out_dir: {out}\nsizes: [5]\noptim: {{steps: 20}}\n")
    with pytest.raises(ValueError, match=r"sizes: \[7\] -> \[5\]"):
        R.start_run(Cfg, str(other), [], resume="yes", frozen=FROZEN)
    same = tmp_path / "same.yaml"
    same.write_text(f"out_dir: {out}\noptim: {{steps: 20}}\n")
    assert R.start_run(Cfg, str(same), [], resume="yes", frozen=FROZEN).changes == {"optim.steps": (10, 20)}


def test_resume_and_overwrite_contradict(tmp_path):
    out = tmp_path / "run"
    R.start_run(Cfg, None, [f"out_dir={out}"])
    fake_checkpoint(out)
    with pytest.raises(ValueError, match="contradict"):
        R.start_run(Cfg, None, [f"out_dir={out}"], resume="yes", overwrite=True)


def test_out_dir_comes_from_the_config_file(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"out_dir: {tmp_path / 'from_file'}\n")
    R.start_run(Cfg, str(cfg_file), [])
    assert (tmp_path / "from_file" / "config.yaml").is_file()


def test_config_hash_and_checkpoint_meta():
    a, b = Cfg(), Cfg()
    assert R.config_hash(a) == R.config_hash(b) and len(R.config_hash(a)) == 16
    b.optim.lr = 0.5
    assert R.config_hash(a) != R.config_hash(b)
    meta = R.checkpoint_meta(a)
    assert {"vrlvr_version", "config_hash"} <= set(meta) and meta["config_hash"] == R.config_hash(a)
    with pytest.raises(ValueError, match=r"model.layers: 4 -> 2"):
        c = Cfg()
        c.model.layers = 2
        R.check_checkpoint_meta(meta, c, FROZEN, Path("ck"), "t")
    R.check_checkpoint_meta(meta, b, ("model",), Path("ck"), "t")  # lr not frozen here: fine


def test_resume_flag_parses_like_a_user_types_it():
    p = argparse.ArgumentParser()
    R.add_run_arguments(p)
    p.add_argument("overrides", nargs="*")
    assert p.parse_args([]).resume == "no"
    assert p.parse_args(["--resume"]).resume == "yes"
    assert p.parse_args(["--resume", "auto"]).resume == "auto"
    args = p.parse_args(["--resume", "out_dir=RUN", "a=1"])  # not swallowed as a choice
    assert args.resume == "yes" and R.run_overrides(args) == ["out_dir=RUN", "a=1"]
    with pytest.raises(SystemExit):
        p.parse_args(["--resume", "maybe"])


# ---- vrlvr sft, run as a user runs it ---------------------------------------------------------

TINY = [
    "model.tiny.num_layers=1",
    "model.tiny.num_heads=1",
    "model.tiny.head_dim=8",
    "model.tiny.ffn_dim=16",
    "model.tiny.text_dim=8",
    "model.tiny.freq_dim=16",
    "optim.batch_size=2",
    "optim.warmup_steps=1",
    "data.num_frames=3",
    "heldout.n=4",
    "eval.n=2",
    "sampling.steps=1",
    "checkpoint_every=1",
    "log_every=1",
    "threads=1",
]


def sft(*args) -> int:
    return main(["sft", "--no-progress", *args])


def test_sft_run_folder_rules_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert sft(f"out_dir={out}", "optim.steps=2", *TINY) == 0
    capsys.readouterr()
    state = torch.load(out / "checkpoints" / "step_0000002" / "train_state.pt", weights_only=False)
    assert state["meta"]["config_hash"] == R.config_hash(yaml.safe_load((out / "config.yaml").read_text()))
    policy_json = json.loads((out / "final" / "policy.json").read_text())
    assert policy_json["config_hash"] == state["meta"]["config_hash"]

    # rerunning into it without --resume: refused, nothing deleted
    metrics = (out / "metrics.jsonl").read_text()
    assert sft(f"out_dir={out}", "optim.steps=2", *TINY) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == metrics

    # frozen changes are refused, naming the key and both values
    assert sft("--resume", f"out_dir={out}", "model.tiny.num_layers=2", "optim.lr=0.5") == 2
    err = capsys.readouterr().err
    assert "model.tiny.num_layers: 1 -> 2" in err and "optim.lr: 0.001 -> 0.5" in err
    # another task's config on resume: refused, the maze metrics stay maze metrics
    flowfree = Path(__file__).resolve().parent.parent / "configs" / "flowfree-tiny-sft.yaml"
    assert sft("--resume", "--config", str(flowfree), f"out_dir={out}") == 2
    assert "data.task: 'maze' -> 'flowfree'" in capsys.readouterr().err

    # --resume without --config reads OUT/config.yaml; optim.steps is a deliberate change
    assert sft("--resume", f"out_dir={out}", "optim.steps=3") == 0
    captured = capsys.readouterr()
    assert "optim.steps: 2 -> 3" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["step"] == 3
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]

    # config.yaml edited by hand to another model: the checkpoint's own record refuses it
    text = (out / "config.yaml").read_text().replace("num_layers: 1", "num_layers: 3")
    (out / "config.yaml").write_text(text)
    assert sft("--resume", f"out_dir={out}", "optim.steps=4") == 2
    assert "model.tiny.num_layers: 1 -> 3" in capsys.readouterr().err

    # --overwrite starts afresh: no old checkpoint survives beside the new ones
    assert sft("--overwrite", f"out_dir={out}", "optim.steps=1", *TINY) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_0000001"]


def test_sft_resume_on_an_empty_folder_fails_fast(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert sft("--resume", f"out_dir={out}", *TINY) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_sft_failing_new_run_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert sft(f"out_dir={out}", "data.task=nosuchtask", *TINY) == 2
    assert "nosuchtask" in capsys.readouterr().err
    assert not out.exists()  # so the corrected command is not refused as "not empty"


def test_a_key_added_since_the_checkpoint_is_no_change_at_its_default():
    # a run written before grpo.resample_rounds existed resumes; setting the new key is a change
    from vrlvr.train.grpo_config import FROZEN_ON_RESUME, GRPOConfig

    new = GRPOConfig()
    old = R._cfg_dict(new)
    del old["grpo"]["resample_rounds"]
    assert R.frozen_changes(old, new, FROZEN_ON_RESUME) == ([], {})
    new.grpo.resample_rounds = 2
    refused, _ = R.frozen_changes(old, new, FROZEN_ON_RESUME)
    assert refused == [("grpo.resample_rounds", "<absent>", 2)]
