"""Evaluation layer: error counts, bootstrap CIs, domain terms, failure flags and reports.

>>> from asrtune.evaluation import corpus_wer
>>> corpus_wer(["Fifty cats."], ["50 cats"])
0.0

``evaluate`` (decode + score + write a report), ``score_file`` (the same report from another
system's hypotheses file), ``score_hypotheses`` (score hypotheses you already have;
``write_report`` writes them) and ``evaluate_hypotheses`` (both) return an ``EvalReport``
(:mod:`asrtune.evaluation.schema`, the typed report.json). They are imported lazily so that
``asrtune.evaluation.metrics`` stays light for the trainer's dev-set WER.
"""

from asrtune.evaluation.metrics import (
    Alignment,
    ErrorCounts,
    align_words,
    char_error_counts,
    corpus_cer,
    corpus_wer,
    error_counts,
)

__all__ = [
    "Alignment",
    "EvalReport",
    "ErrorCounts",
    "align_words",
    "char_error_counts",
    "corpus_cer",
    "corpus_wer",
    "error_counts",
    "evaluate",
    "evaluate_hypotheses",
    "score_file",
    "score_hypotheses",
    "write_report",
]


def __getattr__(name: str):
    if name in ("evaluate", "evaluate_hypotheses", "score_file"):
        # lazy attribute: the decoding pipeline loads on first use (module docstring)
        from asrtune.evaluation import pipeline

        return getattr(pipeline, name)
    if name in ("score_hypotheses",):
        from asrtune.evaluation.scoring import score_hypotheses  # lazy attribute (module docstring)

        return score_hypotheses
    if name == "EvalReport":
        from asrtune.evaluation.schema import EvalReport  # lazy attribute (module docstring)

        return EvalReport
    if name == "write_report":
        from asrtune.evaluation.report import write_report  # lazy attribute (module docstring)

        return write_report
    raise AttributeError(f"module 'asrtune.evaluation' has no attribute {name!r}")
