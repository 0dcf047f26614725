"""Subtitle cues from word times, following common subtitle conventions.

A cue holds at most ``max_line_count`` lines of at most ``max_line_width`` characters and lasts
at most ``max_cue_seconds``. Words are grouped into cues in this order of preference:

1. a sentence end (``.``, ``?``, ``!``) or a pause of at least ``PAUSE_S`` always ends a cue;
2. a phrase still too long for one cue is cut where a cut is most natural among the cut points
   that keep the first part within the limits: after a comma or other clause mark, then at the
   longest pause, preferring fuller cues;
3. inside a cue, lines are balanced (the narrowest layout with as few lines as the width allows).

Without word times (records from older runs, ``--no-word-timestamps``) each segment is one cue,
its text wrapped to the line width, as before.

>>> words = [Word("Hello", 0.0, 0.4, 1.0), Word("there.", 0.5, 0.9, 1.0), Word("Bye.", 2.0, 2.3, 1.0)]
>>> [(c.start, c.end, c.lines) for c in build_cues(words, SubtitleOptions())]
[(0.0, 0.9, ['Hello there.']), (2.0, 2.3, ['Bye.'])]
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Sequence

from asrtune.alignment.words import Word
from asrtune.errors import ConfigError
from asrtune.options import option

PAUSE_S = 0.5  # s: a silence at least this long between words ends a cue
SENTENCE_END = ".?!。？！"
CLAUSE_END = ",;:，、"
GROUP = "subtitles"


@dataclass
class SubtitleOptions:
    """Layout of SRT/VTT cues built from word times."""

    max_line_width: int = option(42, group=GROUP, help="characters per subtitle line")
    max_line_count: int = option(2, group=GROUP, help="lines per subtitle cue")
    max_cue_seconds: float = option(7.0, group=GROUP, help="longest time a cue stays on screen (seconds)")

    def validate(self) -> "SubtitleOptions":
        """ConfigError naming the first option out of range. Returns self."""
        if self.max_line_width < 10:
            raise ConfigError(f"--max-line-width must be >= 10 characters, got {self.max_line_width}")
        if self.max_line_count < 1:
            raise ConfigError(f"--max-line-count must be >= 1, got {self.max_line_count}")
        if not self.max_cue_seconds >= 1.0:
            raise ConfigError(f"--max-cue-seconds must be >= 1 second, got {self.max_cue_seconds}")
        return self


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from ``start`` to ``end`` (seconds), ``lines`` of text."""

    start: float
    end: float
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def layout(text: str, width: int) -> list[str]:
    """``text`` in balanced lines of at most ``width`` characters: as few lines as greedy wrapping
    needs, at the narrowest width that still gives that many (long words are broken).

    >>> layout("the quick brown fox jumps over the lazy dog", 50)
    ['the quick brown fox jumps over the lazy dog']
    >>> layout("the quick brown fox jumps over the lazy dog", 30)
    ['the quick brown fox', 'jumps over the lazy dog']
    """
    lines = _wrap(text, width) or [text]
    if len(lines) == 1:
        return lines
    narrowest = lines
    longest_word = min(width, max(len(word) for word in text.split()))  # narrower would break a word
    for w in range(width - 1, longest_word - 1, -1):
        candidate = _wrap(text, w)
        if len(candidate) != len(lines):
            break
        narrowest = candidate
    return narrowest


def _wrap(text: str, width: int) -> list[str]:
    """Greedy wrapping that keeps hyphenated words whole (only a word wider than a line is broken)."""
    return textwrap.wrap(text, width, break_on_hyphens=False)


def build_cues(words: Sequence[Word], options: SubtitleOptions) -> list[Cue]:
    """Cues for time-ordered words (see the module docstring for the rules)."""
    cues: list[Cue] = []
    for phrase in _phrases([w for w in words if w.text.strip()]):
        cues.extend(_split(phrase, options))
    return cues


def _phrases(words: list[Word]) -> list[list[Word]]:
    """Runs of words ended by a sentence end or a pause."""
    phrases: list[list[Word]] = []
    current: list[Word] = []
    for w in words:
        if current and w.start - current[-1].end >= PAUSE_S:
            phrases.append(current)
            current = []
        current.append(w)
        if w.text.rstrip("\"'”)]") [-1:] in SENTENCE_END:
            phrases.append(current)
            current = []
    if current:
        phrases.append(current)
    return phrases


def _fits(words: list[Word], options: SubtitleOptions) -> bool:
    text = " ".join(w.text for w in words)
    lines = _wrap(text, options.max_line_width)
    return len(lines) <= options.max_line_count and words[-1].end - words[0].start <= options.max_cue_seconds


def _split(words: list[Word], options: SubtitleOptions) -> list[Cue]:
    cues = []
    while words:
        if _fits(words, options):
            cues.append(_cue(words, options))
            break
        cut = _best_cut(words, options)
        cues.append(_cue(words[:cut], options))
        words = words[cut:]
    return cues


def _best_cut(words: list[Word], options: SubtitleOptions) -> int:
    """Where to end the first cue: a count of words that fits, at the most natural point."""
    longest = 1
    while longest < len(words) and _fits(words[: longest + 1], options):
        longest += 1

    def score(n: int) -> float:
        clause = 1.0 if words[n - 1].text[-1:] in CLAUSE_END else 0.0
        pause = min(words[n].start - words[n - 1].end, PAUSE_S) / PAUSE_S
        fullness = n / longest
        return 2.0 * clause + pause + fullness

    # only the fuller half of the candidates: cutting a cue to two words to reach a comma reads worse
    candidates = range(max(1, (longest + 1) // 2), longest + 1)
    return max(candidates, key=score)


def _cue(words: list[Word], options: SubtitleOptions) -> Cue:
    text = " ".join(w.text for w in words)
    lines = layout(text, options.max_line_width)
    end = min(words[-1].end, words[0].start + options.max_cue_seconds)  # a single over-long word
    return Cue(words[0].start, max(end, words[0].start), lines)


def record_cues(record: dict, options: SubtitleOptions | None = None) -> list[Cue]:
    """Cues for a transcript record: from word times when every segment has them, else one cue
    per segment (text wrapped to the line width)."""
    options = options or SubtitleOptions()
    segments = [s for s in record.get("segments", []) if s.get("text", "").strip()]
    if segments and all(s.get("words") for s in segments):
        words = [Word.from_dict(w) for s in segments for w in s["words"]]
        return build_cues(words, options)
    return [
        Cue(float(s["start"]), float(s["end"]), layout(s["text"].strip(), options.max_line_width))
        for s in segments
    ]
