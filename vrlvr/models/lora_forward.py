"""peft's adapted LoRA forward with the adapter's product accumulated into the base GEMM's output.

peft computes an adapted linear layer as ``result = W x + b; result = result + B (A x) * s``: after
the two small matmuls it writes B (A x) as a full [rows, out] tensor, reads it again to scale it,
writes the scaled copy, and reads that and ``result`` to write their sum. Three elementwise passes
over the activation, memory-bound on a CPU: on the 4-block tiny-pixel policy they were about a
third of an adapted forward (aten::add and aten::mul in the profile, beside the GEMMs).

``FusedLoraLinear.forward`` computes the same expression as ``y = W x + b`` followed by
``y.addmm_(A x, B^T, alpha=s)``: BLAS computes ``s (h B^T) + y`` inside the GEMM that forms the
adapter's product, so the product never becomes a tensor of its own. Autograd differentiates
both (the in-place addmm needs only h and B for its backward, never y's old value), and the
function is the same as peft's up to the rounding of the scale (``s * acc`` rounded once
instead of twice where BLAS fuses it; tests/test_models_lora_forward.py checks values and
gradients against peft's forward and against a torch reference).

This is the forward every adapted step runs that the LoRA fold (vrlvr.models.lora_fold) cannot
take: the SDE window's rollout steps and the update's forward and backward. ``fuse_lora_forward``
turns a transformer's peft ``lora.Linear`` layers into ``FusedLoraLinear`` (a subclass: peft's
merge, unload, save and load work unchanged) and back. A layer falls back to peft's own forward
whenever its state is not the plain case: adapters off or merged, several or variant (DoRA)
adapters, adapter bias, active dropout, ``adapter_names`` batches, autocast, or weights and input
of different dtypes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners.lora import Linear as LoraLinear
from torch import nn

__all__ = ["FusedLoraLinear", "fuse_lora_forward"]


class FusedLoraLinear(LoraLinear):
    """peft's LoRA ``Linear`` whose plain adapted forward runs as two GEMMs and one small matmul."""

    def _plain_adapter(self, x: torch.Tensor, args: tuple, kwargs: dict) -> str | None:
        """The one active adapter when the fused path computes peft's function, else None."""
        if args or kwargs or self.disable_adapters or self.merged:
            return None
        active = [a for a in self.active_adapters if a in self.lora_A]
        if len(active) != 1:
            return None
        name = active[0]
        if name in self.lora_variant or self.use_dora.get(name, False):
            return None
        base, lora_B = self.get_base_layer(), self.lora_B[name]
        if type(base) is not nn.Linear or lora_B.bias is not None:
            return None
        drop = self.lora_dropout[name]
        if self.training and isinstance(drop, nn.Dropout) and drop.p > 0:
            return None
        # autocast would cast each matmul by its own rules; peft's forward is the reference there
        if torch.is_autocast_enabled(x.device.type):
            return None
        dtype = x.dtype
        if (
            base.weight.dtype != dtype
            or self.lora_A[name].weight.dtype != dtype
            or lora_B.weight.dtype != dtype
        ):
            return None
        return name

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        name = self._plain_adapter(x, args, kwargs)
        if name is None:
            return super().forward(x, *args, **kwargs)
        base = self.get_base_layer()
        rows = x.reshape(-1, x.shape[-1])  # [N, in] (a view when x is contiguous)
        y = F.linear(rows, base.weight, base.bias)  # [N, out]
        h = F.linear(rows, self.lora_A[name].weight)  # [N, r]
        # y += s * h @ B^T inside one GEMM (beta = 1): no [N, out] temporary for the adapter
        y.addmm_(h, self.lora_B[name].weight.t(), alpha=self.scaling[name])
        return y.view(*x.shape[:-1], y.shape[-1])


def fuse_lora_forward(module: nn.Module, enable: bool = True) -> int:
    """Turn every peft LoRA ``Linear`` of ``module`` into a ``FusedLoraLinear`` (``enable=False``:
    back to peft's class). Returns how many layers it changed."""
    target, source = (FusedLoraLinear, LoraLinear) if enable else (LoraLinear, FusedLoraLinear)
    changed = 0
    for layer in module.modules():
        if type(layer) is source:  # exactly peft's class: never a subclass someone else made
            layer.__class__ = target
            changed += 1
    return changed
