"""bench/bench_sde.py: the report's structure (baselines, copy floor, ratios, summary) on a tiny
run. Timings themselves are claimed by the benchmark, never asserted here."""

import importlib.util
import json
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[1] / "bench" / "bench_sde.py"
_spec = importlib.util.spec_from_file_location("bench_sde_under_test", _path)
bench_sde = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_sde)


def _run(tmp_path, *extra):
    out = tmp_path / "r.json"
    bench_sde.SHAPES["tiny"] = (2, 3, 5, 7)
    try:
        args = ["--shapes", "tiny", "--dtypes", "float32", "--repeats", "1", "--out", str(out), *extra]
        report = bench_sde.main(args)
    finally:
        del bench_sde.SHAPES["tiny"]
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    return report


def test_report_has_floor_ratios_and_a_summary(tmp_path):
    report = _run(tmp_path, "--ops", "logprob,kl", "--no-compile")
    impls = {r["impl"] for r in report["results"]}
    assert {"eager_flow_grpo", "torch", "cpu"} <= impls and "compile_flow_grpo" not in impls
    for r in report["results"]:
        assert r["memory_floor_s"] == pytest.approx(r["bytes"] / (r["copy_GBps"] * 1e9))
        assert r["fraction_of_floor"] == pytest.approx(r["memory_floor_s"] / r["best_s"])
        assert r["speedup_vs_compile"] is None and r["speedup_vs_eager"] > 0
    # the floor is the best copy of the run, so it is the same for every row of one byte count
    for moved, bw in report["copy_bandwidth"].items():
        rows = [r for r in report["results"] if r["bytes"] == int(moved)]
        assert {r["copy_GBps"] for r in rows} == {bw["best_GBps"]}
        assert bw["best_GBps"] == max(bw["numpy_copy_GBps"], bw["torch_copy_GBps"])
    assert [(s["op"], s["fused"]) for s in report["summary"]] == [("kl", "cpu"), ("logprob", "cpu")]
    assert report["machine"]["loadavg"] is not None
    assert report["complete"] is True


def test_unknown_shape_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench_sde.main(["--shapes", "huge"])
    assert "unknown shape 'huge'" in capsys.readouterr().err


@pytest.mark.slow  # inductor compiles the Flow-GRPO step (C++ on a CPU): ~30 s here
def test_compile_baseline_is_timed_and_compared(tmp_path):
    report = _run(tmp_path, "--ops", "step")
    rows = {r["impl"]: r for r in report["results"]}
    assert rows["compile_flow_grpo"]["best_s"] > 0
    assert rows["cpu"]["speedup_vs_compile"] == pytest.approx(
        rows["compile_flow_grpo"]["best_s"] / rows["cpu"]["best_s"]
    )
    (summary,) = report["summary"]
    assert summary["fused_vs_compile"] == pytest.approx(rows["cpu"]["speedup_vs_compile"])
