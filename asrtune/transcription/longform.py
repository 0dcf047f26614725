"""One recording of any length -> timed segments (and words): the hub every one-file caller uses.

``transcribe_audio`` cuts the audio at pauses (:func:`asrtune.transcription.vad.segment_audio`;
no detected speech, no segments), decodes the segments in batches with
:meth:`Recognizer.decode <asrtune.inference.base.Recognizer.decode>` and returns
:class:`Segment` objects in file time. The multi-file runner
(:mod:`asrtune.transcription.runner`) builds its records with the same :func:`make_segments`, so
one file gives the same result either way.

>>> rec = load_recognizer("openai/whisper-tiny.en", engine="ct2")           # doctest: +SKIP
>>> segments = transcribe_audio(rec, load_audio("talk.flac"), word_timestamps=True)  # doctest: +SKIP
>>> segments[0].words[0]                                                    # doctest: +SKIP
Word(text='He', start=0.52, end=0.74, probability=0.84)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from asrtune.alignment.words import Word
from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.transcription.vad import MAX_SEGMENT_S, Span, segment_audio

TIME_DECIMALS = 3  # ms resolution in records


@dataclass
class Segment:
    """A decoded stretch of a recording; times in seconds from the start of the file.

    ``avg_logprob``, ``no_speech_prob`` and ``temperature`` are the Whisper decoder's (see
    :class:`~asrtune.inference.base.Hypothesis`); the server reports them, records leave them out.

    >>> Segment(1.0, 2.5, "Hi.", [Word("Hi.", 1.2, 1.5, 0.9)]).to_dict()
    {'start': 1.0, 'end': 2.5, 'text': 'Hi.', 'words': [{'text': 'Hi.', 'start': 1.2, 'end': 1.5, 'probability': 0.9}]}
    >>> Segment(0.0, 1.0, "Hi.").to_dict()
    {'start': 0.0, 'end': 1.0, 'text': 'Hi.'}
    """

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    temperature: float = 0.0

    def to_dict(self) -> dict:
        """The record form (json/jsonl); ``words`` only when there are word times."""
        d: dict = {"start": round(self.start, TIME_DECIMALS), "end": round(self.end, TIME_DECIMALS), "text": self.text}
        if self.words:
            d["words"] = [w.to_dict() for w in self.words]
        return d


def span_clip(audio: np.ndarray, span: Span) -> np.ndarray:
    """The samples of ``audio`` inside ``span``."""
    return audio[int(round(span.start * SAMPLE_RATE_HZ)) : int(round(span.end * SAMPLE_RATE_HZ))]


def make_segment(span: Span, hypothesis, duration: float) -> Segment | None:
    """A :class:`Segment` in file time from one span's hypothesis; None when it has no text.

    Word times move from segment time to file time and stay inside the segment.
    """
    text = hypothesis.text.strip()
    if not text:
        return None
    end = min(span.end, duration)
    words = [_inside(w.shifted(span.start), span.start, end) for w in hypothesis.words or []]
    return Segment(span.start, end, text, words, getattr(hypothesis, "avg_logprob", None),
                   getattr(hypothesis, "no_speech_prob", None), getattr(hypothesis, "temperature", 0.0))


def make_segments(spans: Sequence[Span], hypotheses: Sequence, duration: float) -> list[Segment]:
    """Segments (file time) for the spans that decoded to some text, in order."""
    segments = (make_segment(span, hyp, duration) for span, hyp in zip(spans, hypotheses))
    return [s for s in segments if s is not None]


def transcribe_audio(
    recognizer,
    audio: np.ndarray,
    *,
    vad: str = "silero",
    max_segment_s: float = MAX_SEGMENT_S,
    word_timestamps: bool = False,
) -> list[Segment]:
    """Transcribe one 16 kHz mono recording of any length into timed segments (see the module doc)."""
    audio = np.asarray(audio, dtype=np.float32)
    spans = [s for s in segment_audio(audio, max_segment_s=max_segment_s, method=vad) if span_clip(audio, s).size]
    if not spans:
        return []
    hypotheses = recognizer.decode([span_clip(audio, s) for s in spans], word_timestamps=word_timestamps)
    return make_segments(spans, hypotheses, len(audio) / SAMPLE_RATE_HZ)


def _inside(word: Word, start: float, end: float) -> Word:
    s = min(max(word.start, start), end)
    return Word(word.text, s, min(max(word.end, s), end), word.probability)
