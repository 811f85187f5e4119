"""Print versions and which backends (native CPU, CUDA, Triton) are usable on this machine."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _driver_loadable() -> bool:
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def _explain_cuda(status) -> None:
    """cudart reports a missing driver as "insufficient driver" (it cannot tell none from too old):
    say which it is."""
    dev = status.info.get("device_status") or {}
    if status.usable or "InsufficientDriver" not in str(dev.get("error", "")):
        return
    built = status.detail.split(";")[0]
    if not dev.get("driver_version") and not _driver_loadable():
        status.detail = f"{built}; no device: no NVIDIA driver installed (libcuda.so.1 not found)"
    else:
        v = dev.get("driver_version") or 0
        supports = f"supports CUDA {v // 1000}.{v % 1000 // 10}" if v else "version unknown"
        status.detail = (
            f"{built}; no device: the NVIDIA driver ({supports}) is older than the CUDA runtime vrlvr "
            "was built with; update the driver"
        )


def collect() -> dict:
    from vrlvr import __version__
    from vrlvr.backends import all_statuses

    versions = {"vrlvr": __version__, "python": platform.python_version()}
    for dist in ("torch", "numpy", "numba", "triton", "diffusers", "peft", "transformers"):
        versions[dist] = _version(dist)
    statuses = all_statuses()
    for s in statuses:
        if s.name == "cuda":
            _explain_cuda(s)
    backends = {s.name: {"usable": s.usable, "detail": s.detail, "info": s.info} for s in statuses}
    return {"platform": platform.platform(), "versions": versions, "backends": backends}


def run(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
        return 0
    print(f"vrlvr {report['versions']['vrlvr']} on {report['platform']}")
    print("versions:")
    for name, ver in report["versions"].items():
        print(f"  {name:<13} {ver or 'not installed'}")
    print("backends:")
    for name, b in report["backends"].items():
        mark = "yes" if b["usable"] else "no "
        print(f"  {name:<7} {mark}  {b['detail']}")
    return 0
