"""Cut a timed reference transcript into training segments; reject what does not match the audio.

Input is a :class:`~asrtune.alignment.text_align.TextAlignment` (every reference word timed,
plus the recognised speech the reference lacks). Output is a list of :class:`AlignedSegment`
(reference text exactly as written, source, start, end, match score) and a list of
:class:`RejectedStretch` (times, reason, the reference words and recognised words involved).

The rules, in order:

1. **Text not in the audio.** A run of more than ``max_unmatched_words`` consecutive reference
   words that did not match the recogniser (substituted or missing) is rejected: a paragraph
   the speaker skipped (reason ``TEXT_NOT_IN_AUDIO``: nothing was heard there), a transcript of
   the wrong take or words under music (``MISMATCH``: something else was heard). One or two words
   matching by chance ("the") between longer unmatched runs do not break a run.
   **At the file's edges** (before the first and after the last matched word) a run is rejected
   whatever its length when it holds a word the recogniser heard nothing for: inside the file an
   unheard word is timed between its matched neighbours, at an edge nothing places it in the
   audio (a title, a credit line, text of the next take). An edge run of misheard words is
   judged like one inside.
2. **Audio not in the text.** A run of more than ``max_extra_words`` recognised words with no
   reference counterpart (an ad, crosstalk, a paragraph the transcript lacks) forces a cut and
   is rejected with its times; no segment reaches into it.
3. **Cut at pauses.** What remains is split, largest pause between words first, until every
   segment lasts at most ``max_duration_s`` (30 s) and its text has at most ``max_tokens``
   Whisper tokens (448 less the special tokens; see :mod:`asrtune.alignment.limits`).
4. **Edges.** A segment starts ``pad_s`` before its first word and ends ``pad_s`` after its last,
   but never beyond the middle of the pause to the nearest recognised speech outside it, so
   neighbours never overlap and rejected speech never leaks in.
5. **Score.** A segment's score is the share of its (scored) words that matched exactly; below
   ``min_score`` it is rejected as a whole.

Every reference word ends up in exactly one accepted segment or one rejected stretch
(``first_word``/``last_word`` are token indices, end exclusive), so the accepted texts joined
give back the reference minus the rejected stretches.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from typing import Any

from asrtune.alignment.limits import MAX_SEGMENT_S, MAX_TEXT_TOKENS, TokenCounter, whisper_token_counter
from asrtune.alignment.text_align import MATCH, MISSING, SUBSTITUTED, ExtraSpeech, TextAlignment, TimedWord
from asrtune.errors import ConfigError

TEXT_NOT_IN_AUDIO = "transcript words not found in the audio"
MISMATCH = "transcript does not match the audio"
AUDIO_NOT_IN_TEXT = "speech not in the transcript"
LOW_SCORE = "too few words match"
TOO_LONG = "one word longer than the segment limits"
CHANCE_MATCH_WORDS = 2  # a matched island this short between longer unmatched runs is chance
MAX_LOGPROB_GAP = 2.5  # nats/token; see asrtune.alignment.verify for how it was measured


@dataclass(frozen=True)
class SegmentRules:
    """Limits and thresholds of :func:`segment_alignment` (see the module docstring).

    >>> SegmentRules(max_duration_s=0).check()
    Traceback (most recent call last):
    asrtune.errors.ConfigError: max_duration_s must be > 0 and at most 30 seconds (Whisper's window), got 0
    """

    max_duration_s: float = MAX_SEGMENT_S
    max_tokens: int = MAX_TEXT_TOKENS
    max_unmatched_words: int = 6  # a recogniser error rarely spans more words than this
    max_extra_words: int = 6
    min_score: float = 0.6  # share of a segment's words that must match exactly
    # s of audio kept either side of the words, up to the middle of the pause: Whisper's word end
    # times run early by a few hundred ms, and on the longform check 0.5 s clipped a segment 0.38 s
    # inside its utterance where 1.0 s put every edge inside the true pause
    pad_s: float = 1.0
    # nats per token the transcript may trail the recogniser's own text on a rejected stretch's
    # audio and still be kept (asrtune.alignment.verify); None: no second opinion
    max_logprob_gap: float | None = MAX_LOGPROB_GAP

    def check(self) -> "SegmentRules":
        if not 0 < self.max_duration_s <= MAX_SEGMENT_S:
            raise ConfigError(f"max_duration_s must be > 0 and at most {MAX_SEGMENT_S:.0f} seconds (Whisper's window), "
                              f"got {self.max_duration_s}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.max_unmatched_words < 0 or self.max_extra_words < 0:
            raise ConfigError("max_unmatched_words and max_extra_words must be >= 0")
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"min_score must be between 0 and 1, got {self.min_score}")
        if self.pad_s < 0:
            raise ConfigError(f"pad_s must be >= 0 seconds, got {self.pad_s}")
        if self.max_logprob_gap is not None and self.max_logprob_gap < 0:
            raise ConfigError(f"max_logprob_gap must be >= 0 nats per token (or None for no check), got {self.max_logprob_gap}")
        return self


@dataclass(frozen=True)
class AlignedSegment:
    """A training segment: reference words ``first_word:last_word`` of ``source``, ``start..end`` s."""

    source: str
    start: float
    end: float
    text: str
    score: float
    first_word: int
    last_word: int
    logprob_gap: float | None = None  # set when forced alignment kept a stretch the word match rejected
    # (start, end, text) stretches inside the segment, times from its start: its sentences or
    # pause-separated phrases, for Whisper's multi-segment timestamp targets
    parts: tuple[tuple[float, float, str], ...] = ()

    @property
    def duration(self) -> float:
        return round(self.end - self.start, 3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RejectedStretch:
    """Audio and/or reference words left out of training, and why."""

    source: str
    start: float
    end: float
    reason: str
    text: str  # reference words rejected ("" for speech the transcript lacks)
    hypothesis: str  # what the recogniser heard there, where known
    first_word: int
    last_word: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Unit:
    """One scored reference word (token ``at``) with the unscored tokens around it (token range lo:hi)."""

    lo: int
    hi: int
    at: int
    word: TimedWord


def segment_alignment(
    alignment: TextAlignment,
    source: str = "",
    rules: SegmentRules = SegmentRules(),
    count_tokens: TokenCounter | None = None,
    audio_duration: float | None = None,
) -> tuple[list[AlignedSegment], list[RejectedStretch]]:
    """Split ``alignment`` into accepted segments and rejected stretches (both in time order).

    ``count_tokens`` counts a text's Whisper tokens (default: the tiny.en tokenizer);
    ``audio_duration`` caps the last segment's end.
    """
    rules.check()
    count = count_tokens or whisper_token_counter()
    tokens = [w.text for w in alignment.words]
    units = _units(alignment.words)
    if not units:
        rejected = [RejectedStretch(source, 0.0, 0.0, "no words to align", " ".join(tokens), "", 0, len(tokens))] if tokens else []
        return [], rejected
    evidence = _Evidence(units, alignment.extra, audio_duration)

    rejected: list[RejectedStretch] = []
    bad = _unmatched_runs(units, rules.max_unmatched_words) | _unheard_edges(units)
    cuts = set()  # unit k: a forced cut before unit k
    extras_by_unit = _extras_by_unit(units, alignment.extra, len(tokens))
    for k, runs in extras_by_unit.items():
        for e in runs:
            if e.count > rules.max_extra_words and not (k in bad or k - 1 in bad):
                cuts.add(k)
                at = units[k].lo if k < len(units) else len(tokens)
                rejected.append(RejectedStretch(source, e.start, e.end, AUDIO_NOT_IN_TEXT, "", e.text, at, at))
    for a, b in _ranges(sorted(bad)):
        heard = " ".join(filter(None, (text for k in range(a, b + 2) for text in [
            *(e.text for e in extras_by_unit.get(k, [])), units[k].word.heard if k <= b else ""])))
        start = units[a - 1].word.end if a > 0 else 0.0
        end = units[b + 1].word.start if b + 1 < len(units) else (audio_duration if audio_duration is not None else units[b].word.end)
        reason = MISMATCH if heard else TEXT_NOT_IN_AUDIO
        rejected.append(RejectedStretch(source, round(start, 3), round(max(start, end), 3), reason, _text(tokens, units, a, b), heard, units[a].lo, units[b].hi))

    segments: list[AlignedSegment] = []
    for a, b in _blocks(len(units), bad, cuts):
        for a2, b2 in _split(units, a, b, tokens, rules, count, evidence):
            seg = _segment(units, a2, b2, tokens, source, rules, evidence)
            if a2 == b2 and not _fits(seg, rules, count):
                rejected.append(_as_rejected(seg, TOO_LONG))
            elif seg.score < rules.min_score:
                rejected.append(_as_rejected(seg, f"{LOW_SCORE} (score {seg.score:.2f} < {rules.min_score})"))
            else:
                segments.append(seg)
    rejected.sort(key=lambda r: (r.first_word, r.start))
    return segments, rejected


def _units(words: list[TimedWord]) -> list[_Unit]:
    """Group tokens into units: each scored word owns the unscored tokens after it (leading ones go to the first)."""
    scored = [i for i, w in enumerate(words) if w.scored]
    units = []
    for n, i in enumerate(scored):
        lo = 0 if n == 0 else i
        hi = scored[n + 1] if n + 1 < len(scored) else len(words)
        units.append(_Unit(lo, hi, i, words[i]))
    return units


def _unmatched_runs(units: list[_Unit], longest_ok: int) -> set[int]:
    """Indices of units in runs of more than ``longest_ok`` consecutive non-matching words.

    A wrong transcript still matches the odd "the" or "and" by chance, which would break its
    run into short ones; so a matched island of at most ``CHANCE_MATCH_WORDS`` words between
    two longer unmatched runs (or between one and the start or end of the file) counts as
    unmatched.
    """
    runs: list[list] = []  # [matched, first unit, length]
    for k, u in enumerate(units):
        matched = u.word.status == MATCH
        if runs and runs[-1][0] == matched:
            runs[-1][2] += 1
        else:
            runs.append([matched, k, 1])
    merged: list[list] = []
    for n, run in enumerate(runs):
        nxt = runs[n + 1] if n + 1 < len(runs) else None
        left = bool(merged) and not merged[-1][0] and merged[-1][2] > run[2]
        right = nxt is not None and not nxt[0] and nxt[2] > run[2]
        # the file's start or end flanks an island as well, as long as a real run is on the other side
        if run[0] and run[2] <= CHANCE_MATCH_WORDS and (left or not merged) and (right or nxt is None) and (left or right):
            run = [False, run[1], run[2]]
        if merged and merged[-1][0] == run[0]:
            merged[-1][2] += run[2]
        else:
            merged.append(list(run))
    return {k for matched, first, length in merged if not matched and length > longest_ok for k in range(first, first + length)}


def _unheard_edges(units: list[_Unit]) -> set[int]:
    """Indices of the units before the first and after the last matched word, for each of the
    two edge runs that holds a word nothing was heard for (rule 1)."""
    matched = [k for k, u in enumerate(units) if u.word.status == MATCH]
    first, last = (matched[0], matched[-1]) if matched else (len(units), -1)
    out: set[int] = set()
    for run in (range(0, first), range(last + 1, len(units))):
        if any(units[k].word.status == MISSING for k in run):
            out.update(run)
    return out


def _extras_by_unit(units: list[_Unit], extras: list[ExtraSpeech], n_tokens: int) -> dict[int, list[ExtraSpeech]]:
    """Extra-speech runs keyed by the unit they precede (``len(units)`` for the end)."""
    unit_of = {u.at: k for k, u in enumerate(units)}
    out: dict[int, list[ExtraSpeech]] = {}
    for e in extras:
        out.setdefault(unit_of.get(e.before, len(units)), []).append(e)
    return out


def _ranges(sorted_ids: list[int]) -> list[tuple[int, int]]:
    """Consecutive integers grouped into inclusive ranges.

    >>> _ranges([1, 2, 3, 7, 9, 10])
    [(1, 3), (7, 7), (9, 10)]
    """
    out: list[tuple[int, int]] = []
    for i in sorted_ids:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _blocks(n: int, bad: set[int], cuts: set[int]) -> list[tuple[int, int]]:
    """Inclusive unit ranges between rejected units and forced cuts."""
    out: list[tuple[int, int]] = []
    start = None
    for k in range(n):
        if k in bad or (k in cuts and start is not None):
            if start is not None:
                out.append((start, k - 1))
            start = None if k in bad else k
            continue
        if start is None:
            start = k
    if start is not None:
        out.append((start, n - 1))
    return out


PART_PAUSE_S = 0.5  # s of silence between recognised words that start a new part inside a segment
SENTENCE_END = (".", "!", "?")


def segment_parts(alignment: TextAlignment, segment: AlignedSegment, pause_s: float = PART_PAUSE_S) -> tuple[tuple[float, float, str], ...]:
    """The segment's text split into parts at sentence ends and at pauses of at least ``pause_s``
    between recognised words, each with its times relative to the segment start.

    Whisper was trained on 30 s windows holding several timed segments; a fine-tune whose
    timestamped targets are all one segment per example learns to stretch one segment over the
    window (measured: ``benchmarks/bench_timestamps.py``), so aligned segments carry their parts.
    """
    words = alignment.words[segment.first_word : segment.last_word]
    parts: list[tuple[float, float, str]] = []
    current: list[TimedWord] = []
    heard_end: float | None = None  # end of the last recognised word in the current part
    for w in words:
        recognised = w.status in (MATCH, SUBSTITUTED)
        if current and recognised and heard_end is not None and w.start - heard_end >= pause_s:
            parts.append(_part(current, segment))
            current, heard_end = [], None
        current.append(w)
        if recognised:
            heard_end = w.end
        if w.text.endswith(SENTENCE_END):
            parts.append(_part(current, segment))
            current, heard_end = [], None
    if current:
        parts.append(_part(current, segment))
    return tuple(parts)


def _part(words: list[TimedWord], segment: AlignedSegment) -> tuple[float, float, str]:
    span = segment.end - segment.start
    start = min(max(words[0].start - segment.start, 0.0), span)
    end = min(max(words[-1].end - segment.start, start), span)
    return round(start, 2), round(end, 2), " ".join(w.text for w in words)


def speech_limits(alignment: TextAlignment, audio_duration: float | None = None) -> "_Evidence":
    """Where recognised speech is: the limits rule 4 puts on segment edges, for callers that add
    segments of their own (:mod:`asrtune.alignment.verify`)."""
    return _Evidence(_units(alignment.words), alignment.extra, audio_duration)


class _Evidence:
    """Where recognised speech is: segment edges stop half-way to speech outside the segment."""

    def __init__(self, units: list[_Unit], extras: list[ExtraSpeech], audio_duration: float | None):
        spans = [(u.word.start, u.word.end) for u in units if u.word.status in (MATCH, SUBSTITUTED)]
        spans += [(e.start, e.end) for e in extras]
        self.ends = sorted(e for _, e in spans)
        self.starts = sorted(s for s, _ in spans)
        self.audio_duration = audio_duration

    def start_limit(self, t: float) -> float:
        """Earliest start for a segment whose first word starts at ``t``."""
        i = bisect.bisect_left(self.ends, t)  # speech ending strictly before t
        return (self.ends[i - 1] + t) / 2 if i else 0.0

    def end_limit(self, t: float) -> float:
        """Latest end for a segment whose last word ends at ``t``."""
        i = bisect.bisect_right(self.starts, t)  # speech starting strictly after t
        limit = (self.starts[i] + t) / 2 if i < len(self.starts) else float("inf")
        return min(limit, self.audio_duration) if self.audio_duration is not None else limit


def _segment(units: list[_Unit], a: int, b: int, tokens: list[str], source: str, rules: SegmentRules, evidence: _Evidence) -> AlignedSegment:
    first, last = units[a].word, units[b].word
    start = max(first.start - rules.pad_s, evidence.start_limit(first.start), 0.0)
    end = max(min(last.end + rules.pad_s, evidence.end_limit(last.end)), last.end)
    matched = sum(u.word.status == MATCH for u in units[a : b + 1])
    return AlignedSegment(source, round(start, 3), round(end, 3), _text(tokens, units, a, b), round(matched / (b - a + 1), 4), units[a].lo, units[b].hi)


def _text(tokens: list[str], units: list[_Unit], a: int, b: int) -> str:
    return " ".join(tokens[units[a].lo : units[b].hi])


def _fits(seg: AlignedSegment, rules: SegmentRules, count: TokenCounter) -> bool:
    return seg.end - seg.start <= rules.max_duration_s and count(seg.text) <= rules.max_tokens


def _split(
    units: list[_Unit], a: int, b: int, tokens: list[str], rules: SegmentRules, count: TokenCounter, evidence: _Evidence
) -> list[tuple[int, int]]:
    """Split units ``a..b`` at the largest pause, recursively, until every piece fits the limits."""
    done: list[tuple[int, int]] = []
    todo = [(a, b)]
    while todo:
        lo, hi = todo.pop()
        if lo == hi or _fits(_segment(units, lo, hi, tokens, "", rules, evidence), rules, count):
            done.append((lo, hi))
            continue
        gaps = [units[k + 1].word.start - units[k].word.end for k in range(lo, hi)]
        k = lo + max(range(len(gaps)), key=lambda g: (gaps[g], -abs(2 * g - len(gaps))))  # ties: nearer the middle
        todo += [(k + 1, hi), (lo, k)]
    return sorted(done)


def _as_rejected(seg: AlignedSegment, reason: str) -> RejectedStretch:
    return RejectedStretch(seg.source, seg.start, seg.end, reason, seg.text, "", seg.first_word, seg.last_word)


__all__ = ["AUDIO_NOT_IN_TEXT", "MISMATCH", "TEXT_NOT_IN_AUDIO", "AlignedSegment", "RejectedStretch", "SegmentRules", "segment_alignment"]
