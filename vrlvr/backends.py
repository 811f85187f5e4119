"""What this installation can run: the native CPU module, the CUDA module and Triton.

Every probe returns a (usable, detail) pair and never raises, so `vrlvr info` and the op
dispatchers can explain why a backend is missing instead of failing on import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BackendStatus:
    name: str
    usable: bool
    detail: str
    info: dict[str, Any] = field(default_factory=dict)


def native_status() -> BackendStatus:
    try:
        native = importlib.import_module("vrlvr._native")
    except ImportError as exc:
        return BackendStatus("native", False, f"vrlvr._native did not import ({exc}); reinstall vrlvr")
    info = dict(native.build_info())
    omp = "OpenMP on" if info.get("openmp") else "OpenMP off"
    return BackendStatus("native", True, f"{info['compiler']}, {omp}, {native.max_threads()} threads", info)


def cuda_status() -> BackendStatus:
    """vrlvr._cuda built, and how many devices it sees (0 on a machine without a driver)."""
    try:
        cuda = importlib.import_module("vrlvr._cuda")
    except ImportError as exc:
        return BackendStatus(
            "cuda", False, f"vrlvr._cuda not built ({exc}); rebuild with nvcc on PATH and VRLVR_CUDA=ON"
        )
    info = dict(cuda.build_info())
    status = dict(cuda.device_status())
    info["device_status"] = status
    archs = ",".join(info.get("architectures", []))
    n = status["device_count"]
    if n == 0:
        why = status.get("error") or "no device"
        return BackendStatus(
            "cuda", False, f"built (CUDA {info['cuda_version']}, sm {archs}); no device: {why}", info
        )
    names = ", ".join(d["name"] for d in status["devices"])
    return BackendStatus(
        "cuda", True, f"built (CUDA {info['cuda_version']}, sm {archs}); {n} device(s): {names}", info
    )


def triton_status() -> BackendStatus:
    from vrlvr import kernels

    version = kernels.triton_version()
    reason = kernels.unavailable_reason()
    info = {"version": version, "interpreter": kernels.interpreter_mode()}
    if reason is not None:
        return BackendStatus("triton", False, reason, info)
    mode = "interpreter (CPU)" if kernels.interpreter_mode() else "GPU"
    return BackendStatus("triton", True, f"triton {version}, {mode}", info)


def all_statuses() -> list[BackendStatus]:
    return [native_status(), cuda_status(), triton_status()]
