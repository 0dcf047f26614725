"""Audio loading: any common file → mono float32 at 16 kHz.

soundfile (libsndfile) decodes WAV, FLAC, OGG/Vorbis and MP3 and can seek, so only the
``offset``..``offset+duration`` stretch of a long file is read. librosa's audioread backend is
the fallback for containers libsndfile does not know. Resampling uses torchaudio's windowed-sinc
resampler (band-limited, so 48 kHz and 8 kHz sources both come out clean at 16 kHz).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from asrtune.errors import AudioError
from asrtune.fileio import atomic_open

SAMPLE_RATE_HZ = 16_000  # what Whisper and wav2vec2-family models expect
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".webm", ".aiff", ".aif")
DECODE_BLOCK_FRAMES = 65_536  # frames per read when decoding a whole file to check it (~4 s at 16 kHz)


def audio_info(path: str | os.PathLike) -> tuple[float, int, int]:
    """Return ``(duration_s, sample_rate_hz, channels)`` from the header, decoding nothing.

    Raises :class:`AudioError` naming the file when it is missing or not readable audio.
    """
    import soundfile as sf  # heavy: soundfile

    path = os.fspath(path)
    _check_exists(path)
    try:
        info = sf.info(path)
    except Exception as e:  # libsndfile raises RuntimeError/LibsndfileError with a terse reason
        try:
            import librosa  # heavy: librosa, only when soundfile cannot read the file

            duration = float(librosa.get_duration(path=path))
            return duration, int(librosa.get_samplerate(path)), 1
        except Exception:
            raise AudioError(path, f"cannot read audio header ({_short(e)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "audio file is empty (0 samples)")
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


def count_decodable_frames(path: str | os.PathLike, block_frames: int = DECODE_BLOCK_FRAMES) -> tuple[int, int, int]:
    """Decode the whole file block by block; return ``(decoded_frames, header_frames, sample_rate_hz)``.

    A truncated FLAC keeps a valid header announcing the full length, so only decoding tells it
    apart: libsndfile either fails part way ("lost sync") or returns fewer frames than announced.
    One reused buffer keeps memory flat whatever the file's length. Raises :class:`AudioError`
    naming the file and how far decoding got when it fails.
    """
    import soundfile as sf  # heavy: soundfile

    path = os.fspath(path)
    _check_exists(path)
    decoded = 0
    try:
        with sf.SoundFile(path) as f:
            header_frames, rate = int(f.frames), int(f.samplerate)
            buffer = np.empty((block_frames, f.channels), dtype=np.float32)
            while True:
                n = len(f.read(out=buffer))
                decoded += n
                if n < block_frames:
                    break
    except Exception as e:
        where = f" after {decoded} frames" if decoded else ""
        raise AudioError(path, f"cannot decode audio{where} ({_short(e)}); truncated or corrupt?") from None
    return decoded, header_frames, rate


def load_audio(
    path: str | os.PathLike,
    offset: float = 0.0,
    duration: float | None = None,
    sample_rate: int = SAMPLE_RATE_HZ,
) -> np.ndarray:
    """Decode ``path`` (from ``offset`` seconds, for ``duration`` seconds) to mono float32.

    >>> wav = load_audio("../shared/data/ljspeech-32/audio/LJ001-0001.wav")   # doctest: +SKIP
    >>> wav.dtype, wav.ndim                                                 # doctest: +SKIP
    (dtype('float32'), 1)

    Raises :class:`AudioError` naming the file when it is missing, truncated, empty or undecodable.
    """
    path = os.fspath(path)
    _check_exists(path)
    try:
        samples, source_rate = _read_soundfile(path, offset, duration)
    except AudioError:
        raise
    except Exception as sf_error:
        try:
            samples, source_rate = _read_librosa(path, offset, duration)
        except Exception:
            raise AudioError(path, f"cannot decode audio ({_short(sf_error)})") from None
    if samples.size == 0:
        raise AudioError(path, "no audio samples" + (f" at offset {offset:.2f}s" if offset else " (empty file)"))
    if not np.all(np.isfinite(samples)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    return resample(samples, source_rate, sample_rate)


def write_flac(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE_HZ) -> None:
    """Write mono ``samples`` (float in [-1, 1]) as 16-bit FLAC, atomically: a killed writer leaves
    no half file behind. The one audio writer of asrtune (cut segments, packed windows, generated
    no-speech clips, synthetic speech)."""
    import soundfile as sf  # heavy: soundfile

    with atomic_open(path, "wb") as f:
        sf.write(f, np.clip(samples, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")


def resample(samples: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Band-limited resampling with torchaudio; a no-op when the rates match."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if source_rate == target_rate:
        return samples
    # heavy: torch, only to resample
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(samples), source_rate, target_rate)
    return out.numpy().astype(np.float32, copy=False)


def _read_soundfile(path: str, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf  # heavy: soundfile

    with sf.SoundFile(path) as f:
        rate = f.samplerate
        start = int(round(offset * rate))
        if f.frames > 0 and start >= f.frames and offset > 0:
            raise AudioError(path, f"offset {offset:.2f}s is past the end of the file ({f.frames / rate:.2f}s)")
        if start:
            f.seek(start)
        frames = -1 if duration is None else int(round(duration * rate))
        data = f.read(frames=frames, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def _read_librosa(path: str, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    import librosa  # heavy: librosa, only when soundfile cannot read the file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, rate = librosa.load(path, sr=None, mono=True, offset=offset, duration=duration)
    return data.astype(np.float32), int(rate)


def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "file is empty (0 bytes)")


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return text[:200]
