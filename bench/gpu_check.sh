#!/usr/bin/env bash
# One prepared GPU check of vrlvr, run from a checkout on a machine with an NVIDIA GPU and no
# network (at most ~8 minutes on one H200):
#
#   bash bench/gpu_check.sh [OUT_DIR]        (default: bench/results/gpu_check)
#
#  1. builds and installs the package with nvcc for the present GPU's architecture
#     (pip install --no-deps --no-build-isolation .), VRLVR_CUDA=ON so a build without _cuda fails;
#  2. runs `pytest -m gpu` (tests/test_sde_gpu.py with --noconftest, so that Triton compiles for
#     the GPU instead of running in its interpreter; then the other gpu-marked tests);
#  3. runs bench/bench_sde.py on CUDA (Wan2.2-5B latent x 4: fused CUDA / Triton kernels against
#     eager and torch.compile'd Flow-GRPO torch and the device-to-device copy floor);
#  4. runs bench/bench_rollout.py --device cuda when the checkout has it;
#  5. writes OUT_DIR/summary.json (GPU, versions, each step's status and time, test counts, the
#     benchmark summaries) next to each step's log and JSON.
# On a machine without a CUDA device it says so, runs the CPU part (CPU op tests and bench_sde on
# the CPU) and exits 0 unless that part fails. VRLVR_GPU_CHECK_FAST=1 shrinks the CPU part.
#
# Wheels needed beyond a stock CUDA PyTorch image (torch with CUDA, triton, numpy): the build
# tools scikit-build-core, pybind11, cmake (>= 3.18) and ninja; the runtime dependencies diffusers,
# peft, transformers, safetensors, numba, imageio, imageio-ffmpeg, pyyaml, tqdm, matplotlib; and
# pytest and hypothesis for the tests. Without network, fetch them elsewhere
# (`pip download -d wheels <names>`), copy the folder over and set VRLVR_WHEELS=/path/to/wheels:
# this script then installs them with `pip install --no-index --find-links`.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bench/results/gpu_check}"
py="${PYTHON:-python}"
fast="${VRLVR_GPU_CHECK_FAST:-0}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
steps="$out/steps.tsv"
: >"$steps"
status=0

say() { echo "[gpu_check] $*" >&2; }

# step NAME TIMEOUT_S CMD...: runs CMD from $out (so the checkout is not on sys.path and the
# installed package is what runs), logs to $out/NAME.log, records status and seconds.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0 rc
  t0=$(date +%s)
  say "$name: $*"
  (cd "$out" && timeout "$limit" "$@") >"$out/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$steps"
  if [ "$rc" -ne 0 ]; then
    say "$name FAILED (exit $rc; 124 = timed out after ${limit}s): see $out/$name.log"
    tail -n 20 "$out/$name.log" >&2
    status=1
  fi
  return "$rc"
}

gpu="$("$py" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>/dev/null)"

if [ -n "${VRLVR_WHEELS:-}" ]; then
  step wheels 300 "$py" -m pip install --no-index --find-links "$VRLVR_WHEELS" scikit-build-core pybind11 \
    cmake ninja diffusers peft transformers safetensors numba imageio imageio-ffmpeg pyyaml tqdm matplotlib \
    pytest hypothesis
fi

if [ -n "$gpu" ]; then
  say "GPU: $gpu"
  arch="$("$py" -c 'import torch; a, b = torch.cuda.get_device_capability(0); print(f"{a}{b}")')"
  step build 300 env VRLVR_CUDA=ON CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=$arch" \
    "$py" -m pip install --no-deps --no-build-isolation "$root"
  step info 60 "$py" -c 'from vrlvr.cli import main; raise SystemExit(main(["info", "--json"]))'
  # the fused-op GPU tests: Triton compiled for the GPU (no conftest, so no TRITON_INTERPRET=1)
  step pytest_sde_gpu 240 "$py" -m pytest --rootdir "$root" -c "$root/pyproject.toml" --noconftest -m gpu \
    -q -rs "$root/tests/test_sde_gpu.py" --junitxml "$out/pytest_sde_gpu.xml"
  # every other gpu-marked test of the suite, with the suite's conftest
  step pytest_gpu 180 "$py" -m pytest --rootdir "$root" -c "$root/pyproject.toml" -m gpu -q -rs \
    "$root/tests" --ignore "$root/tests/test_sde_gpu.py" --junitxml "$out/pytest_gpu.xml"
  step bench_sde 240 "$py" "$root/bench/bench_sde.py" --device cuda --shapes wan --dtypes float32,bfloat16 \
    --repeats 10 --out "$out/bench_sde.json"
  if [ -f "$root/bench/bench_rollout.py" ]; then
    step bench_rollout 150 "$py" "$root/bench/bench_rollout.py" --device cuda --init maze-tiny --json "$out/bench_rollout.json"
  else
    say "bench/bench_rollout.py is not in this checkout: rollout benchmark skipped"
  fi
else
  say "no CUDA device here (torch.cuda.is_available() is False): GPU checks skipped; running the CPU part"
  if ! (cd "$out" && "$py" -c 'import vrlvr._native') 2>/dev/null; then
    step build 900 "$py" -m pip install --no-deps --no-build-isolation "$root"
  fi
  if [ "$fast" = "1" ]; then
    step pytest_cpu 300 "$py" -m pytest --rootdir "$root" -c "$root/pyproject.toml" -q \
      "$root/tests/test_ops_library.py" -k "opcheck_every_op and cpu and dtypes0" --junitxml "$out/pytest_cpu.xml"
    step bench_sde 300 "$py" "$root/bench/bench_sde.py" --device cpu --shapes small --dtypes float32 \
      --ops logprob --repeats 2 --no-compile --out "$out/bench_sde.json"
  else
    step pytest_cpu 900 "$py" -m pytest --rootdir "$root" -c "$root/pyproject.toml" -q \
      "$root/tests/test_ops_library.py" "$root/tests/test_sde_backends.py" "$root/tests/test_sde_autograd.py" \
      "$root/tests/test_sde_gpu.py" --junitxml "$out/pytest_cpu.xml"
    step bench_sde 900 "$py" "$root/bench/bench_sde.py" --device cpu --shapes wan --dtypes float32 \
      --repeats 5 --out "$out/bench_sde.json"
  fi
fi

# one JSON summary of everything above
(cd "$out" && "$py" - "$out" "$gpu" "$fast" <<'EOF'
import glob
import json
import os
import platform
import sys
import xml.etree.ElementTree as ET

out, gpu, fast = sys.argv[1], sys.argv[2], sys.argv[3] == "1"


def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        return {"error": f"{name} is not JSON: {e}"}


steps = {}
with open(os.path.join(out, "steps.tsv")) as f:
    for line in f:
        name, rc, seconds = line.rstrip("\n").split("\t")
        steps[name] = {"exit": int(rc), "seconds": int(seconds), "log": f"{name}.log"}
tests = {}
for xml in sorted(glob.glob(os.path.join(out, "pytest_*.xml"))):
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests[os.path.basename(xml)[:-4]] = {
        k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")
    }
try:
    import torch

    versions = {"torch": torch.__version__, "cuda": torch.version.cuda}
except Exception as e:  # the summary is written whatever broke
    versions = {"torch": f"unavailable: {e}"}
try:
    import triton

    versions["triton"] = triton.__version__
except Exception:
    versions["triton"] = None
info = None
if os.path.exists(os.path.join(out, "info.log")):
    try:
        with open(os.path.join(out, "info.log")) as f:
            info = json.load(f)
    except ValueError:
        info = None
sde = load("bench_sde.json")
summary = {
    "gpu": gpu or None,
    "mode": "gpu" if gpu else ("cpu-fast" if fast else "cpu"),
    "note": None if gpu else "no CUDA device: only the CPU part ran",
    "platform": platform.platform(),
    "versions": versions,
    "vrlvr_info": info,
    "steps": steps,
    "ok": all(s["exit"] == 0 for s in steps.values()),
    "tests": tests,
    "bench_sde_summary": sde.get("summary") if isinstance(sde, dict) else None,
    "bench_sde_copy_bandwidth": sde.get("copy_bandwidth") if isinstance(sde, dict) else None,
    "bench_rollout": load("bench_rollout.json"),
}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps({k: summary[k] for k in ("gpu", "mode", "ok", "tests")}, indent=2))
EOF
) || status=1

say "summary: $out/summary.json"
exit "$status"
