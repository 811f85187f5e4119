"""vrlvr: video diffusion models that reason, trained with verifiable rewards (VideoRLVR)."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("vrlvr")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
