"""Triton kernels of vrlvr, shipped inside the wheel as ``vrlvr.kernels``.

The kernels target CUDA tensors. On a machine without a GPU they run in Triton's interpreter
(``TRITON_INTERPRET=1``, which must be set before anything imports triton): that is how they are
tested on CPU. Importing this package never requires a GPU; importing it without triton installed
works too, and :func:`available` then says why the kernels cannot run.
"""

from __future__ import annotations

import os

__all__ = ["available", "interpreter_mode", "triton_version", "unavailable_reason"]


def interpreter_mode() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def triton_version() -> str | None:
    try:
        import triton
    except Exception:  # triton missing or broken: report, never raise on import
        return None
    return triton.__version__


def unavailable_reason() -> str | None:
    """None when Triton kernels can run here, otherwise a sentence saying why not."""
    if triton_version() is None:
        return "triton is not installed (pip install triton)"
    if interpreter_mode():
        return None
    try:
        import torch
    except Exception:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device (set TRITON_INTERPRET=1 before importing triton to run on CPU)"
    return None


def available() -> bool:
    return unavailable_reason() is None
