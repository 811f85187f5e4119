"""One place that turns a user's device name into a torch.device, or says clearly why it cannot.

``torch.device("tpu")`` raises a RuntimeError with a long list of backends, and ``torch.device("cuda")``
on a CPU build succeeds and fails later, deep inside the first tensor move. ``resolve_device`` checks
up front and raises a one-line ValueError (the CLI turns it into exit status 2).
"""

from __future__ import annotations

import re

import torch

__all__ = ["resolve_device", "DEVICE_HELP"]

DEVICE_HELP = "auto (cuda if available, else cpu), cpu, cuda or cuda:N"


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' (| 'mps' where available) -> torch.device; ValueError otherwise."""
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m:
        if torch.version.cuda is None:
            raise ValueError(
                f"device {name!r}: this torch ({torch.__version__}) is a CPU-only build; use --device cpu "
                "or install a CUDA build of torch"
            )
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: torch has CUDA {torch.version.cuda} but sees no usable GPU")
        index = int(m.group(1)) if m.group(1) is not None else None
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            raise ValueError(f"device {name!r}: only {count} GPU(s) visible (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index) if index is not None else torch.device("cuda")
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps': not available on this machine")
        return torch.device("mps")
    raise ValueError(f"unknown device {name!r}: use {DEVICE_HELP}")
