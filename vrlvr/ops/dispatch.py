"""Which backend runs an op: the fastest usable one for the tensors' device, unless forced.

Backends: "torch" (the reference, any device), "cpu" (vrlvr._native, CPU tensors), "triton"
(vrlvr.kernels; CUDA tensors, or CPU tensors in Triton's interpreter), "cuda" (vrlvr._cuda, CUDA
tensors). Automatic choice: CPU tensor -> cpu, else torch; CUDA tensor -> cuda, else triton, else
torch; any other device -> torch. ``backend=`` or the environment variable VRLVR_BACKEND forces one
(the argument wins); a forced backend that cannot run raises BackendUnavailableError saying why.
"""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["BACKENDS", "ENV_VAR", "BackendUnavailableError", "unavailable_reason", "select_backend"]

BACKENDS = ("torch", "cpu", "triton", "cuda")
ENV_VAR = "VRLVR_BACKEND"


class BackendUnavailableError(RuntimeError):
    """A forced backend cannot run these tensors here; the message says why."""


@functools.cache
def _module_status(name: str):
    """BackendStatus of 'native', 'cuda' or 'triton' (probed once per process: importing modules
    and asking the CUDA driver is not free, and the answer does not change)."""
    from vrlvr import backends

    return {"native": backends.native_status, "cuda": backends.cuda_status, "triton": backends.triton_status}[
        name
    ]()


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """None when `backend` can run tensors on `device`, otherwise the reason it cannot."""
    if backend == "torch":
        return None
    if backend == "cpu":
        if device.type != "cpu":
            return f"backend 'cpu' runs on CPU tensors, but the inputs are on {device}"
        status = _module_status("native")
        return None if status.usable else f"backend 'cpu' needs vrlvr._native: {status.detail}"
    if backend == "cuda":
        status = _module_status("cuda")
        if device.type != "cuda":
            why = f"backend 'cuda' runs on CUDA tensors, but the inputs are on {device}"
            return why if status.usable else f"{why} (and vrlvr._cuda is not usable here: {status.detail})"
        return None if status.usable else f"backend 'cuda' is not usable: {status.detail}"
    if backend == "triton":
        status = _module_status("triton")
        if not status.usable:
            return f"backend 'triton' is not usable: {status.detail}"
        if device.type == "cuda":
            return None
        if device.type == "cpu":
            if status.info.get("interpreter"):
                return None
            return (
                "backend 'triton' runs on CPU tensors only in Triton's interpreter "
                "(set TRITON_INTERPRET=1 before triton is imported)"
            )
        return f"backend 'triton' runs on CUDA tensors, but the inputs are on {device}"
    raise ValueError(
        f"unknown backend {backend!r}: expected one of {', '.join(map(repr, BACKENDS))} or 'auto'"
    )


def select_backend(device: torch.device, requested: str | None = None) -> str:
    """The backend to run tensors on `device`: `requested`, else $VRLVR_BACKEND, else automatic."""
    choice = requested if requested is not None else os.environ.get(ENV_VAR, "")
    choice = choice.strip().lower()
    if choice in ("", "auto"):
        if device.type == "cpu":
            order = ("cpu",)
        elif device.type == "cuda":
            order = ("cuda", "triton")
        else:
            order = ()
        for name in order:
            if unavailable_reason(name, device) is None:
                return name
        return "torch"
    source = "backend=" if requested is not None else f"{ENV_VAR}="
    if choice not in BACKENDS:
        expected = ", ".join(map(repr, BACKENDS))
        raise ValueError(f"unknown backend {choice!r} (from {source}): expected one of {expected} or 'auto'")
    reason = unavailable_reason(choice, device)
    if reason is not None:
        raise BackendUnavailableError(f"{reason} (requested by {source}{choice})")
    return choice
