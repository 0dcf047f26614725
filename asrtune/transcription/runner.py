"""Decode many files with one recogniser: load + segment ahead, batch segments across files.

:func:`transcribe_sources` is the engine room shared by the single-process run, the
``--workers`` processes and the Ray actors. Audio loading and voice-activity detection run in a
small thread pool ahead of the model (soundfile, the resampler and onnxruntime release the GIL),
segments from consecutive files fill the same batch (thousands of short files decode as fast as a
few long ones), and a file is yielded as soon as its last segment is decoded. A file that cannot
be read or decoded yields an error instead; the rest carry on.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable, Iterator

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio
from asrtune.errors import AsrtuneError
from asrtune.inference.base import Hypothesis
from asrtune.transcription.inputs import AudioSource
from asrtune.transcription.longform import make_segments, span_clip
from asrtune.transcription.vad import MAX_SEGMENT_S, Span, segment_audio

PREFETCH_FILES = 4  # files loaded and segmented ahead of the model
LOADER_THREADS = 2


@dataclass
class FileOutcome:
    """The result for one source: a transcript ``record`` or an ``error`` (one line)."""

    source: AudioSource
    record: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def duration(self) -> float:
        return float(self.record["duration"]) if self.record else 0.0


@dataclass
class _Prepared:
    source: AudioSource
    audio: np.ndarray | None = None
    spans: list[Span] = field(default_factory=list)
    error: str | None = None


@dataclass
class _FileJob:
    source: AudioSource
    duration: float
    spans: list[Span]
    hypotheses: list[Hypothesis]
    remaining: int
    error: str | None = None


def describe_error(error: BaseException) -> str:
    """One line for errors.jsonl: the user-facing message, or the exception type and message."""
    if isinstance(error, AsrtuneError):
        return str(error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:500]


def prepare_source(source: AudioSource, max_segment_s: float = MAX_SEGMENT_S, vad: str = "silero") -> _Prepared:
    """Load one source and cut it into segments; failures become an error message, not an exception."""
    try:
        audio = load_audio(source.path, offset=source.offset, duration=source.duration)
        spans = segment_audio(audio, max_segment_s=max_segment_s, method=vad)
        return _Prepared(source, audio, spans)
    except Exception as e:  # any unreadable file is reported per file; the batch carries on
        return _Prepared(source, error=describe_error(e))


def _prefetched(sources: Iterable[AudioSource], max_segment_s: float, vad: str) -> Iterator[_Prepared]:
    sources = iter(sources)
    with ThreadPoolExecutor(LOADER_THREADS, thread_name_prefix="asrtune-load") as pool:
        window = deque(pool.submit(prepare_source, s, max_segment_s, vad) for s in islice(sources, PREFETCH_FILES))
        while window:
            future = window.popleft()
            nxt = next(sources, None)
            if nxt is not None:
                window.append(pool.submit(prepare_source, nxt, max_segment_s, vad))
            yield future.result()


def transcribe_sources(
    recognizer,
    sources: Iterable[AudioSource],
    batch_size: int = 16,
    max_segment_s: float = MAX_SEGMENT_S,
    vad: str = "silero",
    word_timestamps: bool | None = None,
) -> Iterator[FileOutcome]:
    """Transcribe ``sources`` with ``recognizer``; yield one :class:`FileOutcome` per source as each finishes.

    Audio is cut at pauses (:func:`asrtune.transcription.vad.segment_audio`); each segment keeps
    its start/end in seconds within the source, and with ``word_timestamps`` (default: the
    recogniser's own ``word_timestamps``) its words. Records are built by
    :func:`asrtune.transcription.longform.make_segments`, as ``transcribe_audio`` builds them.
    """
    if word_timestamps is None:
        word_timestamps = bool(getattr(recognizer, "word_timestamps", False))
    pending: list[tuple[_FileJob, int, np.ndarray]] = []
    for prepared in _prefetched(sources, max_segment_s, vad):
        if prepared.error is not None:
            yield FileOutcome(prepared.source, error=prepared.error)
            continue
        audio = prepared.audio
        spans = [s for s in prepared.spans if span_clip(audio, s).size]
        job = _FileJob(prepared.source, len(audio) / SAMPLE_RATE_HZ, spans, [Hypothesis("")] * len(spans), 0)
        for i, span in enumerate(spans):
            pending.append((job, i, span_clip(audio, span)))
            job.remaining += 1
        if job.remaining == 0:  # no speech found: an empty transcript, not an error
            yield _finish(job)
        while len(pending) >= batch_size:
            batch, pending = pending[:batch_size], pending[batch_size:]
            yield from _decode(recognizer, batch, word_timestamps)
    if pending:
        yield from _decode(recognizer, pending, word_timestamps)


def _decode(recognizer, batch: list[tuple[_FileJob, int, np.ndarray]], word_timestamps: bool) -> Iterator[FileOutcome]:
    try:
        hypotheses = recognizer.decode([clip for _, _, clip in batch], word_timestamps=word_timestamps)
        if len(hypotheses) != len(batch):
            raise RuntimeError(f"recogniser returned {len(hypotheses)} hypotheses for {len(batch)} clips")
        results: list[Hypothesis | BaseException] = list(hypotheses)
    except Exception:
        # One bad clip must not sink its batch-mates: retry one by one to find it.
        results = []
        for _, _, clip in batch:
            try:
                results.append(recognizer.decode([clip], word_timestamps=word_timestamps)[0])
            except Exception as e:
                results.append(e)
    for (job, i, _), result in zip(batch, results):
        if isinstance(result, BaseException):
            job.error = job.error or f"decoding failed: {describe_error(result)}"
        else:
            job.hypotheses[i] = result
        job.remaining -= 1
        if job.remaining == 0:
            yield _finish(job)


def _finish(job: _FileJob) -> FileOutcome:
    if job.error is not None:
        return FileOutcome(job.source, error=job.error)
    source = job.source
    segments = [s.to_dict() for s in make_segments(job.spans, job.hypotheses, job.duration)]
    record = {
        "file": source.key,
        "path": source.path,
        "output": source.stem,
        "duration": round(job.duration, 3),
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
    }
    if source.offset:
        record["offset"] = source.offset
    return FileOutcome(source, record=record)
