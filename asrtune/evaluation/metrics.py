"""Word and character error counts with per-utterance alignments.

Alignment is jiwer's (rapidfuzz Levenshtein, every edit costs 1). We keep the four counts
(hits, substitutions, insertions, deletions) plus the reference length for every utterance, so
corpus WER, breakdowns and bootstrap resamples are all exact sums of per-utterance counts:
corpus WER = sum(S + D + I) / sum(reference words), never a mean of per-utterance WERs.

Empty references are allowed: every hypothesis word is then an insertion. A corpus whose
references are all empty has no defined WER; :attr:`ErrorCounts.wer` is then 0.0 without errors
and ``inf`` with some (reports write ``null``).

>>> c = error_counts(["the cat sat"], ["the bat sat down"])
>>> (c.hits, c.substitutions, c.insertions, c.deletions, c.ref_words)
(2, 1, 1, 0, 3)
>>> round(c.wer, 4)
0.6667
>>> corpus_wer(["It's fifty dollars."], ["it is $50"])
0.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

from asrtune.text.normalizers import Normalizer, collapse_whitespace, get_normalizer

# jiwer chunk types -> one-letter operation codes used in alignments.
_OP_CODES = {"equal": "=", "substitute": "S", "insert": "I", "delete": "D"}


@dataclass
class ErrorCounts:
    """Edit-operation counts against a reference of ``ref_words`` tokens (words or characters).

    >>> ErrorCounts(hits=3, substitutions=1, insertions=0, deletions=1, ref_words=5).wer
    0.4
    """

    hits: int = 0
    substitutions: int = 0
    insertions: int = 0
    deletions: int = 0
    ref_words: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.insertions + self.deletions

    @property
    def hyp_words(self) -> int:
        return self.hits + self.substitutions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference token (also the CER when the tokens are characters)."""
        if self.ref_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_words

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.insertions + other.insertions,
            self.deletions + other.deletions,
            self.ref_words + other.ref_words,
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Alignment:
    """One utterance's alignment: ``ops`` is a list of ``(op, ref_token, hyp_token)`` with op in
    ``=``, ``S``, ``I``, ``D`` (``None`` for the missing side of an insertion or deletion).

    >>> a = align_words("a b c", "a x c d")
    >>> a.ops
    [('=', 'a', 'a'), ('S', 'b', 'x'), ('=', 'c', 'c'), ('I', None, 'd')]
    >>> print("\\n".join(a.visual()))
    REF: a b c *
    HYP: a x c d
           S   I
    """

    counts: ErrorCounts
    ops: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def visual(self) -> list[str]:
        """Three lines (REF, HYP, markers) in the style of jiwer's ``visualize_alignment``."""
        ref_cells, hyp_cells, mark_cells = [], [], []
        for op, r, h in self.ops:
            r = r if r is not None else "*" * len(h or "")
            h = h if h is not None else "*" * len(r or "")
            width = max(len(r), len(h))
            ref_cells.append(r.ljust(width))
            hyp_cells.append(h.ljust(width))
            mark_cells.append(("" if op == "=" else op).ljust(width))
        return [
            ("REF: " + " ".join(ref_cells)).rstrip(),
            ("HYP: " + " ".join(hyp_cells)).rstrip(),
            ("     " + " ".join(mark_cells)).rstrip(),
        ]

    def ops_string(self) -> str:
        """Compact op sequence, one letter per aligned position, e.g. ``==S=I``."""
        return "".join(op for op, _, _ in self.ops)


def _check_lengths(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses")


def _prepare(texts: Sequence[str], normalizer: str | Normalizer | None) -> list[str]:
    norm = get_normalizer(normalizer) if normalizer is not None else None
    return [norm(t) if norm is not None else collapse_whitespace(t) for t in texts]


def _alignments(output, ref_tokens: list[list[str]], hyp_tokens: list[list[str]]) -> list[Alignment]:
    result = []
    for chunks, ref, hyp in zip(output.alignments, ref_tokens, hyp_tokens):
        counts = ErrorCounts(ref_words=len(ref))
        ops: list[tuple[str, str | None, str | None]] = []
        for chunk in chunks:
            op = _OP_CODES[chunk.type]
            r = ref[chunk.ref_start_idx : chunk.ref_end_idx]
            h = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
            if op == "=":
                counts.hits += len(r)
                ops.extend(("=", a, b) for a, b in zip(r, h))
            elif op == "S":
                counts.substitutions += len(r)
                ops.extend(("S", a, b) for a, b in zip(r, h))
            elif op == "I":
                counts.insertions += len(h)
                ops.extend(("I", None, b) for b in h)
            else:
                counts.deletions += len(r)
                ops.extend(("D", a, None) for a in r)
        result.append(Alignment(counts, ops))
    return result


def align_words_batch(refs: Sequence[str], hyps: Sequence[str]) -> list[Alignment]:
    """Word alignments of already-normalised strings (split on whitespace), one per pair."""
    import jiwer  # heavy: jiwer

    _check_lengths(refs, hyps)
    if not refs:
        return []
    refs = [collapse_whitespace(r) for r in refs]
    hyps = [collapse_whitespace(h) for h in hyps]
    output = jiwer.process_words(list(refs), list(hyps))
    return _alignments(output, [r.split() for r in refs], [h.split() for h in hyps])


def align_chars_batch(refs: Sequence[str], hyps: Sequence[str]) -> list[Alignment]:
    """Character alignments (spaces count as characters, as in jiwer's CER)."""
    import jiwer  # heavy: jiwer

    _check_lengths(refs, hyps)
    if not refs:
        return []
    refs = [collapse_whitespace(r) for r in refs]
    hyps = [collapse_whitespace(h) for h in hyps]
    output = jiwer.process_characters(list(refs), list(hyps))
    return _alignments(output, [list(r) for r in refs], [list(h) for h in hyps])


def align_words(ref: str, hyp: str) -> Alignment:
    """Word alignment of one pair (whitespace collapsed, nothing else)."""
    return align_words_batch([ref], [hyp])[0]


def _sum(alignments: Sequence[Alignment]) -> ErrorCounts:
    total = ErrorCounts()
    for a in alignments:
        total = total + a.counts
    return total


def error_counts(refs: Sequence[str], hyps: Sequence[str], normalizer: str | Normalizer | None = None) -> ErrorCounts:
    """Corpus word-error counts; ``normalizer`` (a name or :class:`Normalizer`) is applied to both
    sides first, otherwise only whitespace is collapsed."""
    return _sum(align_words_batch(_prepare(refs, normalizer), _prepare(hyps, normalizer)))


def char_error_counts(refs: Sequence[str], hyps: Sequence[str], normalizer: str | Normalizer | None = None) -> ErrorCounts:
    """Corpus character-error counts (``ref_words`` then counts reference characters)."""
    return _sum(align_chars_batch(_prepare(refs, normalizer), _prepare(hyps, normalizer)))


def corpus_wer(refs: Sequence[str], hyps: Sequence[str], normalizer: str | Normalizer | None = "whisper-en") -> float:
    """Corpus WER after normalising both sides (default: Whisper's English normaliser)."""
    return error_counts(refs, hyps, normalizer).wer


def corpus_cer(refs: Sequence[str], hyps: Sequence[str], normalizer: str | Normalizer | None = "whisper-en") -> float:
    """Corpus CER after normalising both sides."""
    return char_error_counts(refs, hyps, normalizer).wer
