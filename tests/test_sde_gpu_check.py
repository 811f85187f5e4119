"""bench/gpu_check.sh on a machine without a GPU: it says so, runs the CPU part (shrunk by
VRLVR_GPU_CHECK_FAST=1) and exits 0 with a JSON summary. The GPU part runs only on a GPU machine
(a person runs the script there; see the README)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.slow  # ~1 min here: pytest and a benchmark in subprocesses
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs the GPU part")
def test_without_a_gpu_it_says_so_runs_the_cpu_part_and_exits_0(tmp_path):
    import vrlvr

    env = dict(os.environ, VRLVR_GPU_CHECK_FAST="1", PYTHON=sys.executable)
    # the package this test runs against (a dev build in the source tree, or the installed one)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(vrlvr.__file__).parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no CUDA device here" in proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["gpu"] is None and summary["mode"] == "cpu-fast" and summary["ok"]
    assert set(summary["steps"]) >= {"pytest_cpu", "bench_sde"}
    assert summary["tests"]["pytest_cpu"]["tests"] >= 1
    assert summary["tests"]["pytest_cpu"]["failures"] == 0
    (row,) = summary["bench_sde_summary"]
    assert row["fused"] == "cpu" and row["fused_ms"] > 0 and row["fused_fraction_of_floor"] > 0
