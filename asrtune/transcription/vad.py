"""Voice-activity detection and long-form segmentation.

A recogniser decodes at most 30 s at a time (Whisper's window), so a long recording is cut at
speech pauses into segments of up to ``max_segment_s`` seconds:

1. a voice-activity detector finds the speech regions ("chunks"). The default is Silero VAD,
   which faster-whisper ships as an ONNX file and runs with onnxruntime (a small neural model, far
   more reliable in noise than energy); when it is unavailable an energy detector stands in;
2. consecutive chunks are merged greedily into segments while a segment stays within
   ``max_segment_s``, so every cut falls in a pause between chunks. A single chunk longer than
   that (someone talking for 40 s without a breath) is split at its quietest frame.

Short files go through the same steps: a clip in which the detector finds no speech is not
decoded at all (Whisper hallucinates text on silence and noise).

Segment times are positions in the original audio: a segment is the contiguous stretch
``audio[start:end]`` (inner pauses included), so its start/end are true timestamps for
subtitles, with no need for Whisper's timestamp tokens.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.models.whisper_spec import WINDOW_SECONDS

log = logging.getLogger(__name__)

MAX_SEGMENT_S = WINDOW_SECONDS  # s: a segment fills at most Whisper's input window
MIN_SILENCE_S = 0.16  # s: shorter pauses do not end a speech chunk (as faster-whisper's batched mode)
SPEECH_PAD_S = 0.2  # s: kept either side of a chunk so word onsets/offsets are not clipped
ENERGY_FRAME_S = 0.03  # s: frame length for the energy detector and quietest-point search
VAD_METHODS = ("silero", "energy")
SILENCE_DB = -60.0  # dBFS: audio never louder than this is treated as silence by the energy detector


@dataclass(frozen=True)
class Span:
    """A stretch of audio in seconds.

    >>> Span(1.0, 3.5).duration
    2.5
    """

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SpeechDetection:
    """Speech regions and the detector that actually found them (``"energy"`` after a fallback)."""

    chunks: list[Span]
    method: str


def detect_speech(audio: np.ndarray, method: str = "silero", max_chunk_s: float = MAX_SEGMENT_S) -> SpeechDetection:
    """Speech regions of 16 kHz mono ``audio``, each at most ``max_chunk_s`` long, in time order.

    ``method`` is ``"silero"`` (falls back to ``"energy"`` with a warning when faster-whisper or
    onnxruntime is missing; ``.method`` then says ``"energy"``) or ``"energy"``.

    >>> detect_speech(np.zeros(16_000, dtype=np.float32), "energy")
    SpeechDetection(chunks=[], method='energy')
    """
    if method not in VAD_METHODS:
        raise ValueError(f"unknown VAD method {method!r}; choose one of {', '.join(VAD_METHODS)}")
    if audio.size == 0:
        return SpeechDetection([], method)
    used = method
    if method == "silero":
        try:
            chunks = _silero_chunks(audio, max_chunk_s)
        except (ImportError, RuntimeError, OSError) as e:
            _warn_fallback(e)
            chunks, used = _energy_chunks(audio), "energy"
    else:
        chunks = _energy_chunks(audio)
    out: list[Span] = []
    for chunk in chunks:
        out.extend(_split_long(audio, chunk, max_chunk_s))
    return SpeechDetection(out, used)


def speech_chunks(audio: np.ndarray, method: str = "silero", max_chunk_s: float = MAX_SEGMENT_S) -> list[Span]:
    """The chunks of :func:`detect_speech` (when which detector ran does not matter)."""
    return detect_speech(audio, method, max_chunk_s).chunks


def segment_audio(
    audio: np.ndarray,
    max_segment_s: float = MAX_SEGMENT_S,
    method: str = "silero",
) -> list[Span]:
    """Cut ``audio`` into decodable segments of at most ``max_segment_s``, cutting at pauses.

    The voice-activity detector runs on every file, short ones too: Whisper, given a clip of
    silence, hum or noise, still writes something ("you", "Thank you."), so audio with no
    detected speech gives no segments and nothing is decoded. Speech chunks are then merged
    greedily (:func:`merge_chunks`).

    >>> import numpy as np
    >>> segment_audio(np.zeros(16_000, dtype=np.float32))
    []
    """
    return merge_chunks(speech_chunks(audio, method, max_segment_s), max_segment_s)


def merge_chunks(chunks: list[Span], max_segment_s: float = MAX_SEGMENT_S) -> list[Span]:
    """Greedily join consecutive speech chunks into segments no longer than ``max_segment_s``.

    >>> merge_chunks([Span(0, 10), Span(11, 20), Span(21, 35)], 30.0)
    [Span(start=0, end=20), Span(start=21, end=35)]
    """
    segments: list[Span] = []
    current: Span | None = None
    for chunk in chunks:
        if current is not None and chunk.end - current.start <= max_segment_s:
            current = Span(current.start, chunk.end)
        else:
            if current is not None:
                segments.append(current)
            current = chunk
    if current is not None:
        segments.append(current)
    return segments


def frame_energy_db(audio: np.ndarray, frame_s: float = ENERGY_FRAME_S) -> np.ndarray:
    """RMS level of consecutive ``frame_s`` frames in dB (full scale), the last frame zero-padded."""
    frame = max(1, int(round(frame_s * SAMPLE_RATE_HZ)))
    n = int(np.ceil(len(audio) / frame))
    padded = np.zeros(n * frame, dtype=np.float32)
    padded[: len(audio)] = audio
    rms = np.sqrt(np.mean(padded.reshape(n, frame).astype(np.float64) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-6))


def _silero_chunks(audio: np.ndarray, max_chunk_s: float) -> list[Span]:
    # heavy: faster-whisper
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        max_speech_duration_s=max_chunk_s,
        min_silence_duration_ms=int(MIN_SILENCE_S * 1000),
        speech_pad_ms=int(SPEECH_PAD_S * 1000),
    )
    stamps = get_speech_timestamps(np.ascontiguousarray(audio, dtype=np.float32), options, sampling_rate=SAMPLE_RATE_HZ)
    return [Span(s["start"] / SAMPLE_RATE_HZ, s["end"] / SAMPLE_RATE_HZ) for s in stamps]


def _energy_chunks(audio: np.ndarray) -> list[Span]:
    """Frames louder than an adaptive threshold, joined across short pauses and padded.

    The threshold sits 10 dB over the noise floor (10th percentile of frame levels) but never
    more than 40 dB under the loud frames (99th percentile), so both clean studio audio and
    noisy recordings work without tuning.
    """
    db = frame_energy_db(audio)
    floor, peak = np.percentile(db, 10), np.percentile(db, 99)
    duration = len(audio) / SAMPLE_RATE_HZ
    if peak < SILENCE_DB:
        return []
    if peak - floor < 6.0:  # no level contrast: sound throughout, so one chunk (split later at dips)
        return [Span(0.0, duration)]
    threshold = max(floor + 10.0, peak - 40.0)
    voiced = db > threshold
    runs = _runs(voiced)
    min_gap = int(round(MIN_SILENCE_S / ENERGY_FRAME_S))
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < min_gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    spans = [
        Span(max(0.0, s * ENERGY_FRAME_S - SPEECH_PAD_S), min(duration, e * ENERGY_FRAME_S + SPEECH_PAD_S))
        for s, e in merged
        if (e - s) * ENERGY_FRAME_S >= 0.1  # clicks are not speech
    ]
    # Padding may make neighbours overlap: meet in the middle of the pause instead.
    for i in range(1, len(spans)):
        if spans[i].start < spans[i - 1].end:
            mid = (spans[i].start + spans[i - 1].end) / 2
            spans[i - 1], spans[i] = Span(spans[i - 1].start, mid), Span(mid, spans[i].end)
    return spans


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``mask`` is true."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _split_long(audio: np.ndarray, chunk: Span, max_s: float) -> list[Span]:
    """Split a chunk longer than ``max_s`` at its quietest frame in the second half of each window."""
    out: list[Span] = []
    start = chunk.start
    while chunk.end - start > max_s:
        lo, hi = start + max_s / 2, start + max_s - ENERGY_FRAME_S
        a, b = int(lo * SAMPLE_RATE_HZ), int(hi * SAMPLE_RATE_HZ)
        db = frame_energy_db(audio[a:b])
        cut = lo + (int(np.argmin(db)) + 0.5) * ENERGY_FRAME_S if db.size else hi
        cut = min(cut, start + max_s)
        out.append(Span(start, cut))
        start = cut
    out.append(Span(start, chunk.end))
    return out


_warned = False


def _warn_fallback(error: Exception) -> None:
    global _warned
    if not _warned:
        warnings.warn(f"Silero VAD unavailable ({error}); using the energy-based detector", RuntimeWarning, stacklevel=3)
        _warned = True
