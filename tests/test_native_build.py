"""The compiled modules import from the installed package and describe their build."""

import shutil

import pytest


def test_native_imports_and_reports_build_info():
    from vrlvr import _native

    info = _native.build_info()
    assert info["module"] == "vrlvr._native"
    assert info["cxx_standard"] >= 201703
    assert isinstance(info["openmp"], bool)
    assert info["compiler"] and info["flags"]
    assert _native.max_threads() >= 1


def test_native_threads_rejects_nonsense():
    from vrlvr import _native

    before = _native.max_threads()
    with pytest.raises(ValueError, match="n must be >= 1"):
        _native.set_num_threads(0)
    _native.set_num_threads(before)
    assert _native.max_threads() == before


def test_native_uses_openmp_when_compiler_has_it():
    from vrlvr import _native

    # GCC on our machines ships libgomp: a build without OpenMP here is a build bug.
    if shutil.which("gcc"):
        assert _native.build_info()["openmp"] is True


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH: _cuda is not built")
def test_cuda_module_built_and_imports_without_device(cuda_device_count):
    from vrlvr import _cuda

    info = _cuda.build_info()
    assert info["module"] == "vrlvr._cuda"
    assert info["cudart"] == "static"
    assert info["architectures"], "CMAKE_CUDA_ARCHITECTURES must be recorded"
    assert info["cuda_version"].split(".")[0].isdigit()
    status = _cuda.device_status()
    assert status["device_count"] == _cuda.device_count() == cuda_device_count
    if status["device_count"] == 0:
        # no driver / no device must be reported, not crash
        assert status["error"]
        assert status["devices"] == []


def test_backend_report_never_raises():
    from vrlvr.backends import all_statuses

    statuses = {s.name: s for s in all_statuses()}
    assert set(statuses) == {"native", "cuda", "triton"}
    assert statuses["native"].usable
    for s in statuses.values():
        assert s.detail
