"""The word-time type every aligner returns, and the Whisper token -> word grouping they share.

Whisper's byte-level BPE marks a word start with a leading space, so words are runs of tokens
from one space-led token to the next. Punctuation gets its own token; as in openai-whisper,
it is timed as a word of its own and then merged into its neighbour (closing marks into the
word before, opening marks into the word after) keeping that neighbour's times, so a full stop
never stretches a word over the pause after it. Finally pieces written without a space between
them ("fat" "-mutton") become one word, so the words are the text's space-separated words.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

PREPEND_PUNCTUATIONS = "\"'“¿([{-"  # merged into the following word
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # merged into the preceding word
SENTENCE_END_MARKS = ".。!！?？"
MAX_MEDIAN_WORD_S = 0.7  # s: cap on the median word duration used to clamp over-long words
TIME_DECIMALS = 3  # ms resolution in outputs


@dataclass(frozen=True)
class Word:
    """One word and where it was spoken, in seconds from the start of the clip (or file).

    >>> w = Word("Hello,", 0.52, 0.91, 0.875)
    >>> w.shifted(10.0).to_dict()
    {'text': 'Hello,', 'start': 10.52, 'end': 10.91, 'probability': 0.875}
    """

    text: str
    start: float
    end: float
    probability: float

    def shifted(self, offset: float) -> "Word":
        """The same word with its times moved by ``offset`` seconds (clip time -> file time)."""
        return Word(self.text, self.start + offset, self.end + offset, self.probability)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "start": round(float(self.start), TIME_DECIMALS),
            "end": round(float(self.end), TIME_DECIMALS),
            "probability": round(float(self.probability), TIME_DECIMALS),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Word":
        return cls(str(d["text"]), float(d["start"]), float(d["end"]), float(d["probability"]))


def split_tokens_on_unicode(tokens: Sequence[int], decode: Callable[[list[int]], str]) -> tuple[list[str], list[list[int]]]:
    """Group tokens so each group decodes to whole characters (a multi-byte character may span tokens).

    >>> split_tokens_on_unicode([1, 2, 3], lambda ids: {(1,): " a", (2,): "\\ufffd", (2, 3): "é", (3,): "x"}[tuple(ids)])
    ([' a', 'é'], [[1], [2, 3]])
    """
    pieces: list[str] = []
    groups: list[list[int]] = []
    current: list[int] = []
    for token in tokens:
        current.append(token)
        piece = decode(current)
        if "\ufffd" not in piece:
            pieces.append(piece)
            groups.append(current)
            current = []
    if current:  # an incomplete character at the very end: keep its tokens anyway
        pieces.append(decode(current))
        groups.append(current)
    return pieces, groups


def split_tokens_on_spaces(tokens: Sequence[int], decode: Callable[[list[int]], str]) -> tuple[list[str], list[list[int]]]:
    """Words (with their leading space) and their tokens; punctuation tokens stand alone for now.

    >>> vocab = {1: " Hello", 2: ",", 3: " wor", 4: "ld", 5: "."}
    >>> split_tokens_on_spaces([1, 2, 3, 4, 5], lambda ids: "".join(vocab[i] for i in ids))
    ([' Hello', ',', ' world', '.'], [[1], [2], [3, 4], [5]])
    """
    words: list[str] = []
    groups: list[list[int]] = []
    for piece, ids in zip(*split_tokens_on_unicode(tokens, decode)):
        bare = piece.strip()
        starts_word = piece.startswith(" ") or (bare != "" and bare in string.punctuation) or not words
        if starts_word:
            words.append(piece)
            groups.append(list(ids))
        else:
            words[-1] += piece
            groups[-1].extend(ids)
    return words, groups


@dataclass
class _Timed:
    text: str
    start: float
    end: float
    probs: list[float]


def words_from_alignment(
    text_tokens: Sequence[int],
    decode: Callable[[list[int]], str],
    text_indices: np.ndarray,
    time_indices: np.ndarray,
    token_probs: Sequence[float],
    seconds_per_frame: float,
) -> list[Word]:
    """Words from a DTW path over (token row, encoder frame), as openai-whisper and faster-whisper do.

    The path visits rows ``0..n`` (``n = len(text_tokens)``; row ``k`` is the decoder position
    that predicts token ``k``, row ``n`` predicts the end of text). A token starts at the frame
    where the path first enters its row, so a word spans from its first token's entry to the
    next word's. ``token_probs[k]`` is the probability the model gave token ``k``.
    """
    words, groups = split_tokens_on_spaces(list(text_tokens), decode)
    if not words:
        return []
    text_indices, time_indices = np.asarray(text_indices), np.asarray(time_indices)
    jumps = np.concatenate([[True], np.diff(text_indices) > 0])
    jump_times = time_indices[jumps] * seconds_per_frame
    boundaries = np.concatenate([[0], np.cumsum([len(g) for g in groups])])
    if len(jump_times) < boundaries[-1] + 1:  # a degenerate path (e.g. no frames): no times to give
        return []
    probs = np.asarray(token_probs, dtype=np.float64)
    timed = [
        _Timed(text, float(jump_times[a]), float(jump_times[b]), probs[a:b].tolist())
        for text, a, b in zip(words, boundaries[:-1], boundaries[1:])
    ]
    _clamp_long_words(timed)
    return [
        Word(t.text.strip(), t.start, max(t.end, t.start), float(np.mean(t.probs)) if t.probs else 0.0)
        for t in _join_unspaced(_merge_punctuation(timed))
    ]


def _clamp_long_words(words: list[_Timed]) -> None:
    """Trim words that swallowed a pause: no word may last more than twice the median word
    duration (openai-whisper's rule, which it applies only at the clip's edges and at sentence
    boundaries). DTW gives a pause to a word beside it: the first word keeps the leading silence,
    the last the trailing one, and inside the text the path tends to enter the next word's row
    as the pause begins, so the word after the pause gets it. So an over-long word loses its
    start, except the last word or one ending a sentence, which loses its end. Applying the rule
    mid-text too matters for text without punctuation (a model tuned on unpunctuated targets, or
    ``--text-policy normalize``): tiny.en's own transcript of the long-form file with its
    punctuation stripped has a median word-boundary error of 0.289 s with the edge-only rule and
    0.236 s with this one; with punctuation both give 0.096 s."""
    durations = np.array([w.end - w.start for w in words])
    durations = durations[durations > 0]
    if durations.size == 0:
        return
    max_s = 2 * min(MAX_MEDIAN_WORD_S, float(np.median(durations)))
    for i, w in enumerate(words):
        if w.end - w.start <= max_s:
            continue
        after_sentence = i > 0 and words[i - 1].text.strip()[-1:] in SENTENCE_END_MARKS
        ends_text = i == len(words) - 1 or w.text.strip()[-1:] in SENTENCE_END_MARKS
        if ends_text and not (i == 0 or after_sentence):
            w.end = w.start + max_s
        else:
            w.start = w.end - max_s


def _join_unspaced(words: list[_Timed]) -> list[_Timed]:
    """Join pieces the text writes without a space ("fat" + "-mutton") into one word spanning both,
    so the words are exactly the text's space-separated words."""
    out: list[_Timed] = []
    for w in words:
        if out and not w.text.startswith(" "):
            out[-1] = _Timed(out[-1].text + w.text, out[-1].start, w.end, out[-1].probs + w.probs)
        else:
            out.append(w)
    return out


def _merge_punctuation(words: list[_Timed]) -> list[_Timed]:
    """Fold stand-alone punctuation into its neighbour; the neighbour keeps its own times."""
    out: list[_Timed] = []
    pending_prefix: list[_Timed] = []
    for w in words:
        bare = w.text.strip()
        if out and not pending_prefix and not w.text.startswith(" ") and bare and all(c in APPEND_PUNCTUATIONS for c in bare):
            out[-1].text += w.text
            out[-1].probs += w.probs
        elif w.text.startswith(" ") and bare and all(c in PREPEND_PUNCTUATIONS for c in bare):
            pending_prefix.append(w)
        else:
            if pending_prefix:
                w.text = "".join(p.text for p in pending_prefix) + w.text.lstrip()
                w.probs = [q for p in pending_prefix for q in p.probs] + w.probs
                pending_prefix = []
            out.append(w)
    if pending_prefix:  # opening marks at the very end: keep them as words
        out.extend(pending_prefix)
    return out
