"""Pack a speaker's consecutive short clips into training windows of up to 30 s with timed parts.

Whisper learned its timestamps from 30 s windows holding several segments. Tuned only on single
clips, each a one-segment ``<|0.00|> text <|end|>`` target, it stops ending segments inside a
window, and its long-form timestamped decoding runs sentences together (``benchmarks/bench_timestamps.py``:
faster-whisper finds 64 segments in the 5-minute long-form file with base tiny.en, 20 after a
300-step tune on speechocean762 clips). :func:`pack_utterances` joins each speaker's consecutive
clips (in manifest order) into windows of at most ``max_duration_s``, writes each window as one
FLAC, and lists every clip as a part in the line's ``segments`` (start and end in window time,
the clip's own text). The trainer turns such lines into Whisper's multi-segment timestamp
targets; the clips keep their own leading and trailing silence, so the parts meet in a pause.

>>> utts = [Utterance("a.flac", "ONE", 2.0, extra={"speaker": "s1"}), Utterance("b.flac", "TWO", 3.0, extra={"speaker": "s2"}),
...         Utterance("c.flac", "THREE", 2.5, extra={"speaker": "s1"})]
>>> [[u.text for u in window] for window in plan_windows(utts, max_duration_s=30.0)]
[['ONE', 'THREE'], ['TWO']]
>>> [[u.text for u in window] for window in plan_windows(utts, max_duration_s=4.0)]
[['ONE'], ['THREE'], ['TWO']]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio, write_flac
from asrtune.data.manifest import Utterance
from asrtune.errors import AsrtuneError, ConfigError

MAX_WINDOW_S = 30.0  # s: Whisper's encoder window (asrtune.models.whisper_spec.WINDOW_SECONDS; data sits below models)
PART_DECIMALS = 3  # ms resolution of part times


@dataclass
class PackSummary:
    """What :func:`pack_utterances` did: clips in, windows out, and the clips it could not read."""

    clips: int = 0
    windows: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (audio path, reason)

    def line(self) -> str:
        mean = self.clips / self.windows if self.windows else 0.0
        text = (f"{self.clips} clips -> {self.windows} windows ({self.seconds / 60:.1f} min, "
                f"{mean:.1f} clips per window)")
        return text + (f"; {len(self.skipped)} unreadable clip(s) skipped" if self.skipped else "")


def plan_windows(utts: Iterable[Utterance], max_duration_s: float = MAX_WINDOW_S, gap_s: float = 0.0) -> list[list[Utterance]]:
    """Each speaker's clips in manifest order, cut greedily into windows of at most ``max_duration_s``
    (``gap_s`` of silence between clips counted). Clips without a speaker form one stream; a clip
    longer than the limit is a window of its own."""
    if not 0 < max_duration_s <= MAX_WINDOW_S:
        raise ConfigError(f"--max-duration must be > 0 and at most {MAX_WINDOW_S:g} s (Whisper's window), got {max_duration_s}")
    if not 0 <= gap_s < max_duration_s:
        raise ConfigError(f"--gap must be >= 0 s and shorter than --max-duration, got {gap_s}")
    streams: dict[str, list[Utterance]] = {}
    for utt in utts:
        streams.setdefault(utt.speaker or "", []).append(utt)
    windows: list[list[Utterance]] = []
    for stream in streams.values():
        current: list[Utterance] = []
        length = 0.0
        for utt in stream:
            added = utt.duration + (gap_s if current else 0.0)
            if current and length + added > max_duration_s:
                windows.append(current)
                current, length, added = [], 0.0, utt.duration
            current.append(utt)
            length += added
        if current:
            windows.append(current)
    return windows


def pack_window(window: Sequence[Utterance], gap_s: float = 0.0) -> tuple[np.ndarray, list[dict[str, Any]], list[Utterance], list[tuple[str, str]]]:
    """The window's samples, its parts (``{start, end, text}`` in seconds), the clips in them, and
    the clips it had to skip (path, reason)."""
    pieces: list[np.ndarray] = []
    parts: list[dict[str, Any]] = []
    packed: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    gap = np.zeros(int(round(gap_s * SAMPLE_RATE_HZ)), dtype=np.float32)
    position = 0
    for utt in window:
        try:
            audio = load_audio(utt.audio_filepath, offset=utt.offset, duration=utt.duration or None)
        except AsrtuneError as e:
            skipped.append((utt.audio_filepath, str(e)))
            continue
        if pieces and gap.size:
            pieces.append(gap)
            position += gap.size
        start = position / SAMPLE_RATE_HZ
        pieces.append(audio)
        position += audio.size
        parts.append({"start": round(start, PART_DECIMALS), "end": round(position / SAMPLE_RATE_HZ, PART_DECIMALS),
                      "text": utt.text})
        packed.append(utt)
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return samples, parts, packed, skipped


def pack_utterances(utts: Iterable[Utterance], audio_dir: str | os.PathLike, max_duration_s: float = MAX_WINDOW_S,
                    gap_s: float = 0.0, progress: bool = False) -> tuple[list[Utterance], PackSummary]:
    """Write each planned window to ``audio_dir`` as FLAC; return its manifest lines and a summary.

    A line's text is its parts' texts joined; it keeps the speaker and lists the parts under
    ``segments`` and the source clips under ``packed_from``.
    """
    from tqdm.auto import tqdm  # heavy: tqdm.auto

    utts = list(utts)
    windows = plan_windows(utts, max_duration_s, gap_s)
    audio_dir = Path(audio_dir)
    summary = PackSummary()
    out: list[Utterance] = []
    for number, window in enumerate(tqdm(windows, desc="pack", unit="window", disable=not progress)):
        samples, parts, packed, skipped = pack_window(window, gap_s)
        summary.skipped += skipped
        if not parts:
            continue
        path = audio_dir / f"window-{number:06d}.flac"
        write_flac(path, samples)
        extra: dict[str, Any] = {"segments": parts, "packed_from": [u.id for u in packed]}
        if window[0].speaker is not None:
            extra = {"speaker": window[0].speaker, **extra}
        duration = samples.size / SAMPLE_RATE_HZ
        out.append(Utterance(str(path.resolve()), " ".join(p["text"] for p in parts), round(duration, PART_DECIMALS), extra=extra))
        summary.clips += len(parts)
        summary.windows += 1
        summary.seconds += duration
    return out, summary
