"""The one interface every recognition engine implements: :class:`Recognizer`."""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np

from asrtune.data.audio import SAMPLE_RATE  # every engine takes 16 kHz mono float32
from asrtune.errors import AsrtuneError
from asrtune.models.whisper_spec import WINDOW_SECONDS

MAX_CLIP_SECONDS = WINDOW_SECONDS  # longer audio is segmented in asrtune.transcription


class Recognizer(abc.ABC):
    """Transcribes short clips (<= 30 s, 16 kHz mono float32) in batches.

    >>> rec = load_recognizer("openai/whisper-tiny.en")          # doctest: +SKIP
    >>> rec.transcribe([load_audio("clip.flac")])                # doctest: +SKIP
    ['Hello world.']
    """

    name: str
    engine: str
    source: str
    family: str

    @abc.abstractmethod
    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        """One transcript per clip, in order."""

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
        if len(audio) > max_seconds * SAMPLE_RATE + 1:
            raise AsrtuneError(
                f"clip #{i}: {len(audio) / SAMPLE_RATE:.1f} s is longer than {max_seconds:.0f} s; "
                "segment long audio first (asrtune transcribe does this)"
            )
        clips.append(audio)
    return clips


def batches(items: list, size: int):
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
