"""No-speech training clips: silence, noise and mains hum, so a tuned Whisper keeps saying "no speech".

Fine-tuned Whisper models invent text on silence once every training example holds speech.
``--no-speech-fraction F`` adds ``F`` x (first manifest's size) generated clips whose target is
Whisper's no-speech token (see ``targets.py``). The clips are generated rather than cut from
the training audio's pauses: read-speech corpora (speechocean762, LibriSpeech) have pauses far
shorter than a second, and generated clips cover the sounds that trigger hallucinations
(digital silence, hiss, hum) at controlled levels.

Each clip is a pure function of (seed, index), written once as FLAC under the asrtune cache
(``no-speech/seed-<seed>/``): its path, size and mtime stay the same across runs, so the
encoder-output cache encodes it once like any other utterance.

>>> clip = no_speech_clip(seed=0, index=3)
>>> clip.kind in KINDS, MIN_SECONDS <= clip.duration <= MAX_SECONDS, clip.samples.dtype
(True, True, dtype('float32'))
>>> bool((no_speech_clip(0, 3).samples == clip.samples).all())
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ, write_flac
from asrtune.data.manifest import Utterance

KINDS = ("silence", "white", "pink", "hum-50", "hum-60")
MIN_SECONDS, MAX_SECONDS = 1.0, 8.0  # clip durations, uniform in between
MIN_LEVEL_DBFS, MAX_LEVEL_DBFS = -70.0, -35.0  # RMS level of the noise: from near-digital silence to audible hiss
HUM_HARMONIC_DECAY = 0.5  # each hum harmonic at half the amplitude of the one before (transformer buzz)
HUM_HARMONICS = 4
NO_SPEECH_FIELD = "no_speech"  # Utterance.extra key marking a generated clip


@dataclass(frozen=True)
class NoSpeechClip:
    kind: str
    level_dbfs: float
    samples: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


def no_speech_clip(seed: int, index: int) -> NoSpeechClip:
    """Clip ``index`` of the ``seed``'s series: a kind, a level and a duration drawn from the seed."""
    rng = np.random.default_rng([seed, index, 0x5EED])
    kind = KINDS[index % len(KINDS)]  # every kind equally often
    n = int(rng.uniform(MIN_SECONDS, MAX_SECONDS) * SAMPLE_RATE_HZ)
    level_dbfs = float(rng.uniform(MIN_LEVEL_DBFS, MAX_LEVEL_DBFS))
    if kind == "silence":
        wave = rng.standard_normal(n) * 1e-5  # dither, not exact zeros: real "silence" is never digital zero
    elif kind == "white":
        wave = rng.standard_normal(n)
    elif kind == "pink":
        wave = _pink(rng, n)
    else:
        wave = _hum(rng, n, float(kind.split("-")[1]))
    if kind != "silence":
        wave = wave / (np.sqrt(np.mean(wave**2)) + 1e-12) * 10 ** (level_dbfs / 20)
    return NoSpeechClip(kind, level_dbfs, np.clip(wave, -1, 1).astype(np.float32))


def no_speech_count(fraction: float, n_utterances: int) -> int:
    """Clips to add for ``fraction`` of ``n_utterances``: at least one when the fraction is positive.

    >>> no_speech_count(0.05, 1200), no_speech_count(0.05, 8), no_speech_count(0.0, 8)
    (60, 1, 0)
    """
    if fraction <= 0:
        return 0
    return max(1, int(round(fraction * n_utterances)))


def no_speech_utterances(count: int, seed: int, folder: str | Path) -> list[Utterance]:
    """``count`` clips as utterances with an empty text, written under ``folder/seed-<seed>/`` once."""
    out = []
    root = Path(folder) / f"seed-{seed}"
    for index in range(count):
        clip = no_speech_clip(seed, index)
        path = root / f"{index:05d}-{clip.kind}.flac"
        if not path.exists():  # keep the file (and its mtime): the encoder cache keys on it
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flac(path, clip.samples)
        out.append(Utterance(str(path), "", clip.duration, extra={NO_SPEECH_FIELD: clip.kind}))
    return out


def is_no_speech_clip(utt: Utterance) -> bool:
    return bool(utt.extra.get(NO_SPEECH_FIELD))


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def _hum(rng: np.random.Generator, n: int, mains_hz: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE_HZ
    wave = sum(HUM_HARMONIC_DECAY**k * np.sin(2 * math.pi * mains_hz * (k + 1) * t + rng.uniform(0, 2 * math.pi))
               for k in range(HUM_HARMONICS))
    return wave + 0.05 * rng.standard_normal(n)  # a little hiss under the buzz
