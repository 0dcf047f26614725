"""The learning-rate schedule: a pure function of the step (nanoGPT-style), so "the scheduler
state" in a checkpoint is the step number itself."""

from __future__ import annotations

import math

DEFAULT_EPOCHS = 3  # when neither --max-steps nor --epochs is given


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then decay.

    >>> [round(lr_factor(s, 10, 2, "linear"), 2) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.12]
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress) if progress < 1 else 0.0


def total_steps(max_steps: int | None, epochs: float | None, steps_per_epoch: int) -> int:
    """``--max-steps``, else ``--epochs`` (default :data:`DEFAULT_EPOCHS`) worth of steps.

    >>> total_steps(None, None, 4), total_steps(None, 0.5, 5), total_steps(7, 2, 5)
    (12, 3, 7)
    """
    return max_steps or math.ceil((epochs or DEFAULT_EPOCHS) * steps_per_epoch)


def unfreeze_layers(freeze: str, top_layers: int) -> int:
    """How many top encoder layers may open (``--unfreeze-top-layers``, with ``--freeze encoder`` only).

    >>> unfreeze_layers("encoder", 2), unfreeze_layers("none", 2)
    (2, 0)
    """
    return top_layers if freeze == "encoder" else 0


def unfreeze_step(freeze: str, top_layers: int, after: int | None) -> int | None:
    """The step the top encoder layers unfreeze at: ``--unfreeze-after``, or 0 when only K is
    given; None when none open.

    >>> unfreeze_step("encoder", 2, None), unfreeze_step("encoder", 2, 50), unfreeze_step("encoder", 0, 50)
    (0, 50, None)
    """
    if not unfreeze_layers(freeze, top_layers):
        return None
    return after if after is not None else 0
