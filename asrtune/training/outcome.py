"""What a run leaves in ``best/`` and ``final/``, and the lines that end it.

``best/`` is the checkpoint with the lowest dev WER; with ``--guard-dev`` only among those whose
guard WER stays within ``--guard-margin`` points of the base model's (:func:`guard_allows`), so
it can be the base model itself, a training step, or a WiSE-FT merge of ``final/`` with the
base. A user reads the result off the last lines (:func:`outcome_lines`): what ``best/`` holds,
its dev and guard WER against the base, what ``final/`` holds, and, when the guard refused
weights that were better on dev, where they are and what to try next
(:func:`guard_refusal_note`).

The functions read a :class:`~asrtune.training.result.RunResult` (or anything with its
fields), so they describe a finished run's ``result.json`` the same way.
"""

from __future__ import annotations

from typing import Any

GUARD_ROUND_OFF = 1e-9  # percentage points: float round-off at exactly the margin is within it
# the merges --merge-alphas auto scores when the guard refused better-on-dev checkpoints
DEFAULT_MERGE_ALPHAS = (0.25, 0.5, 0.75)
MERGE_REQUESTED = "requested"  # RunResult.merge_reason: --merge-alphas listed alphas
MERGE_AFTER_REFUSAL = "guard refused"  # --merge-alphas auto after the guard refused better-on-dev weights


def guard_allows(guard_wer: float | None, base_wer: float | None, margin_points: float) -> bool:
    """Whether a checkpoint may become ``best/``: its guard WER is at most ``margin_points``
    absolute percentage points above the base model's (always true without a guard).

    >>> guard_allows(0.077, 0.073, 0.5), guard_allows(0.079, 0.073, 0.5), guard_allows(None, None, 0.5)
    (True, False, True)
    """
    if guard_wer is None or base_wer is None:
        return True
    return 100 * (guard_wer - base_wer) <= margin_points + GUARD_ROUND_OFF


def pct(wer: float | None) -> str:
    """A WER as the log prints it.

    >>> pct(0.2695), pct(None)
    ('26.95 %', 'n/a')
    """
    return "n/a" if wer is None else f"{100 * wer:.2f} %"


def best_holds(result: Any) -> str:
    """What ``best/`` holds, in words.

    >>> from types import SimpleNamespace as R
    >>> best_holds(R(best_step=0, best_merge_alpha=None, steps=9)), best_holds(R(best_step=6, best_merge_alpha=None, steps=9))
    ('the base model, unchanged', 'step 6')
    >>> best_holds(R(best_step=9, best_merge_alpha=0.25, steps=9))
    'the WiSE-FT merge 0.75 x base + 0.25 x final/ (alpha 0.25; final/ is step 9)'
    """
    if result.best_merge_alpha is not None:
        a = result.best_merge_alpha
        return f"the WiSE-FT merge {1 - a:g} x base + {a:g} x final/ (alpha {a:g}; final/ is step {result.steps})"
    if result.best_step == 0:
        return "the base model, unchanged"
    return f"step {result.best_step}"


def outcome_lines(result: Any, margin_points: float, has_dev: bool) -> list[str]:
    """The lines that end a run: what ``best/`` and ``final/`` hold and how they score.

    >>> from types import SimpleNamespace as R
    >>> r = R(steps=200, best_step=200, best_merge_alpha=None, best_dev_wer=None)
    >>> outcome_lines(r, 0.5, has_dev=False)
    ['best/ and final/ hold the same weights, those after step 200: without a --dev set no checkpoint is scored or chosen']
    >>> r = R(steps=197, best_step=0, best_merge_alpha=0.5, best_dev_wer=0.30, base_dev_wer=0.48, best_guard_wer=0.117,
    ...       guard_base_wer=0.1136, final_dev_wer=0.2695, final_guard_wer=0.134, guard_refused_step=None,
    ...       merges=[{"alpha": 0.5, "dev_wer": 0.30, "guard_wer": 0.117, "guard_ok": True},
    ...               {"alpha": 0.75, "dev_wer": 0.28, "guard_wer": 0.125, "guard_ok": False}], merge_reason="guard refused")
    >>> print("\\n".join(outcome_lines(r, 0.5, has_dev=True)))  # doctest: +NORMALIZE_WHITESPACE
    best/: the WiSE-FT merge 0.5 x base + 0.5 x final/ (alpha 0.5; final/ is step 197): dev WER 30.00 % (base 48.00 %),
    guard WER 11.70 % (base 11.36 %, allowed up to 11.86 %)
    final/: step 197: dev WER 26.95 %, guard WER 13.40 %, over the guard's margin: the better-on-dev weights the guard
    refused are there
    WiSE-FT merges of final/ with the base (scored because the guard refused better-on-dev checkpoints): alpha 0.5: dev
    30.00 %, guard 11.70 %; alpha 0.75: dev 28.00 %, guard 12.50 % (over the margin)
    """
    if not has_dev:
        return [f"best/ and final/ hold the same weights, those after step {result.steps}: without a --dev set no "
                "checkpoint is scored or chosen"]
    guarded = getattr(result, "guard_base_wer", None) is not None
    base = getattr(result, "base_dev_wer", None)
    best = (f"best/: {best_holds(result)}: dev WER {pct(result.best_dev_wer)}" + (f" (base {pct(base)})" if base is not None else ""))
    if guarded:
        allowed = result.guard_base_wer + margin_points / 100
        best += f", guard WER {pct(result.best_guard_wer)} (base {pct(result.guard_base_wer)}, allowed up to {pct(allowed)})"
    lines = [best]
    if result.best_step == result.steps and result.best_merge_alpha is None:
        lines.append("final/: the same weights as best/")
    else:
        final = f"final/: step {result.steps}: dev WER {pct(result.final_dev_wer)}"
        if guarded:
            final += f", guard WER {pct(result.final_guard_wer)}"
            if not guard_allows(result.final_guard_wer, result.guard_base_wer, margin_points):
                final += ", over the guard's margin"
                if result.final_dev_wer is not None and result.best_dev_wer is not None and result.final_dev_wer < result.best_dev_wer:
                    final += ": the better-on-dev weights the guard refused are there"
        lines.append(final)
    if result.merges:
        why = ("scored because the guard refused better-on-dev checkpoints" if result.merge_reason == MERGE_AFTER_REFUSAL
               else "--merge-alphas")
        lines.append(f"WiSE-FT merges of final/ with the base ({why}): " + "; ".join(
            f"alpha {m['alpha']:g}: dev {pct(m['dev_wer'])}"
            + (f", guard {pct(m['guard_wer'])}" + ("" if m.get("guard_ok", True) else " (over the margin)")
               if m.get("guard_wer") is not None else "")
            for m in result.merges))
    if result.guard_refused_step is not None:
        lines.append(guard_refusal_note(result, margin_points))
    elif result.best_step == 0 and result.best_merge_alpha is None:
        lines.append("no checkpoint scored lower than the base on dev, so best/ kept the base model")
    return lines


def guard_refusal_note(result: Any, margin_points: float) -> str:
    """The warning for a run whose forgetting guard kept a better-on-dev checkpoint out of ``best/``.

    >>> from types import SimpleNamespace as R
    >>> r = R(steps=197, best_dev_wer=0.48, best_step=0, best_merge_alpha=None, guard_base_wer=0.1136,
    ...       guard_refused_step=150, guard_refused_dev_wer=0.2695, merges=[])
    >>> print(guard_refusal_note(r, 0.5))  # doctest: +NORMALIZE_WHITESPACE
    warning: the forgetting guard kept best/ at the base model, unchanged (dev WER 48.00 %): step 150 reached 26.95 % on
    dev but its guard WER rose more than 0.5 points over the base's 11.36 %, so the model forgot general speech. Those
    weights were not kept; final/ holds the last ones (step 197). To adapt without forgetting: train with --recipe
    keep-general (or --distill-base, --l2-sp, --replay-text), interpolate with the base (--merge-alphas 0.25,0.5,0.75,
    or asrtune merge), replay general data (--train domain.jsonl,general.jsonl --weights 0.8,0.2), a lower --lr (and
    --encoder-lr), fewer --train-encoder-top layers, or more --guard-margin.
    """
    where = ("final/ holds those weights" if result.guard_refused_step == result.steps
             else f"Those weights were not kept; final/ holds the last ones (step {result.steps})")
    merge_hint = "" if result.merges else ("interpolate with the base (--merge-alphas "
                                           f"{','.join(f'{a:g}' for a in DEFAULT_MERGE_ALPHAS)}, or asrtune merge), ")
    return (f"warning: the forgetting guard kept best/ at {best_holds(result)} (dev WER {pct(result.best_dev_wer)}): "
            f"step {result.guard_refused_step} reached {pct(result.guard_refused_dev_wer)} on dev but its guard WER rose "
            f"more than {margin_points:g} points over the base's {pct(result.guard_base_wer)}, so the model forgot general "
            f"speech. {where}. To adapt without forgetting: train with --recipe keep-general (or --distill-base, "
            f"--l2-sp, --replay-text), {merge_hint}replay general data (--train "
            "domain.jsonl,general.jsonl --weights 0.8,0.2), a lower --lr (and --encoder-lr), fewer --train-encoder-top "
            "layers, or more --guard-margin.")


__all__ = ["DEFAULT_MERGE_ALPHAS", "MERGE_AFTER_REFUSAL", "MERGE_REQUESTED", "best_holds", "guard_allows",
           "guard_refusal_note", "outcome_lines", "pct"]
