"""Whisper through whisper.cpp (``pywhispercpp``, which bundles it): the ``ggml`` export's runtime.

whisper.cpp computes its own log-mel spectrogram (from the filters in the model file) and
decodes one clip per call. ``decode`` asks it for one segment without timestamps (the
``<|notimestamps|>`` prefix the other engines use), greedy, suppressing the model's suppress list
as the other engines do (:func:`suppression`). A clip whose text is a repetition
loop is decoded again by sampling, best of :data:`~asrtune.inference.whisper_common.BEST_OF`, at
rising temperatures: asrtune's rule (``decode_with_fallback``), not whisper.cpp's, which would
also re-sample every clip with a low mean log-probability. :meth:`WhisperCppRecognizer.segments` runs whisper.cpp's own
long-form transcription with its timestamps.

Flash attention is off unless asked for: whisper.cpp's flash-attention kernel computes attention in
float16, which changes more clips' words against every other runtime (measured in the export
parity table); without it, whisper.cpp's float16 weights give the Hugging Face model's WER. It is
faster, so it is an option (``flash_attention``).
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
# What whisper.cpp's ``suppress_nst`` switch suppresses: every vocabulary entry equal to one of these
# symbols, alone or after a space, and " -" and " '" (whisper.cpp's port of openai-whisper's
# non-speech list; unlike openai-whisper it skips the partial UTF-8 tokens of the music symbols).
WHISPER_CPP_NON_SPEECH = (
    '"', "#", "(", ")", "*", "+", "/", ":", ";", "<", "=", ">", "@", "[", "\\", "]", "^", "_", "`", "{", "|", "}", "~",
    "「", "」", "『", "』", "<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", '("', "((", "))", "(((", ")))",
    "[[", "]]", "{{", "}}", "♪♪", "♪♪♪", "♩", "♪", "♫", "♬", "♭", "♮", "♯",
)
WHISPER_CPP_NON_SPEECH_EXTRA = (" -", " '")


def suppression(suppress_tokens: Sequence[int] | None, vocabulary: Sequence[bytes]) -> dict:
    r"""whisper.cpp parameters that suppress exactly ``suppress_tokens`` (a checkpoint's
    ``generation_config.suppress_tokens``; the control tokens among them whisper.cpp suppresses
    itself), given the model's text vocabulary (token id -> bytes, end-of-text excluded).

    whisper.cpp suppresses by rule (``suppress_nst``) or by a regular expression over each token's
    text (``suppress_regex``), tried on every token at every step: the whole list as an expression
    made tiny.en decode ~1.5x slower, so the rule covers what it can and the expression lists the
    rest (two partial UTF-8 tokens of the music symbols, for every Whisper checkpoint's list; no
    measurable cost). A list that
    leaves out some of the rule's tokens is given whole as an expression. None (a bare
    ``ggml-model.bin``, whose list is unknown): whisper.cpp's rule alone.

    >>> vocab = [b"a", b'"', b' "', b" -", b" '", b"\xe2\x99"]
    >>> suppression([1, 2, 3, 4, 5], vocab)
    {'suppress_nst': True, 'suppress_regex': '(?:\\xe2\\x99)'}
    >>> suppression([1, 2, 3, 4], vocab)
    {'suppress_nst': True, 'suppress_regex': ''}
    >>> suppression([1], vocab)
    {'suppress_nst': False, 'suppress_regex': '(?:\\x22)'}
    """
    if suppress_tokens is None:
        return {"suppress_nst": True, "suppress_regex": ""}
    ids = {text: i for i, text in enumerate(vocabulary)}
    rule = {ids[t] for symbol in WHISPER_CPP_NON_SPEECH for t in (symbol.encode(), b" " + symbol.encode()) if t in ids}
    rule |= {ids[t.encode()] for t in WHISPER_CPP_NON_SPEECH_EXTRA if t.encode() in ids}
    wanted = {int(t) for t in suppress_tokens if 0 <= int(t) < len(vocabulary)}
    use_rule = rule <= wanted
    rest = sorted(wanted - rule if use_rule else wanted)
    # std::regex (ECMAScript) matches a token's raw bytes: every byte as a \xhh escape
    alternatives = ["".join(f"\\x{byte:02x}" for byte in vocabulary[i]) for i in rest]
    return {"suppress_nst": use_rule, "suppress_regex": f"(?:{'|'.join(alternatives)})" if alternatives else ""}


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
                 compression_ratio_threshold: float = COMPRESSION_RATIO_THRESHOLD, flash_attention: bool = False,
                 suppress_tokens: Sequence[int] | None = None):
        # optional extra [export], checked by check_packages before the engine loads
        import _pywhispercpp
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
        eot = _pywhispercpp.whisper_token_eot(self.model._ctx)
        vocabulary = [_pywhispercpp.whisper_token_to_bytes(self.model._ctx, i) for i in range(eot)]
        self.suppress_params = suppression(suppress_tokens, vocabulary)  # passed with every transcribe call
        self.suppression = "the model's suppress_tokens" if suppress_tokens is not None else "whisper.cpp's non-speech rule"

    def describe(self) -> dict:
        d = super().describe()
        d.update(beam_size=1, language=self.language, prompt=self.prompt_text, threads=self.threads,
                 no_speech_threshold=self.no_speech_threshold, log_prob_threshold=self.log_prob_threshold,
                 compression_ratio_threshold=self.compression_ratio_threshold, flash_attention=self.flash_attention,
                 suppression=self.suppression)
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
        segments = self.model.transcribe(_padded(clip), no_timestamps=True, single_segment=True, temperature=temperature,
                                         **self.suppress_params)
        return Hypothesis(" ".join(s.text.strip() for s in segments).strip(), temperature=temperature)

    def segments(self, audio: np.ndarray) -> list[TimedText]:
        """whisper.cpp's own long-form transcription of ``audio`` (any length), with its segment times."""
        audio = np.asarray(audio, dtype=np.float32)
        found = self.model.transcribe(_padded(audio), no_timestamps=False, single_segment=False, temperature=0.0,
                                      **self.suppress_params)
        return [TimedText(s.t0 / CENTISECONDS, s.t1 / CENTISECONDS, s.text.strip()) for s in found]


def _padded(clip: np.ndarray) -> np.ndarray:
    short = int(MIN_CLIP_S * SAMPLE_RATE_HZ) - len(clip)
    return np.ascontiguousarray(np.pad(clip, (0, short)) if short > 0 else clip, dtype=np.float32)
