"""Inference with a LoRA adapter folded into the base weights, undone exactly.

peft computes an adapted linear as ``W x + s B (A x)``: per layer two more matmuls, a scale and an
add over the full activation. Where no gradient is needed (evaluation, and the Euler steps of an
SDE-GRPO rollout outside its window) the same function is ``(W + s B A) x``: one matmul. On the
12-block tiny-pixel policy (rank 16 on every projection, 32 videos of 9 x 28 x 28) the adapter is
11% of a forward's FLOPs and 17-20% of its time on a CPU; bench/bench_lora_fold.py measures it.

``FoldedLoRA(transformer)`` computes ``W + s B A`` once per layer; entering it swaps those tensors
in for the base weights and turns the adapter layers off, leaving it puts the original weight
tensors back (the same objects: nothing is un-merged by subtraction, so repeated folds never
drift the base). It can be entered again and again while the adapter does not change (one rollout);
after an optimizer step build a new one.

It folds only where that keeps the function: float32 base weights and matmuls (a bf16 base or
autocast would round the adapter's small update into W's 8-bit mantissa and lose it), plain LoRA
on ``nn.Linear`` layers (no DoRA, no adapter bias, no active dropout), adapters on. Otherwise it
is a no-op context and the adapted forward runs: slower, never different.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["FoldedLoRA", "fold_outside"]


def _lora_linears(transformer: nn.Module):
    """The peft LoRA layers of ``transformer`` (none when peft never adapted it)."""
    from peft.tuners.lora import LoraLayer

    return [m for m in transformer.modules() if isinstance(m, LoraLayer)]


class FoldedLoRA:
    """A reusable context: inside it, ``transformer`` runs with W + s B A in place of W and its
    adapter layers off (inference only: gradients would not reach the adapter)."""

    def __init__(self, transformer: nn.Module, compute_dtype: torch.dtype = torch.float32):
        self.transformer = transformer
        self.compute_dtype = compute_dtype  # the dtype the matmuls run in (an autocast's)
        self._swaps: list[tuple[nn.Module, nn.Parameter, nn.Parameter]] = []  # (base, original, folded)
        self.reason = self._plan()  # why it does not fold, or None when it does

    @property
    def active(self) -> bool:
        return self.reason is None

    def _plan(self) -> str | None:
        from peft.tuners.lora import Linear as LoraLinear

        layers = _lora_linears(self.transformer)
        if not layers:
            return "no LoRA adapter"
        if self.compute_dtype != torch.float32:
            return f"the matmuls run in {self.compute_dtype} (folding would round the adapter away)"
        for layer in layers:
            if not isinstance(layer, LoraLinear) or not isinstance(layer.get_base_layer(), nn.Linear):
                return f"{type(layer).__name__} is not a LoRA linear layer"
            if layer.disable_adapters or layer.merged:
                return "the adapter is off or already merged"
            names = [a for a in layer.active_adapters if a in layer.lora_A]
            if any(layer.use_dora.get(a, False) for a in names):
                return "DoRA adapters do not fold into W"
            if any(getattr(layer, "lora_bias", {}).get(a, False) for a in names):
                return "the adapter has a bias (lora_bias): W + s B A leaves it out"
            drop = [layer.lora_dropout[a] for a in names]
            if layer.training and any(isinstance(d, nn.Dropout) and d.p > 0 for d in drop):
                return "LoRA dropout is active (training mode): the adapted forward is random"
            if layer.get_base_layer().weight.dtype != torch.float32:
                return "the base weights are not float32 (folding would round the adapter away)"
        with torch.no_grad():
            for layer in layers:
                base = layer.get_base_layer()
                names = [a for a in layer.active_adapters if a in layer.lora_A]
                w = base.weight.detach()
                folded = w.clone()
                for a in names:  # [out, in] += s * B [out, r] @ A [r, in]
                    folded += layer.get_delta_weight(a).to(w.dtype)
                self._swaps.append((base, base.weight, nn.Parameter(folded, requires_grad=False)))
        return None

    def __enter__(self) -> FoldedLoRA:
        if not self.active:
            return self
        if torch.is_grad_enabled():
            raise RuntimeError("FoldedLoRA is for inference: enter it under torch.no_grad()")
        self.transformer.disable_adapters()
        for base, _, folded in self._swaps:
            base.weight = folded
        return self

    def __exit__(self, *exc) -> None:
        if not self.active:
            return
        for base, original, _ in self._swaps:
            base.weight = original
        self.transformer.enable_adapters()


def fold_outside(
    policy, window: tuple[int, int] | None
) -> Callable[[int], contextlib.AbstractContextManager]:
    """Sampling step i -> the context its model call runs in: the policy's folded adapter outside
    the SDE window [start, end), the adapted forward inside it (the log-probs the update recomputes
    come from there, so they stay bit for bit). ``window`` None: every step folded. Build it once
    per sampling call, after the last optimizer step."""
    fold = policy.folded_lora() if getattr(policy, "lora", None) else None
    start, end = window if window is not None else (0, 0)

    def context(i: int) -> contextlib.AbstractContextManager:
        if fold is None or start <= i < end:
            return contextlib.nullcontext()
        return fold

    return context
