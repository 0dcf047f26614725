"""Batch transcription at scale: long-form segmentation (VAD), output writers, resumable runner,
local worker processes and Ray.

>>> from asrtune.transcription import transcribe                                  # doctest: +SKIP
>>> transcribe(["recordings/"], "openai/whisper-tiny.en", "out", formats="txt,srt")  # doctest: +SKIP
"""

from asrtune.transcription.batch import TranscriptionSummary, transcribe
from asrtune.transcription.inputs import AudioSource, collect_sources
from asrtune.transcription.runner import FileOutcome, transcribe_sources
from asrtune.transcription.vad import Span, segment_audio, speech_chunks
from asrtune.transcription.writers import format_timestamp, to_srt, to_vtt

__all__ = [
    "AudioSource",
    "FileOutcome",
    "Span",
    "TranscriptionSummary",
    "collect_sources",
    "format_timestamp",
    "segment_audio",
    "speech_chunks",
    "to_srt",
    "to_vtt",
    "transcribe",
    "transcribe_sources",
]
