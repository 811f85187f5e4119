"""Test-wide setup. TRITON_INTERPRET must be set before anything imports triton, so it is set
here, at conftest import, ahead of every test module."""

import os
import sys
from pathlib import Path

# Triton's interpreter on a CPU-only machine; on a machine with an NVIDIA driver the Triton GPU
# tests run compiled (`pytest -m gpu`). Set TRITON_INTERPRET yourself to force either.
os.environ.setdefault("TRITON_INTERPRET", "0" if os.path.exists("/dev/nvidiactl") else "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# scripts/reproduce.py keeps its parts in scripts/reproduction/: the tests import them from there
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI runs a fixed set of hypothesis examples (a red CI must be reproducible); local runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_report_header(config):
    import vrlvr

    return f"vrlvr {vrlvr.__version__} from {os.path.dirname(vrlvr.__file__)}"


@pytest.fixture(scope="session")
def cuda_device_count():
    """Number of CUDA devices vrlvr._cuda sees (0 here: GPU tests skip, never fake)."""
    try:
        from vrlvr import _cuda
    except ImportError:
        return 0
    return _cuda.device_count()


@pytest.fixture(scope="session")
def tiny_model() -> list[str]:
    """Config overrides for a 2-layer tiny-pixel model: SFT runs in tests take seconds."""
    return [
        "model.tiny.num_layers=2",
        "model.tiny.num_heads=2",
        "model.tiny.head_dim=16",
        "model.tiny.ffn_dim=64",
        "model.tiny.text_dim=16",
        "model.tiny.freq_dim=32",
    ]
