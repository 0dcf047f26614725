"""The divergence guard: a NaN/inf loss, or a smoothed loss far above its best, stops the run
with a message naming the likely cause (the learning rate) and what is kept."""

from __future__ import annotations

import math
from pathlib import Path

from asrtune.errors import AsrtuneError
from asrtune.training.state import TrainState, find_checkpoint

LOSS_EMA = 0.1  # weight of the newest loss in the smoothed loss the divergence guard watches
DIVERGENCE_GRACE_STEPS = 10  # steps before an exploding (finite) loss counts as divergence
# A loss that has fallen near zero (a small domain learnt by heart) can be "4x its best" while
# rising by thousandths of a nat; divergence must also be a real rise, in nats per token.
DIVERGENCE_MIN_RISE_NATS = 0.5


class TrainingDiverged(AsrtuneError):
    """The loss became NaN/inf or exploded; the message names the likely cause."""


def loss_exploded(loss_ema: float, best_ema: float, factor: float) -> bool:
    """Divergence: the smoothed loss is ``factor`` times its best *and* more than
    :data:`DIVERGENCE_MIN_RISE_NATS` above it.

    >>> loss_exploded(2.5, 0.5, 4.0), loss_exploded(0.006, 0.0015, 4.0), loss_exploded(1.5, 0.5, 4.0)
    (True, False, False)
    """
    return loss_ema > factor * best_ema and loss_ema - best_ema > DIVERGENCE_MIN_RISE_NATS


def watch_loss(state: TrainState, loss: float, factor: float) -> str | None:
    """Fold ``loss`` into the smoothed loss in ``state``; what went wrong, or None."""
    if not math.isfinite(loss):
        return f"the loss became {loss}"
    s = state
    s.loss_ema = loss if s.loss_ema is None else (1 - LOSS_EMA) * s.loss_ema + LOSS_EMA * loss
    s.min_loss_ema = s.loss_ema if s.min_loss_ema is None else min(s.min_loss_ema, s.loss_ema)
    if s.step >= DIVERGENCE_GRACE_STEPS and loss_exploded(s.loss_ema, s.min_loss_ema, factor):
        return f"the smoothed loss {s.loss_ema:.3g} exploded past {factor:g}x its best ({s.min_loss_ema:.3g})"
    return None


def diverged(run_dir: Path, step: int, lr: float, what: str) -> TrainingDiverged:
    """The error that ends a diverged run: what happened, the likely cause, and what is kept."""
    ckpt = find_checkpoint(run_dir)
    best = run_dir / "best"
    saved = ([f"the last good checkpoint ({ckpt.parent})"] if ckpt else []) + ([str(best)] if best.exists() else [])
    kept = " and ".join(saved) + " kept" if saved else "no checkpoint was written yet"
    return TrainingDiverged(
        f"training diverged at step {step}: {what}. Likely cause: the learning rate ({lr:g}) "
        f"is too high for fine-tuning - try --lr 1e-5 to 3e-5 (or a longer --warmup-steps); {kept}"
    )
