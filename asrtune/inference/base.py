"""The one interface every recognition engine implements: :class:`Recognizer`, and its result,
:class:`Hypothesis`."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ  # every engine takes 16 kHz mono float32
from asrtune.alignment.words import Word
from asrtune.errors import AsrtuneError
from asrtune.models.whisper_spec import WINDOW_SECONDS

MAX_CLIP_SECONDS = WINDOW_SECONDS  # longer audio is segmented in asrtune.transcription


@dataclass
class Hypothesis:
    """What a recogniser made of one clip.

    ``words`` (times in seconds from the clip start) is filled when word timestamps were asked
    for, else None. ``avg_logprob`` (mean log-probability per token, end-of-text included) and
    ``no_speech_prob`` (Whisper's probability of "no speech" at the first decoding step) come
    from Whisper engines; CTC models leave them None. ``tokens`` are the decoded text token ids;
    ``temperature`` is the sampling temperature of a Whisper fallback decode (0: greedy or beam).

    >>> Hypothesis("Hello.", words=[Word("Hello.", 0.3, 0.8, 0.9)]).words[0].end
    0.8
    """

    text: str
    words: list[Word] | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    tokens: list[int] = field(default_factory=list)
    temperature: float = 0.0


class Recognizer(abc.ABC):
    """Transcribes short clips (<= 30 s, 16 kHz mono float32) in batches.

    >>> rec = load_recognizer("openai/whisper-tiny.en")          # doctest: +SKIP
    >>> rec.transcribe([load_audio("clip.flac")])                # doctest: +SKIP
    ['Hello world.']
    >>> rec.decode([load_audio("clip.flac")], word_timestamps=True)[0].words[0]  # doctest: +SKIP
    Word(text='Hello', start=0.42, end=0.78, probability=0.93)
    """

    name: str
    engine: str
    source: str
    family: str
    #: whether :meth:`force_align` works (Whisper engines)
    can_force_align: bool = False
    #: whether callers that decode on the user's behalf (asrtune transcribe, the server) ask for word times
    word_timestamps: bool = False

    @abc.abstractmethod
    def decode(self, audios: Sequence[np.ndarray], word_timestamps: bool = False) -> list[Hypothesis]:
        """One :class:`Hypothesis` per clip, in order; with ``word_timestamps`` each has ``words``."""

    def force_align(self, audios: Sequence[np.ndarray], texts: Sequence[str]) -> list[Hypothesis]:
        """Each clip with a given text instead of a decoded one: the text's words timed on the clip
        and ``avg_logprob`` = how likely the model finds that text there (teacher-forced, mean per
        token). Comparing it with the model's own hypothesis tells a recognition error from a
        transcript that does not belong to the audio (:mod:`asrtune.alignment.verify`)."""
        raise AsrtuneError(f"{self.engine} engine: forced alignment of a given text is not available")

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        """One transcript per clip, in order."""
        return [h.text for h in self.decode(audios)]

    def describe(self) -> dict:
        """What produced the transcripts, for reports: name, engine, source, family and options."""
        return {"name": self.name, "engine": self.engine, "source": self.source, "family": self.family}


def check_clips(audios: Sequence[np.ndarray], max_seconds: float = MAX_CLIP_SECONDS) -> list[np.ndarray]:
    """float32 1-D arrays; raise AsrtuneError for a clip that is not one or is too long."""
    clips = []
    for i, audio in enumerate(audios):
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise AsrtuneError(f"clip #{i}: expected mono 1-D 16 kHz audio, got an array of shape {audio.shape}")
        if len(audio) > max_seconds * SAMPLE_RATE_HZ + 1:
            raise AsrtuneError(
                f"clip #{i}: {len(audio) / SAMPLE_RATE_HZ:.1f} s is longer than {max_seconds:.0f} s; "
                "segment long audio first (asrtune transcribe does this)"
            )
        clips.append(audio)
    return clips


def batches(items: list, size: int):
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
