"""Failure flags: the hallucination and dropout patterns one WER number hides.

Checked on normalised words, per utterance:

- ``empty``: the hypothesis is empty but the reference is not (dropped audio, silence
  detection gone wrong, a decoder that stopped at once).
- ``long``: the hypothesis has more than ``LONG_RATIO`` times the reference's words and at
  least ``LONG_EXTRA_WORDS`` more (invented text; the second condition spares short references).
- ``repetition``: some n-gram (n = 1..``MAX_NGRAM``) repeats back to back at least
  ``MIN_REPEATS`` times and more often than in the reference (the classic decoder loop,
  "the the the the" or "thank you thank you ...").

>>> utterance_flags("hello world", "hello world")
{}
>>> sorted(utterance_flags("a short one", "a short one one one one one and more and more"))
['long', 'repetition']
"""

from __future__ import annotations

from typing import Sequence

LONG_RATIO = 2.0
LONG_EXTRA_WORDS = 5
MAX_NGRAM = 4
MIN_REPEATS = 4
FLAG_NAMES = ("empty", "long", "repetition")
DEFINITIONS = {
    "empty": "hypothesis empty after normalisation while the reference is not",
    "long": f"hypothesis words > {LONG_RATIO:g} x reference words and >= reference words + {LONG_EXTRA_WORDS}",
    "repetition": f"an n-gram (n=1..{MAX_NGRAM}) repeated back to back >= {MIN_REPEATS} times, more than in the reference",
}


def longest_repeat(words: Sequence[str], max_n: int = MAX_NGRAM) -> tuple[tuple[str, ...], int]:
    """The n-gram with the most consecutive repeats and that count (1 when nothing repeats).

    >>> longest_repeat("go go go go now".split())
    (('go',), 4)
    """
    best: tuple[tuple[str, ...], int] = ((), 1)
    words = list(words)
    for n in range(1, max_n + 1):
        for start in range(0, len(words) - 2 * n + 1):
            gram = words[start : start + n]
            repeats = 1
            while words[start + repeats * n : start + (repeats + 1) * n] == gram:
                repeats += 1
            if repeats > best[1]:
                best = (tuple(gram), repeats)
    return best


def _consecutive(words: Sequence[str], gram: tuple[str, ...]) -> int:
    n, best, words = len(gram), 0, list(words)
    for start in range(len(words) - n + 1):
        repeats = 0
        while tuple(words[start + repeats * n : start + (repeats + 1) * n]) == gram:
            repeats += 1
        best = max(best, repeats)
    return best


def utterance_flags(norm_ref: str, norm_hyp: str) -> dict[str, dict]:
    """Flags raised for one utterance, each with its evidence; ``{}`` when none."""
    ref, hyp = norm_ref.split(), norm_hyp.split()
    flags: dict[str, dict] = {}
    if ref and not hyp:
        flags["empty"] = {"ref_words": len(ref)}
    if len(hyp) > LONG_RATIO * len(ref) and len(hyp) >= len(ref) + LONG_EXTRA_WORDS:
        flags["long"] = {"ref_words": len(ref), "hyp_words": len(hyp)}
    gram, repeats = longest_repeat(hyp)
    if repeats >= MIN_REPEATS and repeats > _consecutive(ref, gram):
        flags["repetition"] = {"ngram": " ".join(gram), "repeats": repeats}
    return flags
