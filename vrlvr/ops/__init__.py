"""Fused ops with several backends and one torch reference each (see vrlvr.ops.dispatch).

The SDE step of SDE-GRPO: ``sde_step`` (sample + log-prob), ``sde_logprob`` (re-score a recorded
sample, differentiable w.r.t. the velocity) and ``sde_kl`` (KL to the reference policy).
"""

from vrlvr.ops.dispatch import BACKENDS, BackendUnavailableError, select_backend
from vrlvr.ops.sde import SdeStep, SdeStepWithMean, sde_kl, sde_logprob, sde_step
from vrlvr.ops.sde_args import MODES

__all__ = [
    "BACKENDS",
    "MODES",
    "BackendUnavailableError",
    "SdeStep",
    "SdeStepWithMean",
    "select_backend",
    "sde_kl",
    "sde_logprob",
    "sde_step",
]
