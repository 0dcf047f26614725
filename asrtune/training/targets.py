"""Whisper training targets in the formats Whisper itself was trained on.

A target is one token sequence; the decoder reads it without its last token and learns to
predict it shifted by one. Its leading ``given`` tokens (a ``<|startofprev|>`` prompt and the
``<|startoftranscript|>`` prefix) are supplied at inference time, so the loss skips them.

=================  ============================================================================
mode               sequence
=================  ============================================================================
plain              [prompt] SOT [lang task] ``<|notimestamps|>`` text EOT
timestamped        [prompt] SOT [lang task] ``<|0.00|>`` text ``<|t_end|>`` EOT, or with the
                   utterance's inner ``segments``: ``<|t0|> seg1 <|t1|><|t1'|> seg2 <|t2|>`` EOT
no speech          SOT [lang task] ``<|notimestamps|>`` EOT, or SOT [lang task] ``<|0.00|>`` EOT;
                   the SOT position is trained to ``<|nospeech|>`` (``<|nocaptions|>`` in the
                   older vocabularies)
=================  ============================================================================

The no-speech target teaches the two things a decoder is asked on silence. At the
``<|startoftranscript|>`` position it learns the no-speech token, as in the Whisper paper: that
is where faster-whisper and openai-whisper read the no-speech probability. And after the prefix
a decoder actually forces (``<|notimestamps|>``, or a first ``<|0.00|>`` in timestamped decoding)
it learns to end at once. The paper's bare ``SOT <|nospeech|> EOT`` taught only the first:
measured in ``benchmarks/bench_timestamps.py``, a model tuned with it still said " You" on 12 of 30
noise clips, because decoders suppress the no-speech token and go on after the forced prefix.

Which examples get timestamps or a prompt is a pure function of (seed, epoch, utterance):
:func:`picked`. Over an epoch the share is the requested fraction up to sampling noise, and a
resumed run makes the same choices.

>>> picked(0.0, 0, 0, "ts", "a.flac"), picked(1.0, 0, 0, "ts", "a.flac")
(False, True)
>>> share = sum(picked(0.25, 0, 0, "ts", f"{i}.flac") for i in range(4000)) / 4000
>>> abs(share - 0.25) < 0.02
True
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from asrtune.inference.whisper_common import clip_prompt_tokens, no_speech_token, text_token_ids, timestamp_token
from asrtune.models.whisper_spec import MAX_TARGET_TOKENS, TIME_PRECISION_S, WINDOW_SECONDS

HASH_SCALE = float(2**64)  # picked(): the first 8 bytes of a SHA-256 as a fraction of this


@dataclass(frozen=True)
class Target:
    """One training sequence and how many of its leading tokens are given, not predicted.

    >>> t = Target([1, 2, 3, 4, 5], given=2)
    >>> t.decoder_input_ids, t.labels(ignore=-100)
    ([1, 2, 3, 4], [-100, 3, 4, 5])
    """

    ids: list[int]
    given: int
    trained_given: tuple[tuple[int, int], ...] = ()  # (position, label): given inputs whose prediction still trains

    @property
    def decoder_input_ids(self) -> list[int]:
        return self.ids[:-1]

    def labels(self, ignore: int) -> list[int]:
        """``ids`` shifted by one, with the predictions of given tokens replaced by ``ignore``
        (except the positions in ``trained_given``, which get their own label).

        >>> Target([1, 2, 3], given=2, trained_given=((0, 9),)).labels(ignore=-100)
        [9, 3]
        """
        labels = [ignore] * (self.given - 1) + self.ids[self.given :]
        for position, label in self.trained_given:
            labels[position] = label
        return labels


@dataclass(frozen=True)
class Segment:
    """A stretch of the utterance's text with its times in seconds from the utterance start."""

    start: float
    end: float
    text: str


PICK_KEY_PARTS = 3  # trailing path components that name an utterance for picked(): "speaker/chapter/file.flac"


def pick_key(audio_filepath: str, offset: float = 0.0) -> str:
    """The utterance's name for :func:`picked`: the last path components (plus the offset of a
    segment), not the absolute path, so the same data picks the same examples wherever it lives.

    >>> pick_key("/data/so762/audio/9615/096150003.flac") == pick_key("/mnt/copy/audio/9615/096150003.flac")
    True
    >>> pick_key("/data/long/ep1.flac", 12.5)
    'data/long/ep1.flac@12.500'
    """
    name = "/".join(Path(audio_filepath).parts[-PICK_KEY_PARTS:])
    return f"{name}@{offset:.3f}" if offset else name


def picked(fraction: float, seed: int, epoch: int, purpose: str, key: str) -> bool:
    """Deterministic coin: True for about ``fraction`` of keys, fresh per seed, epoch and purpose."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    digest = hashlib.sha256(f"{seed}|{epoch}|{purpose}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SCALE < fraction


def utterance_segments(extra: dict[str, Any], duration: float) -> list[Segment] | None:
    """Inner segments of a manifest line (``segments: [{start, end, text}]``, times relative to the
    utterance), clamped to the utterance and to Whisper's window; None when absent or unusable.

    >>> utterance_segments({"segments": [{"start": 0.1, "end": 1.0, "text": "a"}, {"start": 1.2, "end": 9, "text": "b"}]}, 2.0)
    [Segment(start=0.1, end=1.0, text='a'), Segment(start=1.2, end=2.0, text='b')]
    >>> utterance_segments({}, 2.0) is None
    True
    """
    raw = extra.get("segments")
    if not isinstance(raw, list) or not raw:
        return None
    limit = min(duration, WINDOW_SECONDS)
    out: list[Segment] = []
    try:
        for s in raw:
            start, end = max(0.0, float(s["start"])), min(limit, float(s["end"]))
            text = str(s["text"]).strip()
            if not text or end < start or (out and start < out[-1].end - TIME_PRECISION_S):
                return None  # overlapping or empty segments: fall back to the whole utterance
            out.append(Segment(start, end, text))
    except (KeyError, TypeError, ValueError):
        return None
    return out


class WhisperTargets:
    """Builds :class:`Target` sequences for one Whisper tokenizer and decoding prefix.

    ``sot`` is the decoding prefix ending in ``<|notimestamps|>`` (as
    :func:`asrtune.inference.whisper_common.build_prompt` makes it).
    """

    def __init__(self, tokenizer: Any, sot: Sequence[int], max_tokens: int = MAX_TARGET_TOKENS):
        self.tokenizer = tokenizer
        self.notimestamps = int(tokenizer.convert_tokens_to_ids("<|notimestamps|>"))
        if not sot or sot[-1] != self.notimestamps:
            raise ValueError("the decoding prefix must end with <|notimestamps|>")
        self.sot = list(sot)
        self.eot = int(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        self.startofprev = int(tokenizer.convert_tokens_to_ids("<|startofprev|>"))
        self.no_speech = no_speech_token(tokenizer)
        self.max_tokens = max_tokens

    def text_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` (plain text) with the leading space Whisper itself emits."""
        return text_token_ids(self.tokenizer, " " + text.strip())

    def prompt_ids(self, text: str | None, budget: int | None = None) -> list[int]:
        """``<|startofprev|>`` + the last tokens of ``text``: clipped by the decoding rule
        (:func:`~asrtune.inference.whisper_common.clip_prompt_tokens`), then to ``budget`` tokens in
        all when the target leaves less; [] for no text or no room."""
        if not text or not text.strip():
            return []
        ids = clip_prompt_tokens(self.text_ids(text), self.max_tokens)
        if budget is not None:
            ids = ids[-(budget - 1) :] if budget >= 2 else []
        return [self.startofprev, *ids] if ids else []

    def plain(self, text: str, prompt: str | None = None) -> Target:
        return self._with_prompt(self.sot, self.text_ids(text) + [self.eot], prompt)

    def timestamped(self, text: str, duration: float, segments: list[Segment] | None = None,
                    prompt: str | None = None) -> Target:
        """Whisper's timestamp format: the whole utterance as one segment from ``<|0.00|>`` to its
        duration (capped at 30 s), or its inner ``segments``."""
        if not segments:
            segments = [Segment(0.0, min(duration, WINDOW_SECONDS), text)]
        body: list[int] = []
        for seg in segments:
            body += [timestamp_token(self.tokenizer, seg.start), *self.text_ids(seg.text),
                     timestamp_token(self.tokenizer, seg.end)]
        return self._with_prompt(self.sot[:-1], body + [self.eot], prompt)

    def no_speech_target(self, timestamped: bool = False) -> Target:
        """The decoding prefix (ending in ``<|notimestamps|>``, or ``<|0.00|>`` when ``timestamped``)
        then EOT; the SOT position learns the no-speech token. ValueError for a vocabulary without one."""
        if self.no_speech is None:
            raise ValueError("this Whisper vocabulary has no <|nospeech|>/<|nocaptions|> token")
        prefix = self.sot[:-1] + [timestamp_token(self.tokenizer, 0.0)] if timestamped else self.sot
        return Target([*prefix, self.eot], given=len(prefix), trained_given=((0, self.no_speech),))

    def _with_prompt(self, prefix: list[int], body: list[int], prompt: str | None) -> Target:
        # The decoder reads len(ids) - 1 positions; the prompt gets what the target leaves over.
        prev = self.prompt_ids(prompt, budget=self.max_tokens + 1 - len(prefix) - len(body))
        return Target([*prev, *prefix, *body], given=len(prev) + len(prefix))


def decode_target(tokenizer: Any, ids: Sequence[int]) -> str:
    """A target as text with every special and timestamp token spelled out (for tests and logs).

    Timestamp tokens are past the end of Hugging Face's Whisper tokenizer vocabulary, so they are
    spelled from the 0.02 s grid here.
    """
    notimestamps = int(tokenizer.convert_tokens_to_ids("<|notimestamps|>"))
    parts: list[str] = []
    run: list[int] = []
    for t in list(ids) + [-1]:
        if t > notimestamps or t == -1:
            if run:
                parts.append(tokenizer.decode(run, skip_special_tokens=False))
                run = []
            if t != -1:
                parts.append(f"<|{(t - notimestamps - 1) * TIME_PRECISION_S:.2f}|>")
        else:
            run.append(t)
    return re.sub(r"\s+", " ", "".join(parts))
