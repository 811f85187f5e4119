"""`vrlvr-train` as a user runs it: a run, `vrlvr eval` on its final/, resume after SIGKILL equal to
an uninterrupted run, refusals, and (slow) two gloo processes equal to one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vrlvr.models.configs import TinyPixelConfig
from vrlvr.models.tiny import TinyPixelPolicy

CODE = "import sys; from vrlvr.cli import main; sys.exit(main())"


def _cmd(*args) -> list[str]:
    return [sys.executable, "-c", CODE, *args]


def _run(*args, cwd, timeout=600):
    return subprocess.run(_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def cfg_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    cfg = TinyPixelConfig(num_layers=1, num_heads=2, head_dim=8, ffn_dim=32, text_dim=16, freq_dim=16)
    TinyPixelPolicy(cfg).save(root / "init", extra={"task": "maze"})
    text = f"""# vrlvr-train --config {root}/tiny.yaml
seed: 3
threads: 1
checkpoint_every: 1
model: {{init: {root / "init"}}}
lora: {{rank: 4}}
data: {{task: maze, sizes: [7], num_frames: 3, cell_px: 4}}
heldout: {{n: 8}}
eval: {{n: 4, batch_size: 8}}
sampling: {{steps: 4}}
grpo: {{prompts_per_step: 2, group_size: 4, micro_batch: 8, beta: 0.05}}
optim: {{steps: 4, lr: 3.0e-3}}
"""
    (root / "tiny.yaml").write_text(text)
    return root / "tiny.yaml"


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "pytorch_lora_weights.safetensors"))


@pytest.fixture(scope="module")
def plain_run(cfg_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "run"
    res = _run("train", "--config", str(cfg_file), f"out_dir={out}", "--no-progress", cwd=out.parent)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["step"] == 4 and "before/maze" in summary and "after/maze" in summary
    assert "held-out maze" in res.stderr  # before / after lines
    return out


def test_eval_and_sample_take_the_rl_policy(plain_run, tmp_path):
    res = _run("eval", "--checkpoint", str(plain_run / "final"), "--n", "4", "--json", "r.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["task"] == "maze" and report["heldout_checked"] and report["n"] >= 1
    res = _run("sample", "--checkpoint", str(plain_run / "final"), "--n", "1", "--out", "s", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert list((tmp_path / "s").glob("*.mp4"))


def test_resume_after_sigkill_ends_with_the_same_adapter(cfg_file, plain_run, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd("train", "--config", str(cfg_file), f"out_dir={out}", "--no-progress"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = out / "checkpoints" / "step_0000002" / "train_state.pt"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-run, maybe mid-write: no chance to clean up
    proc.wait()
    assert target.exists(), "the run never reached its second checkpoint"
    assert not (out / "final").exists()
    res = _run("train", "--resume", f"out_dir={out}", "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stderr
    a, b = _adapter(plain_run), _adapter(out)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5)
    steps = [
        json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if "reward_mean" in x
    ]
    assert steps == [1, 2, 3, 4]  # no step logged twice, none missing


def test_resume_refuses_a_change_to_the_task(plain_run, tmp_path):
    res = _run("train", "--resume", f"out_dir={plain_run}", "grpo.group_size=8", cwd=tmp_path)
    assert res.returncode == 2
    assert "grpo.group_size" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "override, message",
    [("grpo.group_size=1", "group_size must be >= 2"), ("grpo.sde_window=[0,40]", "sde_window")],
)
def test_bad_settings_are_one_line_and_exit_2(cfg_file, tmp_path, override, message):
    res = _run("train", "--config", str(cfg_file), f"out_dir={tmp_path / 'x'}", override, cwd=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_two_gloo_processes_equal_one(cfg_file, plain_run, tmp_path):
    """torchrun with 2 CPU processes (gloo), same global batch: the same adapter within 1e-4."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vrlvr.cli",
        "train",
        "--config",
        str(cfg_file),
        f"out_dir={out}",
        "--no-progress",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {m["world_size"] for m in metrics if "world_size" in m} == {2}
    a, b = _adapter(plain_run), _adapter(out)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-4)
