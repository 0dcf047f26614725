"""Carry recognised word times to the words of a reference transcript.

A long recording comes with a transcript written by people (casing, punctuation, maybe a
paragraph the speaker skipped) and a recogniser gives words with times (maybe with its own
errors, and speech the transcript does not have). :func:`align_text` lines the two word
sequences up by edit distance and gives every reference word, exactly as written, a time span:

- both sides are compared through the ``basic`` normaliser (lower case, punctuation dropped)
  with the remaining spaces removed, so ``"Don't,"`` meets ``" don't"`` and ``"co-op"`` meets
  ``"coop"``. A token that normalises to nothing (``"—"``, ``"[music]"``) is *unscored*: it
  is zero-length at the end of the word before it and never counts as an error;
- the alignment is the Levenshtein edit script of ``rapidfuzz`` (C++, bit-parallel) over the
  word sequences, each distinct word mapped to one symbol;
- a reference word equal to its hypothesis word takes that word's time (``match``); a
  substituted stretch takes the times of the hypothesis words it replaces, spread over its
  words by character count (``sub``); a reference word the recogniser did not produce gets a
  time interpolated between the neighbouring timed words (``missing``);
- hypothesis words with no reference counterpart are kept as :class:`ExtraSpeech` runs, placed
  before the reference word they precede.

Deciding which stretches are too wrong to train on is the segmenter's job
(:mod:`asrtune.alignment.segmenter`); this module only reports what matched.

>>> from asrtune.alignment.words import Word
>>> hyp = [Word(" hello", 0.0, 0.4, 0.9), Word(" word", 0.5, 0.9, 0.8), Word(" again", 1.0, 1.3, 0.9)]
>>> result = align_text("Hello, world!", hyp)
>>> [(w.text, w.start, w.status) for w in result.words]
[('Hello,', 0.0, 'match'), ('world!', 0.5, 'sub')]
>>> [(e.text, e.start, e.end) for e in result.extra]
[('again', 1.0, 1.3)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rapidfuzz.distance import Levenshtein

from asrtune.alignment.words import Word
from asrtune.text.normalizers import get_normalizer

MATCH = "match"  # equal to the hypothesis word after normalisation
SUBSTITUTED = "sub"  # aligned against different hypothesis word(s): timed from them
MISSING = "missing"  # no hypothesis word: timed by interpolation between neighbours
UNSCORED = "unscored"  # normalises to nothing ("—", "[music]"): takes a neighbour's time
STATUSES = (MATCH, SUBSTITUTED, MISSING, UNSCORED)
NORMALIZER = "basic"
MAX_REFINE_CELLS = 40_000  # ref x hyp words: larger disagreements are wholesale mismatches, not worth pairing word by word


@dataclass(frozen=True)
class TimedWord:
    """A reference word as written, with the time span the alignment gave it.

    >>> TimedWord("Hello,", 0.1, 0.5, MATCH).duration
    0.4
    """

    text: str
    start: float
    end: float
    status: str
    heard: str = ""  # the hypothesis word(s) it was aligned with ("" when missing or unscored)

    @property
    def duration(self) -> float:
        return round(self.end - self.start, 6)

    @property
    def scored(self) -> bool:
        """Whether this word counts in match scores (it has letters or digits)."""
        return self.status != UNSCORED


@dataclass(frozen=True)
class ExtraSpeech:
    """A run of hypothesis words with no counterpart in the reference (speech the text lacks).

    ``before`` is the index of the reference word the run precedes (``len(words)`` at the end).
    """

    before: int
    start: float
    end: float
    text: str
    count: int


@dataclass(frozen=True)
class TextAlignment:
    """Every reference word timed, plus the hypothesis speech that the reference does not have."""

    words: list[TimedWord]
    extra: list[ExtraSpeech]

    @property
    def match_share(self) -> float:
        """Share of scored reference words that matched (1.0 when there are none)."""
        scored = [w for w in self.words if w.scored]
        return sum(w.status == MATCH for w in scored) / len(scored) if scored else 1.0


def word_key(text: str) -> str:
    """The form two words are compared in: ``basic``-normalised, spaces removed.

    >>> word_key("Don't,"), word_key(" don't"), word_key("[laughs]"), word_key("co-op")
    ('dont', 'dont', '', 'coop')
    """
    return get_normalizer(NORMALIZER)(text).replace(" ", "")


def align_text(reference: str, hypothesis: Sequence[Word]) -> TextAlignment:
    """Time every whitespace-separated word of ``reference`` from the timed ``hypothesis`` words.

    The returned words joined by single spaces give back ``reference`` with its whitespace
    collapsed; hypothesis words must be in time order.
    """
    tokens = reference.split()
    ref_keys = [word_key(t) for t in tokens]
    scored_ref = [i for i, k in enumerate(ref_keys) if k]
    hyp = [w for w in hypothesis if word_key(w.text)]
    hyp_keys = [word_key(w.text) for w in hyp]

    spans: list[tuple[float, float] | None] = [None] * len(tokens)
    status = [UNSCORED if not k else MISSING for k in ref_keys]
    heard = [""] * len(tokens)
    extra: list[ExtraSpeech] = []
    a_seq, b_seq = _symbols([ref_keys[i] for i in scored_ref], hyp_keys)
    for tag, r0, r1, h0, h1 in _regions(Levenshtein.opcodes(a_seq, b_seq)):
        ref_ids, hyp_words = scored_ref[r0:r1], hyp[h0:h1]
        if tag == "equal":
            for i, w in zip(ref_ids, hyp_words):
                spans[i], status[i], heard[i] = (w.start, w.end), MATCH, w.text.strip()
            continue
        pairs = _refine([ref_keys[i] for i in ref_ids], hyp_keys[h0:h1])
        if pairs is None:  # too large to refine: a wholesale mismatch, timed as one stretch
            if hyp_words:
                for i, span in zip(ref_ids, _spread(hyp_words[0].start, hyp_words[-1].end, [tokens[i] for i in ref_ids])):
                    spans[i], status[i] = span, SUBSTITUTED
                if ref_ids:
                    heard[ref_ids[0]] = " ".join(w.text.strip() for w in hyp_words)
            if hyp_words and not ref_ids:
                extra.append(_extra(hyp_words, _before(scored_ref, r0, len(tokens))))
            continue
        run: list[Word] = []
        for ri, hj in pairs:
            if ri is not None and hj is not None:
                w, i = hyp_words[hj], ref_ids[ri]
                spans[i], heard[i] = (w.start, w.end), w.text.strip()
                status[i] = MATCH if ref_keys[i] == hyp_keys[h0 + hj] else SUBSTITUTED
            if hj is not None and ri is None:
                run.append(hyp_words[hj])
            elif run:
                extra.append(_extra(run, ref_ids[ri]))
                run = []
        if run:
            extra.append(_extra(run, _before(scored_ref, r1, len(tokens))))
    _interpolate(tokens, spans, status)
    words = [TimedWord(t, round(s[0], 3), round(s[1], 3), st, h) for t, s, st, h in zip(tokens, spans, status, heard)]
    return TextAlignment(words, extra)


def _regions(opcodes) -> list[tuple[str, int, int, int, int]]:
    """Equal stretches as they are; each run of adjacent non-equal opcodes merged into one region."""
    out: list[tuple[str, int, int, int, int]] = []
    for op in opcodes:
        tag = "equal" if op.tag == "equal" else "diff"
        if out and tag == "diff" and out[-1][0] == "diff":
            out[-1] = ("diff", out[-1][1], op.src_end, out[-1][3], op.dest_end)
        else:
            out.append((tag, op.src_start, op.src_end, op.dest_start, op.dest_end))
    return out


def _refine(ref: list[str], hyp: list[str]) -> list[tuple[int | None, int | None]] | None:
    """Re-align a disagreeing region so similar words pair up (None when the region is too large).

    Plain edit distance ties ``world`` -> ``word again`` two ways; here a substitution costs the
    normalised character distance of the two words (0..1) and an insertion or deletion 1, so
    ``world`` pairs with ``word``. Returns ``(ref_index, hyp_index)`` steps in order, ``None``
    on the side that has no word.

    >>> _refine(["world"], ["word", "again"])
    [(0, 0), (None, 1)]
    """
    n, m = len(ref), len(hyp)
    if n * m > MAX_REFINE_CELLS:
        return None
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    cost[0] = [float(j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cost[i][0] = float(i)
        for j in range(1, m + 1):
            sub = cost[i - 1][j - 1] + Levenshtein.normalized_distance(ref[i - 1], hyp[j - 1])
            cost[i][j] = min(sub, cost[i - 1][j] + 1.0, cost[i][j - 1] + 1.0)
    steps: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + Levenshtein.normalized_distance(ref[i - 1], hyp[j - 1]):
            steps.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1.0:
            steps.append((i - 1, None))
            i -= 1
        else:
            steps.append((None, j - 1))
            j -= 1
    return steps[::-1]


def _extra(words: Sequence[Word], before: int) -> ExtraSpeech:
    return ExtraSpeech(before, words[0].start, words[-1].end, " ".join(w.text.strip() for w in words), len(words))


def _before(scored_ref: list[int], position: int, n_tokens: int) -> int:
    """The token index of the scored reference word at ``position`` (``n_tokens`` past the end)."""
    return scored_ref[position] if position < len(scored_ref) else n_tokens


def _symbols(a: list[str], b: list[str]) -> tuple[list[int], list[int]]:
    """Map words to integers so rapidfuzz compares whole words, not characters."""
    table: dict[str, int] = {}
    return [table.setdefault(w, len(table)) for w in a], [table.setdefault(w, len(table)) for w in b]


def _spread(start: float, end: float, texts: list[str]) -> list[tuple[float, float]]:
    """Split ``start..end`` over ``texts`` in proportion to their length (a word's share of speech).

    >>> _spread(0.0, 3.0, ["ab", "abcd"])
    [(0.0, 1.0), (1.0, 3.0)]
    """
    weights = [max(len(t), 1) for t in texts]
    total = sum(weights)
    out, t = [], start
    for w in weights:
        nxt = t + (end - start) * w / total
        out.append((t, nxt))
        t = nxt
    return out


def _interpolate(tokens: list[str], spans: list[tuple[float, float] | None], status: list[str]) -> None:
    """Fill untimed words in place.

    A run of missing words shares the gap between its timed neighbours (a run opening the file
    ends at the first timed word; one closing it starts at the last). An unscored token is
    zero-length at the end of the word before it (the start of the next, when first), so it
    never narrows the pause the segmenter may cut at.
    """
    scored = [i for i, st in enumerate(status) if st != UNSCORED]
    i = 0
    while i < len(scored):
        if spans[scored[i]] is not None:
            i += 1
            continue
        j = i
        while j < len(scored) and spans[scored[j]] is None:
            j += 1
        prev_end = spans[scored[i - 1]][1] if i > 0 else None
        next_start = spans[scored[j]][0] if j < len(scored) else None
        lo = prev_end if prev_end is not None else (next_start if next_start is not None else 0.0)
        hi = next_start if next_start is not None else lo
        for k, span in zip(scored[i:j], _spread(lo, max(lo, hi), [tokens[k] for k in scored[i:j]])):
            spans[k] = span
        i = j
    last: float | None = None
    for k in range(len(spans)):
        if status[k] != UNSCORED:
            last = spans[k][1]
        elif last is not None:
            spans[k] = (last, last)
    for k in range(len(spans) - 1, -1, -1):  # unscored tokens before the first scored word
        if spans[k] is None:
            nxt = spans[k + 1][0] if k + 1 < len(spans) and spans[k + 1] is not None else 0.0
            spans[k] = (nxt, nxt)


__all__ = ["ExtraSpeech", "MATCH", "MISSING", "SUBSTITUTED", "STATUSES", "TextAlignment", "TimedWord", "UNSCORED", "align_text", "word_key"]
