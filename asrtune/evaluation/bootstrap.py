"""Bootstrap confidence intervals for corpus WER and paired tests between two systems.

Utterances are the resampling unit (errors within an utterance are correlated). Each resample
draws N utterance indices with replacement and recomputes corpus WER as
sum(errors) / sum(reference words) over the draw, so long utterances weigh as they do in the
point estimate. Everything runs on per-utterance count arrays with numpy, in blocks of
resamples so memory stays bounded for large test sets. The seed is fixed: the same inputs give
the same interval.

Paired test (this - other): both systems are resampled with the same indices, which removes the
between-utterance variance that dominates an unpaired comparison. The two-sided p-value is the
share of resamples whose difference, centred on the observed one, is at least as far from zero
as the observed difference: ``p = (1 + #{|d_b - d| >= |d|}) / (1 + B)``. Identical systems give
p = 1; a system better on most utterances gives p near 1 / (1 + B).

>>> import numpy as np
>>> ci = bootstrap_ci(np.array([1, 0, 2, 1]), np.array([10, 10, 10, 10]))
>>> ci.low <= ci.estimate <= ci.high
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asrtune.evaluation.records import Record

N_RESAMPLES = 1000
SEED = 20_240_601
CONFIDENCE = 0.95
_BLOCK_ELEMENTS = 5_000_000  # indices drawn per block (~40 MB of int64)


@dataclass(frozen=True)
class ConfidenceInterval(Record):
    """A percentile bootstrap interval for corpus WER (``low``/``high`` None: undefined, when
    resampled references can all be empty).

    >>> ConfidenceInterval(0.1, 0.05, 0.16, n_utterances=40).high
    0.16
    """

    estimate: float
    low: float | None
    high: float | None
    confidence: float = CONFIDENCE
    n_resamples: int = N_RESAMPLES
    n_utterances: int = 0
    seed: int = SEED
    method: str = "percentile bootstrap over utterances"


@dataclass(frozen=True)
class PairedResult(Record):
    """Paired bootstrap of ``wer(this) - wer(other)`` on matched utterances (``low``/``high``
    None: undefined, as in :class:`ConfidenceInterval`).

    >>> r = PairedResult(-0.02, -0.035, -0.006, 0.004, 0.08, 0.1, 300)
    >>> r.difference < 0 and r.high < 0
    True
    """

    difference: float
    low: float | None
    high: float | None
    p_value: float
    this_wer: float
    other_wer: float
    n_utterances: int
    confidence: float = CONFIDENCE
    n_resamples: int = N_RESAMPLES
    seed: int = SEED
    method: str = "paired percentile bootstrap over utterances; two-sided p from centred resamples"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _resampled_sums(columns: list[np.ndarray], n_resamples: int, seed: int) -> list[np.ndarray]:
    """For each column, its sums over ``n_resamples`` bootstrap draws of the same row indices."""
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    out = [np.empty(n_resamples, dtype=np.float64) for _ in columns]
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        for col, dest in zip(columns, out):
            dest[start:stop] = col[idx].sum(axis=1)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.where(num > 0, np.inf, 0.0))


def bootstrap_ci(
    errors: np.ndarray,
    ref_words: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> ConfidenceInterval:
    """Percentile bootstrap CI of corpus WER from per-utterance error and reference-word counts."""
    errors = np.asarray(errors, dtype=np.float64)
    ref_words = np.asarray(ref_words, dtype=np.float64)
    n = len(errors)
    total_ref = ref_words.sum()
    estimate = float(errors.sum() / total_ref) if total_ref > 0 else 0.0
    if n == 0:
        return ConfidenceInterval(0.0, 0.0, 0.0, confidence, n_resamples, 0, seed)
    err_b, ref_b = _resampled_sums([errors, ref_words], n_resamples, seed)
    wers = _ratio(err_b, ref_b)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(wers, [alpha, 1.0 - alpha], method="inverted_cdf")
    return ConfidenceInterval(estimate, _finite(low), _finite(high), confidence, n_resamples, n, seed)


def paired_bootstrap(
    errors_this: np.ndarray,
    ref_this: np.ndarray,
    errors_other: np.ndarray,
    ref_other: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> PairedResult:
    """Paired bootstrap of the WER difference this - other over matched utterances (same order).

    Reference counts are taken per system because the two reports may have normalised the
    references differently; with the same normaliser they are equal.
    """
    cols = [np.asarray(c, dtype=np.float64) for c in (errors_this, ref_this, errors_other, ref_other)]
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError("paired_bootstrap needs four arrays of the same length")
    this_wer = float(cols[0].sum() / cols[1].sum()) if cols[1].sum() > 0 else 0.0
    other_wer = float(cols[2].sum() / cols[3].sum()) if cols[3].sum() > 0 else 0.0
    observed = this_wer - other_wer
    if n == 0:
        return PairedResult(0.0, 0.0, 0.0, 1.0, this_wer, other_wer, 0, confidence, n_resamples, seed)
    e_a, r_a, e_b, r_b = _resampled_sums(cols, n_resamples, seed)
    diffs = _ratio(e_a, r_a) - _ratio(e_b, r_b)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha], method="inverted_cdf")
    # Null-centred two-sided test: how often does resampling noise alone move the difference as
    # far as the observed one? (+1 in numerator and denominator: a p-value is never exactly 0.)
    extreme = np.count_nonzero(np.abs(diffs - observed) >= abs(observed) - 1e-12)
    p_value = float((1 + extreme) / (1 + n_resamples))
    return PairedResult(observed, _finite(low), _finite(high), min(1.0, p_value), this_wer, other_wer, n, confidence, n_resamples,
                        seed)
