"""Audio loading on real shared files (every format and rate) and on files made here."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from asrtune.data.audio import SAMPLE_RATE_HZ, audio_info, count_decodable_frames, load_audio, resample
from asrtune.data.manifest import read_manifest
from asrtune.errors import AudioError

# (set folder, manifest, expected source rate in Hz, extension)
SHARED_SETS = [
    ("fsdd-300", "manifest.jsonl", 8_000, ".wav"),
    ("speechocean762", "test.jsonl", 16_000, ".flac"),
    ("ljspeech-32", "manifest.jsonl", 22_050, ".wav"),
    ("spontaneous-mfa-12", "manifest.jsonl", 48_000, ".mp3"),
]


def _first_with_ext(shared_data, folder, manifest, ext):
    return next(u for u in read_manifest(shared_data / folder / manifest) if u.audio_filepath.endswith(ext))


@pytest.mark.parametrize("folder,manifest,rate,ext", SHARED_SETS)
def test_shared_formats_load_as_16k_mono_float32(shared_data, folder, manifest, rate, ext):
    utt = _first_with_ext(shared_data, folder, manifest, ext)
    duration, source_rate, channels = audio_info(utt.audio_filepath)
    assert source_rate == rate
    assert channels == 1
    assert abs(duration - utt.duration) < 0.1  # the manifest's stated duration agrees with the header
    wav = load_audio(utt.audio_filepath)
    assert wav.dtype == np.float32 and wav.ndim == 1
    # Length follows the rate change: n_16k ≈ n_src * 16000 / rate (MP3 headers estimate, hence 0.05 s slack).
    assert abs(len(wav) / SAMPLE_RATE_HZ - duration) < 0.05
    assert 0.005 < float(np.sqrt(np.mean(wav**2))) < 1.0  # real speech, not silence, not clipped garbage


def test_soundfile_decodes_the_common_voice_mp3s(shared_data):
    mp3s = sorted((shared_data / "spontaneous-mfa-12" / "audio" / "common_voice").glob("*.mp3"))
    assert len(mp3s) == 3
    for mp3 in mp3s:
        data, rate = sf.read(mp3, dtype="float32")  # libsndfile >= 1.1 has an MP3 decoder
        assert rate == 48_000 and len(data) > rate  # each clip is longer than a second
        decoded, header, _ = count_decodable_frames(mp3)
        assert decoded == len(data) and abs(decoded - header) < 0.02 * rate  # header estimate is close


def test_offset_reads_only_the_segment(shared_data):
    long = shared_data / "longform" / "librispeech-1089-134686.flac"
    full_duration = audio_info(long)[0]
    assert full_duration > 250
    segment = load_audio(long, offset=120.0, duration=2.5)
    assert len(segment) == int(2.5 * SAMPLE_RATE_HZ)
    reference = sf.read(long, start=120 * 16_000, frames=int(2.5 * 16_000), dtype="float32")[0]
    np.testing.assert_allclose(segment, reference, atol=1e-6)  # 16 kHz source: no resampling, exact
    with pytest.raises(AudioError, match="past the end"):
        load_audio(long, offset=full_duration + 5, duration=1.0)


def test_offset_segment_of_a_48k_mp3_matches_the_full_decode(shared_data):
    mp3 = next((shared_data / "spontaneous-mfa-12" / "audio" / "common_voice").glob("*.mp3"))
    full = load_audio(mp3)
    part = load_audio(mp3, offset=1.0, duration=0.5)
    assert len(part) == 8_000
    # Resampling a cut differs from cutting the resampled whole only at the edges.
    np.testing.assert_allclose(part[200:-200], full[16_000 + 200 : 24_000 - 200], atol=2e-3)


def test_resample_is_band_limited_and_keeps_a_tone():
    rate = 48_000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    above_nyquist = (0.5 * np.sin(2 * np.pi * 12_000 * t)).astype(np.float32)  # > 8 kHz: must vanish
    out = resample(tone + above_nyquist, rate)
    assert out.dtype == np.float32 and len(out) == SAMPLE_RATE_HZ
    spectrum = np.abs(np.fft.rfft(out[1000:-1000]))
    freqs = np.fft.rfftfreq(len(out) - 2000, 1 / SAMPLE_RATE_HZ)
    assert abs(freqs[spectrum.argmax()] - 440) < 2
    # 12 kHz would alias to 4 kHz without the low-pass: its energy there must be tiny.
    alias = spectrum[(freqs > 3900) & (freqs < 4100)].max()
    assert alias < 0.01 * spectrum.max()


def test_stereo_24bit_wav_is_mixed_to_mono(tmp_path):
    rate = 44_100
    t = np.arange(rate // 2) / rate
    left = 0.4 * np.sin(2 * np.pi * 300 * t)
    right = -0.2 * np.sin(2 * np.pi * 300 * t)
    path = tmp_path / "stereo24.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_24")
    assert sf.info(path).subtype == "PCM_24"
    assert audio_info(path)[1:] == (rate, 2)
    wav = load_audio(path, sample_rate=rate)  # no resampling: check the mix itself
    np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-5)
    assert len(load_audio(path)) == 8_000  # and at 16 kHz, 0.5 s


def test_ogg_vorbis_loads(tmp_path):
    rate = 32_000
    t = np.arange(rate) / rate
    path = tmp_path / "tone.ogg"
    sf.write(path, 0.3 * np.sin(2 * np.pi * 500 * t), rate, format="OGG", subtype="VORBIS")
    wav = load_audio(path)
    assert abs(len(wav) - SAMPLE_RATE_HZ) < 200
    assert 0.1 < float(np.sqrt(np.mean(wav**2))) < 0.3


def test_silent_file_loads_as_zeros(tmp_path):
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros(8_000, dtype=np.int16), 16_000)
    wav = load_audio(path)
    assert len(wav) == 8_000 and not wav.any()


def test_empty_and_header_only_files_are_clear_errors(tmp_path, shared_data):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: file is empty"):
        load_audio(empty)
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros(0, dtype=np.int16), 16_000)
    with pytest.raises(AudioError, match="header.wav.*empty"):
        audio_info(header_only)
    with pytest.raises(AudioError, match="header.wav.*(no audio samples|empty)"):
        load_audio(header_only)
    with pytest.raises(AudioError, match="missing.flac: file not found"):
        load_audio(tmp_path / "missing.flac")
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="garbage.flac"):
        load_audio(garbage)


def test_truncated_flac_keeps_its_header_but_fails_to_decode(tmp_path, shared_data):
    src = next(read_manifest(shared_data / "speechocean762" / "test.jsonl")).audio_filepath
    whole = tmp_path / "whole.flac"
    shutil.copy(src, whole)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    # The header still announces the full length ...
    assert audio_info(truncated)[0] == pytest.approx(audio_info(whole)[0])
    # ... only decoding finds the missing half.
    decoded, header, _ = count_decodable_frames(whole)
    assert decoded == header
    with pytest.raises(AudioError, match="truncated.flac"):
        count_decodable_frames(truncated)
    with pytest.raises(AudioError, match="truncated.flac"):
        load_audio(truncated)
