#!/usr/bin/env bash
# Developer build: compile vrlvr._native (and vrlvr._cuda when nvcc is found) into BUILD_DIR and
# copy the modules into the source tree, so `PYTHONPATH=$PWD python -m pytest tests`
# runs against fresh binaries without a pip install. Also links kernels/ and bench/ to
# vrlvr/kernels and vrlvr/bench, which is where the wheel ships them. CI and users use `pip install .`.
#   scripts/dev_build.sh [BUILD_DIR]      (VRLVR_CUDA=OFF skips the CUDA module)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/dev}"
py="${PYTHON:-python}"
pybind_dir="$("$py" -c 'import pybind11; print(pybind11.get_cmake_dir())')"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$pybind_dir" -DPython_EXECUTABLE="$(command -v "$py")" \
  -DSKBUILD_PROJECT_VERSION=0.0.0+dev -DVRLVR_CUDA="${VRLVR_CUDA:-AUTO}" >/dev/null
cmake --build "$build" -j 2
for mod in "$build"/_native*.so "$build"/_cuda*.so; do
  # copy then rename: overwriting a loaded .so in place crashes processes that have it mapped
  [ -e "$mod" ] && cp -f "$mod" "$root/vrlvr/.$(basename "$mod").tmp" \
    && mv -f "$root/vrlvr/.$(basename "$mod").tmp" "$root/vrlvr/$(basename "$mod")"
done
[ -e "$root/vrlvr/kernels" ] || ln -s ../kernels "$root/vrlvr/kernels"
[ -e "$root/vrlvr/bench" ] || ln -s ../bench "$root/vrlvr/bench"
echo "dev build ready: $(ls "$root"/vrlvr/*.so | xargs -n1 basename | tr '\n' ' ')"
