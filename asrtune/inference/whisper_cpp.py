"""Whisper through whisper.cpp (``pywhispercpp``, which bundles it): the ``ggml`` export's runtime.

whisper.cpp computes its own log-mel spectrogram (from the filters in the model file) and
decodes one clip per call. ``decode`` asks it for one segment without timestamps (the
``<|notimestamps|>`` prefix the other engines use), greedy. A clip whose text is a repetition
loop is decoded again by sampling, best of :data:`~asrtune.inference.whisper_common.BEST_OF`, at
rising temperatures: asrtune's rule (``decode_with_fallback``), not whisper.cpp's, which would
also re-sample every clip with a low mean log-probability. :meth:`WhisperCppRecognizer.segments` runs whisper.cpp's own
long-form transcription with its timestamps.

Flash attention is off unless asked for: whisper.cpp's flash-attention kernel computes attention in
float16, which changes the words of a few clips in a hundred against every other runtime (measured
in the export parity table); without it, whisper.cpp's float16 weights give the Hugging Face
model's words on all but a rare clip. It is faster, so it is an option (``flash_attention``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.errors import AsrtuneError
from asrtune.inference.base import Hypothesis, Recognizer, check_clips
from asrtune.inference.whisper_common import (
    BEST_OF, COMPRESSION_RATIO_THRESHOLD, FALLBACK_TEMPERATURES, LOG_PROB_THRESHOLD, NO_SPEECH_THRESHOLD, decode_with_fallback,
)
from asrtune.models.whisper_spec import language_code

MIN_CLIP_S = 1.0  # whisper.cpp refuses shorter input; shorter clips are zero-padded to it
CENTISECONDS = 100.0  # whisper.cpp segment times are in 10 ms units


@dataclass(frozen=True)
class TimedText:
    """One whisper.cpp segment, in seconds from the start of the audio."""

    start: float
    end: float
    text: str


class WhisperCppRecognizer(Recognizer):
    """whisper.cpp recognizer over a ``ggml-model.bin``.

    >>> rec = WhisperCppRecognizer(Path("exports/acc-ggml/ggml-model.bin"), name="acc", source="ggml")  # doctest: +SKIP
    """

    engine = "whispercpp"
    family = "whisper"

    def __init__(self, model_file: Path, *, name: str, source: str, prompt: str | None = None,
                 language: str | None = None, threads: int | None = None,
                 no_speech_threshold: float = NO_SPEECH_THRESHOLD, log_prob_threshold: float = LOG_PROB_THRESHOLD,
                 compression_ratio_threshold: float = COMPRESSION_RATIO_THRESHOLD, flash_attention: bool = False):
        # optional extra [export], checked by check_packages before the engine loads
        from pywhispercpp.model import Model

        self.model_file, self.name, self.source = Path(model_file), name, source
        self.language, self.prompt_text = language, prompt
        self.no_speech_threshold, self.log_prob_threshold = no_speech_threshold, log_prob_threshold
        self.compression_ratio_threshold, self.flash_attention = compression_ratio_threshold, flash_attention
        self.threads = threads or min(os.cpu_count() or 1, 8)
        params = dict(
            n_threads=self.threads, print_progress=False, print_realtime=False, print_timestamps=False,
            language=language_code(language) if language else "en", initial_prompt=prompt or "", no_context=True, suppress_blank=True,
            temperature=0.0, temperature_inc=0.0, greedy={"best_of": BEST_OF},  # whisper.cpp's own fallback off
            logprob_thold=log_prob_threshold, no_speech_thold=no_speech_threshold,
        )
        try:
            self.model = Model(str(self.model_file), redirect_whispercpp_logs_to=None,
                               context_params={"flash_attn": flash_attention}, **params)
        except Exception as e:  # pywhispercpp raises RuntimeError or its own types for a bad file
            raise AsrtuneError(f"{self.model_file}: whisper.cpp cannot load this model ({e})") from None
        if getattr(self.model, "_ctx", None) is None:
            raise AsrtuneError(f"{self.model_file}: whisper.cpp cannot load this model")

    def describe(self) -> dict:
        d = super().describe()
        d.update(beam_size=1, language=self.language, prompt=self.prompt_text, threads=self.threads,
                 no_speech_threshold=self.no_speech_threshold, log_prob_threshold=self.log_prob_threshold,
                 compression_ratio_threshold=self.compression_ratio_threshold, flash_attention=self.flash_attention)
        return d

    def decode(self, audios: Sequence[np.ndarray], word_timestamps: bool = False) -> list[Hypothesis]:
        if word_timestamps:
            raise AsrtuneError("the whispercpp engine has no word timestamps in asrtune; use --engine hf or ct2 for them")
        clips = check_clips(audios)
        hyps = [self._decode_one(clip, 0.0) for clip in clips]

        def sample(indices: list[int], temperature: float) -> list[Hypothesis]:
            return [self._decode_one(clips[i], temperature) for i in indices]

        return decode_with_fallback(hyps, sample, self.compression_ratio_threshold, FALLBACK_TEMPERATURES)

    def _decode_one(self, clip: np.ndarray, temperature: float) -> Hypothesis:
        segments = self.model.transcribe(_padded(clip), no_timestamps=True, single_segment=True, temperature=temperature)
        return Hypothesis(" ".join(s.text.strip() for s in segments).strip(), temperature=temperature)

    def segments(self, audio: np.ndarray) -> list[TimedText]:
        """whisper.cpp's own long-form transcription of ``audio`` (any length), with its segment times."""
        audio = np.asarray(audio, dtype=np.float32)
        found = self.model.transcribe(_padded(audio), no_timestamps=False, single_segment=False, temperature=0.0)
        return [TimedText(s.t0 / CENTISECONDS, s.t1 / CENTISECONDS, s.text.strip()) for s in found]


def _padded(clip: np.ndarray) -> np.ndarray:
    short = int(MIN_CLIP_S * SAMPLE_RATE_HZ) - len(clip)
    return np.ascontiguousarray(np.pad(clip, (0, short)) if short > 0 else clip, dtype=np.float32)
