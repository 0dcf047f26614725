"""VAD and long-form segmentation on real speech (the 5-minute long-form file) and synthetic edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio
from asrtune.transcription.vad import (
    MAX_SEGMENT_S,
    Span,
    detect_speech,
    frame_energy_db,
    merge_chunks,
    segment_audio,
    speech_chunks,
)

LONGFORM = "longform/librispeech-1089-134686.flac"


@pytest.fixture(scope="module")
def longform_audio(shared_data):
    return load_audio(shared_data / LONGFORM)


def assert_detector_ran(audio: np.ndarray, method: str) -> None:
    """The requested detector really ran: a Silero test that silently fell back to the energy
    detector would otherwise pass on the energy detector's merits."""
    assert detect_speech(audio[: 10 * SAMPLE_RATE_HZ], method).method == method


def _level_db(audio: np.ndarray, start: float, end: float) -> float:
    window = audio[int(start * SAMPLE_RATE_HZ) : int(end * SAMPLE_RATE_HZ)].astype(np.float64)
    return float(10 * np.log10(np.mean(window**2) + 1e-12))


@pytest.mark.parametrize("method", ["silero", "energy"])
def test_longform_segments_are_inside_ordered_and_short(longform_audio, method):
    assert_detector_ran(longform_audio, method)
    duration = len(longform_audio) / SAMPLE_RATE_HZ
    segments = segment_audio(longform_audio, method=method)
    assert len(segments) >= duration / MAX_SEGMENT_S  # 299 s cannot fit in fewer than 10 segments
    for seg in segments:
        assert 0.0 <= seg.start < seg.end <= duration + 1e-6
        assert seg.duration <= MAX_SEGMENT_S + 1e-6
    for a, b in zip(segments, segments[1:]):
        assert a.end <= b.start + 1e-6, "segments overlap or are out of order"
    # The file is continuous read speech with 0.6 s pauses: segments must cover almost all of it.
    covered = sum(s.duration for s in segments)
    assert covered > 0.9 * duration


@pytest.mark.parametrize("method", ["silero", "energy"])
def test_longform_cuts_land_in_pauses(longform_audio, method):
    """Every cut between segments sits in a stretch far quieter than the speech around it."""
    assert_detector_ran(longform_audio, method)
    speech_level = float(np.percentile(frame_energy_db(longform_audio), 90))
    segments = segment_audio(longform_audio, method=method)
    for a, b in zip(segments, segments[1:]):
        lo, hi = a.end, b.start
        if hi - lo < 0.06:  # segments that touch: look at 60 ms around the cut
            lo, hi = lo - 0.03, hi + 0.03
        level = _level_db(longform_audio, lo, hi)
        assert level < speech_level - 25.0, f"cut at {a.end:.2f}-{b.start:.2f} s is only {speech_level - level:.1f} dB under speech"


def test_silero_chunks_find_the_pauses_between_utterances(longform_audio, shared_data):
    """The file joins LibriSpeech utterances with 0.6 s pauses; speech chunks must not swallow them all."""
    detection = detect_speech(longform_audio, "silero")
    assert detection.method == "silero"
    chunks = detection.chunks
    assert len(chunks) >= 20  # 38 utterances joined; a few pauses may be bridged, most are found
    for a, b in zip(chunks, chunks[1:]):
        assert a.end <= b.start + 1e-6


def test_short_noise_and_silence_have_no_segments():
    # the VAD runs on short files too: Whisper would write "you" for a clip of noise
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(10 * SAMPLE_RATE_HZ)).astype(np.float32)
    assert segment_audio(short) == []
    silence = np.zeros(60 * SAMPLE_RATE_HZ, dtype=np.float32)
    assert segment_audio(silence, method="energy") == []
    assert segment_audio(silence, method="silero") == []
    assert detect_speech(silence, "silero").method == "silero"
    assert segment_audio(np.zeros(0, dtype=np.float32)) == []


def _bursts(on_off: list[tuple[float, float]], total_s: float) -> np.ndarray:
    """Noise bursts (speech stand-ins for the energy detector) at the given times, silence elsewhere."""
    rng = np.random.default_rng(1)
    audio = (1e-4 * rng.standard_normal(int(total_s * SAMPLE_RATE_HZ))).astype(np.float32)
    for start, end in on_off:
        a, b = int(start * SAMPLE_RATE_HZ), int(end * SAMPLE_RATE_HZ)
        audio[a:b] += (0.2 * rng.standard_normal(b - a)).astype(np.float32)
    return audio


def test_energy_detector_finds_bursts_and_merges_up_to_the_limit():
    bursts = [(1.0, 12.0), (13.0, 25.0), (26.5, 40.0), (41.0, 55.0)]
    audio = _bursts(bursts, 60.0)
    chunks = speech_chunks(audio, "energy")
    assert len(chunks) == 4
    for chunk, (start, end) in zip(chunks, bursts):
        assert abs(chunk.start - start) < 0.3 and abs(chunk.end - end) < 0.3
    segments = segment_audio(audio, method="energy")
    assert len(segments) == 2  # 1-25 s, then 26.5-55 s: the cut falls in the 1.5 s pause
    assert 25.0 <= segments[0].end <= segments[1].start <= 26.5


def test_speech_without_pauses_is_split_at_the_quietest_point():
    # 70 s of continuous "speech" with one brief dip at 24 s and one at 50 s.
    audio = _bursts([(0.0, 24.0), (24.08, 50.0), (50.08, 70.0)], 70.0)
    segments = segment_audio(audio, method="energy")
    assert all(s.duration <= MAX_SEGMENT_S + 1e-6 for s in segments)
    assert sum(s.duration for s in segments) > 69.0
    cuts = [s.end for s in segments[:-1]]
    assert len(cuts) == 2 and abs(cuts[0] - 24.04) < 0.05 and abs(cuts[1] - 50.04) < 0.05


def test_merge_chunks_is_greedy_and_never_exceeds_the_limit():
    chunks = [Span(0, 8), Span(9, 17), Span(18, 29), Span(30, 31), Span(40, 75)]
    assert merge_chunks(chunks, 30.0) == [Span(0, 29), Span(30, 31), Span(40, 75)]
    assert merge_chunks([], 30.0) == []
