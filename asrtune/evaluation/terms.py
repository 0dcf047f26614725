"""Domain-term recall and precision: did the model get the words that matter?

A terms file has one term per line; a term may be several words; ``#`` starts a comment.
Terms, references and hypotheses are all normalised with the report's normaliser and matched
as whole-word sequences (so "api" does not match inside "rapid", and the term "twenty five dollars" matches
"$25" after whisper-en normalisation).

Counting is count-based per utterance, not position-based: with ``r`` occurrences of a term
in the reference and ``h`` in the hypothesis, ``min(r, h)`` count as found. Recall is
found / reference occurrences, precision is found / hypothesis occurrences, per term and
pooled over all terms. (Position-based matching would also demand the term sit in the aligned
slot; for short utterances the two agree almost always, and the count form needs no alignment.)

>>> from asrtune.text import get_normalizer
>>> stats = term_stats(["New York", "API"], ["i love new york", "the api"], ["i love new york", "the a p i"],
...                    get_normalizer("basic"))
>>> stats["overall"]["recall"], stats["overall"]["precision"]
(0.5, 1.0)
"""

from __future__ import annotations

from typing import Sequence

from asrtune.data.terms import load_terms
from asrtune.errors import ConfigError
from asrtune.text.normalizers import Normalizer

__all__ = ["count_occurrences", "load_terms", "term_stats"]

METHOD = "count-based: per utterance min(count in hyp, count in ref), whole-word match on normalised text"


def count_occurrences(words: Sequence[str], term: Sequence[str]) -> int:
    """Non-overlapping occurrences of the word sequence ``term`` in ``words``.

    >>> count_occurrences("a b a b a".split(), ["a", "b"])
    2
    """
    n, count, i = len(term), 0, 0
    if n == 0:
        return 0
    term = list(term)
    while i + n <= len(words):
        if list(words[i : i + n]) == term:
            count += 1
            i += n
        else:
            i += 1
    return count


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def term_stats(
    terms: Sequence[str],
    norm_refs: Sequence[str],
    norm_hyps: Sequence[str],
    normalizer: Normalizer,
) -> dict:
    """Per-term and overall recall/precision; also ``per_utterance``: missed and spurious terms."""
    normalized: dict[str, str] = {}
    for term in terms:
        form = normalizer(term)
        if not form:
            raise ConfigError(f"--terms: term {term!r} is empty after {normalizer.name} normalisation")
        normalized.setdefault(form, term)  # two spellings that normalise alike are one term
    rows = {form: {"term": raw, "normalized": form, "ref": 0, "hyp": 0, "found": 0} for form, raw in normalized.items()}
    per_utt: list[dict] = []
    split_terms = {form: form.split() for form in rows}
    for ref, hyp in zip(norm_refs, norm_hyps):
        ref_words, hyp_words = ref.split(), hyp.split()
        missed, spurious = [], []
        for form, words in split_terms.items():
            r = count_occurrences(ref_words, words)
            h = count_occurrences(hyp_words, words)
            row = rows[form]
            row["ref"] += r
            row["hyp"] += h
            row["found"] += min(r, h)
            if r > h:
                missed.append(form)
            elif h > r:
                spurious.append(form)
        per_utt.append({"missed": missed, "spurious": spurious})
    per_term = []
    for row in rows.values():
        row["recall"] = _rate(row["found"], row["ref"])
        row["precision"] = _rate(row["found"], row["hyp"])
        per_term.append(row)
    per_term.sort(key=lambda r: (-r["ref"], r["normalized"]))
    ref_total = sum(r["ref"] for r in per_term)
    hyp_total = sum(r["hyp"] for r in per_term)
    found_total = sum(r["found"] for r in per_term)
    return {
        "method": METHOD,
        "n_terms": len(per_term),
        "overall": {
            "ref": ref_total,
            "hyp": hyp_total,
            "found": found_total,
            "recall": _rate(found_total, ref_total),
            "precision": _rate(found_total, hyp_total),
        },
        "per_term": per_term,
        "per_utterance": per_utt,
    }
