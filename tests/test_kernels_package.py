"""The Triton kernels ship as vrlvr.kernels and import on a CPU machine in interpreter mode."""

import os


def test_kernels_package_imports_in_interpreter_mode():
    assert os.environ["TRITON_INTERPRET"] == "1"
    from vrlvr import kernels

    assert kernels.interpreter_mode()
    assert kernels.triton_version() is not None
    assert kernels.available(), kernels.unavailable_reason()


def test_no_top_level_kernels_package_is_installed():
    import importlib.util

    import vrlvr

    spec = importlib.util.find_spec("kernels")
    # `kernels` is another project's name on PyPI: we must never install one.
    if spec is not None and spec.origin:
        assert os.path.dirname(vrlvr.__file__) not in spec.origin
