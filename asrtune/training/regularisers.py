"""Keeping a fine-tune close to its base model, so it gains on the domain without forgetting.

Two regularisers, each off unless its option is given (``asrtune train --help``, group "keeping
general English"):

* **L2-SP** (``--l2-sp STRENGTH``; Li, Grandvalet & Davoine 2018) pulls every trainable weight
  back towards its pretrained value. It is applied *decoupled*, the way AdamW applies weight
  decay, because Adam rescales any gradient a penalty adds to the loss: after each optimiser step
  ``w -= lr_t * STRENGTH * (w - w_base)``. A weight then settles where the task's step (about
  ``lr_t`` for Adam) meets the pull, so ``1 / STRENGTH`` is roughly how far one weight may move.
* **Distillation from the base** (``--distill-base WEIGHT``, ``--distill-temperature T``;
  "learning without forgetting", Li & Hoiem 2016): the loss adds
  ``WEIGHT * T^2 * KL(base_T || model_T)`` per target token, the frozen base model's token
  distribution at temperature ``T`` on the same audio and prefix. The decoder keeps the base's
  language model wherever the domain does not push it away. With the encoder cache it costs one
  more decoder forward per step and needs no extra data.

The third remedy, replaying general data, is :mod:`asrtune.training.replay`; the fourth,
weight averaging, is ``--merge-alphas`` (:mod:`asrtune.training.outcome`).

>>> import torch
>>> student, base = torch.tensor([[[2.0, 0.0]]]), torch.tensor([[[0.0, 2.0]]])
>>> labels = torch.tensor([[1]])
>>> round(float(distillation_loss(student, base, labels, temperature=1.0)), 3)
1.523
>>> float(distillation_loss(base, base, labels, temperature=2.0))
0.0
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from asrtune.training.adapters.base import IGNORE_INDEX

if TYPE_CHECKING:
    from asrtune.training.adapters.base import ModelAdapter
    from asrtune.training.config import TrainConfig


def distillation_loss(logits: torch.Tensor, base_logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over target tokens (``labels != IGNORE_INDEX``) of ``T^2 * KL(base_T || model_T)``.

    The ``T^2`` keeps the gradient's scale independent of the temperature (Hinton et al. 2015),
    so ``--distill-base`` means the same at every ``--distill-temperature``.
    """
    targets = labels != IGNORE_INDEX
    if not bool(targets.any()):
        return logits.sum() * 0.0  # keeps the graph: every rank of a distributed run calls backward
    log_p = nn.functional.log_softmax(logits[targets].float() / temperature, dim=-1)
    log_q = nn.functional.log_softmax(base_logits[targets].float() / temperature, dim=-1)
    kl = nn.functional.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    return kl * temperature**2


@dataclass
class Regularisers:
    """The run's pull towards its base model: what ``--l2-sp`` and ``--distill-base`` need,
    taken from the base weights before the first step (and before any resume)."""

    l2_sp: float = 0.0
    distill_weight: float = 0.0
    temperature: float = 1.0
    #: parameter -> its base value on the parameter's device (``--l2-sp``), keyed by ``id(parameter)``
    anchors: dict[int, torch.Tensor] = field(default_factory=dict)
    #: a frozen copy of the base model (``--distill-base``)
    base_model: nn.Module | None = None

    @classmethod
    def build(cls, config: "TrainConfig", adapter: "ModelAdapter", may_train: list[nn.Parameter]) -> "Regularisers":
        """Regularisers for ``config``, anchored at ``adapter``'s current (base) weights;
        ``may_train`` lists every parameter training may change (later-unfrozen layers included)."""
        reg = cls(l2_sp=config.l2_sp, distill_weight=config.distill_base, temperature=config.distill_temperature)
        if reg.l2_sp:
            reg.anchors = {id(p): p.detach().clone() for p in may_train}
        if reg.distill_weight:
            reg.base_model = frozen_copy(adapter.distillation_model())
        return reg

    @property
    def active(self) -> bool:
        return bool(self.l2_sp or self.distill_weight)

    def loss(self, adapter: "ModelAdapter", model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The task loss of ``batch`` plus the distillation term; returns ``(total, distillation)``
        (the second is None without ``--distill-base``; it is logged on its own)."""
        if self.base_model is None:
            return adapter.loss(model, batch), None
        logits = adapter.logits(model, batch)
        with torch.no_grad():
            base_logits = adapter.logits(self.base_model, batch, self.base_model)
        labels = batch["labels"]
        task = nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=IGNORE_INDEX)
        distill = distillation_loss(logits, base_logits, labels, self.temperature)
        return task + self.distill_weight * distill, distill.detach()

    @torch.no_grad()
    def pull_towards_base(self, optimizer: torch.optim.Optimizer) -> None:
        """``--l2-sp``: move each trainable weight ``lr * l2_sp`` of the way back to its base value
        (after the optimiser step, at each parameter group's current learning rate)."""
        if not self.l2_sp:
            return
        for group in optimizer.param_groups:
            rate = group["lr"] * self.l2_sp
            for p in group["params"]:
                anchor = self.anchors.get(id(p))
                if anchor is not None and p.requires_grad:
                    p.sub_(p - anchor, alpha=rate)

    def describe(self) -> str | None:
        """One log line, or None when both are off."""
        parts = []
        if self.l2_sp:
            parts.append(f"L2-SP towards the base weights, strength {self.l2_sp:g}")
        if self.distill_weight:
            parts.append(f"distillation from the base model, weight {self.distill_weight:g} at temperature {self.temperature:g}")
        return "regularisers: " + "; ".join(parts) if parts else None


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with no trainable parameters (the distillation teacher)."""
    base: Any = copy.deepcopy(model)
    base.eval()
    for p in base.parameters():
        p.requires_grad_(False)
    return base
