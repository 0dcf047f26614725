"""Text-only domain adaptation: speak domain sentences in many voices, write audio + manifest.

Users often have domain text (glossaries, letters, term lists) but little transcribed audio.
Each sentence is spoken ``variants_per_sentence`` times by eSpeak NG, each time with a
different voice (cycled so every voice gets an even share), speaking rate and pitch, then a
random leading/trailing pause and light noise at a random signal-to-noise ratio are added, so
the fine-tuned decoder sees the words in varied acoustics rather than one fixed rendering.
Output is 16 kHz mono FLAC (resampled with libsoxr) under ``DIR/audio/`` and ``DIR/manifest.jsonl`` with relative paths::

    {"audio_filepath": "audio/00012_2.flac", "text": "Start apixaban five milligrams twice daily.",
     "duration": 2.91, "speaker": "en-us+f3", "voice": "en-us+f3", "rate": 160, "pitch": 62,
     "snr_db": 27.4, "sentence_id": 12}

With ``pack_seconds`` (``--pack-seconds 25``), several sentences of one voice are joined into
one clip of up to that length (transcript = the sentences joined by spaces, ``sentence_ids``
lists them). Whisper pads every input to 30 s, so packed clips make a frozen-encoder cache
several times cheaper to build, and long-form dictation is what clinicians produce anyway.

The same seed gives the same voices, rates, pitches, pauses and noise levels; eSpeak itself
varies by a few samples from call to call, so files are not bit-identical across runs.
eSpeak speaks a sentence in ~10 ms, so one process suffices for a few thousand utterances;
resampling and FLAC encoding dominate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from asrtune.data.audio import SAMPLE_RATE_HZ, write_flac
from asrtune.data.manifest import Utterance, write_manifest
from asrtune.errors import ConfigError
from asrtune.extras import needs_extra
from asrtune.fileio import check_folder_output
from asrtune.synth.espeak import MAX_PITCH, MAX_RATE, MIN_PITCH, MIN_RATE, get_engine
from asrtune.synth.text import speakable

DEFAULT_VOICES = ("en-us", "en-us+f3", "en-gb+m3", "en-gb-x-rp+f2", "en-029+m1")
DEFAULT_RATES = (145, 165, 185)  # words per minute; eSpeak's default is 175
DEFAULT_PITCHES = (35, 50, 65)  # eSpeak 0..100
DEFAULT_SNR_DB = (20.0, 35.0)  # light background noise: audible but never masking
PAUSE_S = (0.05, 0.35)  # seconds of silence added before and after (eSpeak's own are very short)
PEAK_LEVEL = (0.3, 0.9)  # random output gain, as peak amplitude


@dataclass
class SynthConfig:
    """How to speak a text corpus.

    >>> cfg = SynthConfig(voices=["en-us", "en-gb+f3"], rates=[160], variants_per_sentence=2)
    >>> cfg.noise_snr_db
    (20.0, 35.0)
    """

    voices: Sequence[str] = DEFAULT_VOICES
    rates: Sequence[int] = DEFAULT_RATES
    pitches: Sequence[int] = DEFAULT_PITCHES
    variants_per_sentence: int = 3
    #: (low, high) signal-to-noise ratio in dB; None for clean audio.
    noise_snr_db: tuple[float, float] | None = DEFAULT_SNR_DB
    seed: int = 0
    #: Appended to file names and stored per utterance, so two syntheses can share a folder.
    prefix: str = ""
    #: Pack several sentences (same voice) into clips of up to this many seconds; None = one
    #: sentence per file. Whisper pads every input to 30 s, so with a frozen encoder, clips of
    #: ~25 s cost the same encoder time as one sentence: packing makes encoder caching ~5x cheaper.
    pack_seconds: float | None = None
    #: Clips hold 1..this many sentences (drawn at random, so clip lengths vary).
    pack_max_sentences: int = 8
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the option when a value is impossible."""
        if not self.voices:
            raise ConfigError("--voices: need at least one voice")
        if not self.rates:
            raise ConfigError("--rates: need at least one rate")
        if not self.pitches:
            raise ConfigError("--pitches: need at least one pitch")
        for rate in self.rates:
            if not MIN_RATE <= rate <= MAX_RATE:
                raise ConfigError(f"--rates: {rate} words/minute is outside eSpeak's {MIN_RATE}..{MAX_RATE}")
        for pitch in self.pitches:
            if not MIN_PITCH <= pitch <= MAX_PITCH:
                raise ConfigError(f"--pitches: {pitch} is outside eSpeak's {MIN_PITCH}..{MAX_PITCH}")
        if self.variants_per_sentence < 1:
            raise ConfigError(f"--variants-per-sentence must be >= 1, got {self.variants_per_sentence}")
        if self.pack_seconds is not None and not 0 < self.pack_seconds <= 30:
            raise ConfigError(f"--pack-seconds must be in (0, 30] (Whisper's window), got {self.pack_seconds}")
        if self.pack_max_sentences < 1:
            raise ConfigError(f"--pack-max-sentences must be >= 1, got {self.pack_max_sentences}")
        if self.noise_snr_db is not None:
            low, high = self.noise_snr_db
            if low > high:
                raise ConfigError(f"--noise-snr-db: low {low} is above high {high}")
        with needs_extra("synth", "speech synthesis", "soxr and scipy"):  # before anything is written
            import scipy.signal  # noqa: F401
            import soxr  # noqa: F401
        engine = get_engine()
        for voice in self.voices:
            engine.check_voice(voice)


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add pink-ish noise (white noise through a one-pole low-pass) at ``snr_db`` over the speech power."""
    from scipy.signal import lfilter  # the [synth] extra, checked by SynthConfig.check

    white = rng.standard_normal(len(wav))
    # A one-pole low-pass (y[n] = 0.9 y[n-1] + x[n]) tilts the spectrum toward low
    # frequencies, like room and fan noise, which is gentler on speech than white hiss.
    noise = lfilter([1.0], [1.0, -0.9], white).astype(np.float32)
    speech_power = float(np.mean(wav[np.abs(wav) > 1e-4] ** 2)) if np.any(np.abs(wav) > 1e-4) else 0.0
    noise_power = float(np.mean(noise**2)) or 1.0
    scale = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return (wav + scale * noise).astype(np.float32)


def _to_16k(wav: np.ndarray, source_rate: int) -> np.ndarray:
    """Resample eSpeak's 22 050 Hz output to 16 kHz with libsoxr.

    Why not asrtune.data.audio.resample (torchaudio): for the 441/320 ratio it rebuilds a
    large sinc kernel on every call, ~10x slower than soxr's polyphase filter per sentence.
    """
    import soxr  # the [synth] extra, checked by SynthConfig.check

    return soxr.resample(wav, source_rate, SAMPLE_RATE_HZ).astype(np.float32, copy=False)


def render_speech(text: str, voice: str, rate: int, pitch: int, rng: np.random.Generator) -> np.ndarray:
    """Speak one sentence at 16 kHz with a random pause before and after (no gain, no noise)."""
    engine = get_engine()
    wav = engine.synthesize(speakable(text), voice=voice, rate=rate, pitch=pitch)
    if wav.size == 0:
        raise ConfigError(f"eSpeak produced no audio for {text[:60]!r} with voice {voice!r}")
    wav = _to_16k(wav, engine.sample_rate)
    before, after = (int(rng.uniform(*PAUSE_S) * SAMPLE_RATE_HZ) for _ in range(2))
    return np.concatenate([np.zeros(before, np.float32), wav, np.zeros(after, np.float32)])


def finish(wav: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """Random gain, then background noise at ``snr_db``, clipped to [-1, 1]."""
    peak = float(np.max(np.abs(wav))) or 1.0
    wav = wav * (rng.uniform(*PEAK_LEVEL) / peak)
    if snr_db is not None:
        wav = add_noise(wav, snr_db, rng)
    return np.clip(wav, -1.0, 1.0).astype(np.float32)


@dataclass
class Rendering:
    """One planned spoken sentence: which sentence, which of its variants, and how it is spoken."""

    sentence: int
    variant: int
    voice: str
    rate: int
    pitch: int
    snr_db: float | None


def plan(n_sentences: int, config: SynthConfig) -> list[Rendering]:
    """Every rendering to make, deterministic in ``config.seed``.

    Voices are cycled so each gets an even share and one sentence's variants use different voices.
    """
    rng = np.random.default_rng(config.seed)
    voices = list(config.voices)
    jobs = []
    for s in range(n_sentences):
        for v in range(config.variants_per_sentence):
            voice = voices[(s * config.variants_per_sentence + v) % len(voices)]
            jobs.append(Rendering(s, v, voice, *_draw(rng, config)))
    return jobs


def _draw(rng: np.random.Generator, config: SynthConfig) -> tuple[int, int, float | None]:
    rate = int(rng.choice(list(config.rates)))
    pitch = int(rng.choice(list(config.pitches)))
    snr = None if config.noise_snr_db is None else round(float(rng.uniform(*config.noise_snr_db)), 1)
    return rate, pitch, snr


def _single_clips(sentences: Sequence[str], config: SynthConfig, audio_dir: Path, bar) -> Iterator[Utterance]:
    for job in plan(len(sentences), config):
        # One generator per utterance: the same seed renders the same file whatever else changes.
        rng = np.random.default_rng([config.seed, job.sentence, job.variant])
        wav = finish(render_speech(sentences[job.sentence], job.voice, job.rate, job.pitch, rng), job.snr_db, rng)
        path = audio_dir / f"{config.prefix}{job.sentence:05d}_{job.variant}.flac"
        write_flac(path, wav)
        bar.update(1)
        extra = {"speaker": job.voice, "voice": job.voice, "rate": job.rate, "pitch": job.pitch,
                 "snr_db": job.snr_db, "sentence_id": job.sentence}  # fmt: skip
        yield Utterance(str(path.resolve()), sentences[job.sentence], len(wav) / SAMPLE_RATE_HZ, extra={**extra, **config.extra})


def _packed_clips(sentences: Sequence[str], config: SynthConfig, audio_dir: Path, bar) -> Iterator[Utterance]:
    """Several sentences of one voice per clip, up to ``pack_seconds`` (see :class:`SynthConfig`)."""
    rng = np.random.default_rng(config.seed)
    jobs = plan(len(sentences), config)
    queues: dict[str, list[int]] = {voice: [] for voice in config.voices}
    for i in rng.permutation(len(jobs)):
        queues[jobs[i].voice].append(jobs[i].sentence)
    max_samples = int(config.pack_seconds * SAMPLE_RATE_HZ)
    clip_no = 0
    for voice, queue in queues.items():
        i = 0
        while i < len(queue):
            target = int(rng.integers(1, config.pack_max_sentences + 1))
            rate, pitch, snr = _draw(rng, config)
            clip_rng = np.random.default_rng([config.seed, 1_000_000 + clip_no])
            pieces: list[np.ndarray] = []
            ids: list[int] = []
            while i < len(queue) and len(ids) < target:
                piece = render_speech(sentences[queue[i]], voice, rate, pitch, clip_rng)
                if ids and sum(map(len, pieces)) + len(piece) > max_samples:
                    break  # the sentence opens the next clip
                pieces.append(piece)
                ids.append(queue[i])
                i += 1
                bar.update(1)
            wav = finish(np.concatenate(pieces), snr, clip_rng)
            path = audio_dir / f"{config.prefix}clip{clip_no:05d}.flac"
            write_flac(path, wav)
            clip_no += 1
            text = " ".join(sentences[s] for s in ids)
            extra = {"speaker": voice, "voice": voice, "rate": rate, "pitch": pitch, "snr_db": snr, "sentence_ids": ids}
            yield Utterance(str(path.resolve()), text, len(wav) / SAMPLE_RATE_HZ, extra={**extra, **config.extra})


def synthesize_corpus(
    sentences: Sequence[str],
    out_dir: str | os.PathLike,
    config: SynthConfig | None = None,
    progress: bool = True,
) -> list[Utterance]:
    """Speak ``sentences`` into ``out_dir`` (audio/*.flac + manifest.jsonl); return the utterances.

    >>> import tempfile
    >>> utts = synthesize_corpus(["Start apixaban today."], tempfile.mkdtemp(), progress=False)
    >>> len(utts), utts[0].speaker, utts[0].text
    (3, 'en-us', 'Start apixaban today.')
    """
    config = config or SynthConfig()
    config.check()
    sentences = [s.strip() for s in sentences]
    for i, s in enumerate(sentences, start=1):
        if not s:
            raise ConfigError(f"sentence {i} is empty")
    out_dir = Path(out_dir)
    check_folder_output(out_dir, "--out")
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    total = len(sentences) * config.variants_per_sentence
    # disable=None: no bar when stderr is not a terminal
    with tqdm(total=total, desc="synth", unit="sentence", disable=None if progress else True) as bar:
        clips = _packed_clips if config.pack_seconds else _single_clips
        utterances = list(clips(sentences, config, audio_dir, bar))
    write_manifest(out_dir / "manifest.jsonl", utterances)
    return utterances
