"""What both Whisper engines share: the decoder prompt, suppressed tokens, options checks."""

from __future__ import annotations

import os
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from asrtune.data.audio import SAMPLE_RATE_HZ
from asrtune.data.terms import check_term_length, load_terms
from asrtune.errors import ConfigError
from asrtune.models import whisper_spec
from asrtune.models.whisper_spec import MAX_TARGET_TOKENS, N_FRAMES

# Control tokens openai-whisper and faster-whisper never let the decoder emit mid-text.
CONTROL_TOKENS = ("<|transcribe|>", "<|translate|>", "<|startoftranscript|>", "<|startofprev|>", "<|startoflm|>", "<|nocaptions|>", "<|nospeech|>")


@dataclass(frozen=True)
class WhisperPrompt:
    """Decoder prefix for one model and options.

    >>> WhisperPrompt(prev=[], sot=[50257, 50362]).tokens()
    [50257, 50362]
    >>> WhisperPrompt(prev=[50360, 220], sot=[50257, 50362]).tokens()
    [50360, 220, 50257, 50362]
    """

    prev: list[int]  # <|startofprev|> + initial-prompt tokens, or empty
    sot: list[int]  # <|startoftranscript|> [<|lang|> <|transcribe|>] <|notimestamps|>

    def tokens(self) -> list[int]:
        return [*self.prev, *self.sot]

    def unprompted(self) -> "WhisperPrompt":
        """The same prefix without the ``<|startofprev|>`` prompt (the loop fallback's)."""
        return WhisperPrompt([], self.sot)


def is_multilingual(tokenizer, vocab_size: int) -> bool:
    return whisper_spec.is_multilingual(vocab_size)


def check_language_name(language: str) -> str:
    """Whisper's code for a language name or code (``"German"`` -> ``"de"``); ConfigError for one
    Whisper does not know. Needs no model: whether the model is multilingual is checked at load.

    >>> check_language_name("English"), check_language_name("DE")
    ('en', 'de')
    """
    # heavy: transformers
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    code = whisper_spec.language_code(language)
    if code not in LANGUAGES:
        raise ConfigError(f"--language {language}: not a Whisper language (use a code such as en, de, fr)")
    return code


def language_token(tokenizer, language: str | None, multilingual: bool) -> int | None:
    """Token id of ``<|xx|>`` for a multilingual model (English by default); None for English-only."""
    if not multilingual:
        if language is not None and whisper_spec.language_code(language) != "en":
            raise ConfigError(f"--language {language}: this is an English-only Whisper model; use a multilingual one")
        return None
    code = whisper_spec.language_code(language or "en")
    tid = tokenizer.convert_tokens_to_ids(f"<|{code}|>")
    if tid is None or tid == tokenizer.unk_token_id:
        raise ConfigError(f"--language {language}: not a Whisper language (use a code such as en, de, fr)")
    return int(tid)


def prompt_token_limit(max_target_tokens: int = MAX_TARGET_TOKENS) -> int:
    """How many prompt text tokens a decoder of ``max_target_tokens`` positions keeps: half the
    context less ``<|startofprev|>``, the other half being left to the prefix and the transcript
    (openai-whisper's and faster-whisper's rule; the OpenAI API keeps the prompt's last 224 tokens).

    >>> prompt_token_limit(448)
    223
    """
    return max(max_target_tokens // 2 - 1, 0)


def clip_prompt_tokens(tokens: Sequence[int], max_target_tokens: int = MAX_TARGET_TOKENS) -> list[int]:
    """The LAST :func:`prompt_token_limit` tokens of a prompt: the one rule for every Whisper prefix
    (``--prompt``, the server's ``prompt`` field, training prompts). The end of a prompt is kept
    because it is the text right before the audio, which is what the decoder continues from.

    >>> clip_prompt_tokens(list(range(1000)))[:3], len(clip_prompt_tokens(list(range(1000))))
    ([777, 778, 779], 223)
    >>> clip_prompt_tokens([5, 6], 448), clip_prompt_tokens([5, 6], 2)
    ([5, 6], [])
    """
    limit = prompt_token_limit(max_target_tokens)
    return list(tokens)[-limit:] if limit else []


def text_token_ids(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` as plain text: ``"<|endoftext|>"`` typed by a user is spelled with
    ordinary tokens, never turned into the control token (which would end or derail decoding).
    No length warning: a long text is clipped by the caller (:func:`clip_prompt_tokens`).
    With Whisper's tokenizer ``" <|endoftext|>"`` becomes `` <``, ``|``, ``end``, ... (1279, 91, 437, ...),
    not 50256."""
    return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True, verbose=False))


def build_prompt(tokenizer, vocab_size: int, language: str | None, prompt: str | None,
                 max_target_tokens: int = MAX_TARGET_TOKENS) -> WhisperPrompt:
    """The decoder prefix faster-whisper/openai-whisper use for transcription without timestamps;
    a prompt is encoded as plain text and clipped to its last :func:`prompt_token_limit` tokens."""
    ids = lambda t: int(tokenizer.convert_tokens_to_ids(t))  # noqa: E731
    sot = [ids("<|startoftranscript|>")]
    lang = language_token(tokenizer, language, is_multilingual(tokenizer, vocab_size))
    if lang is not None:
        sot += [lang, ids("<|transcribe|>")]
    sot.append(ids("<|notimestamps|>"))
    prev: list[int] = []
    text_ids = text_token_ids(tokenizer, " " + prompt.strip()) if prompt is not None and prompt.strip() else []
    kept = clip_prompt_tokens(text_ids, max_target_tokens)
    if kept:
        prev = [ids("<|startofprev|>"), *kept]
    return WhisperPrompt(prev, sot)


@contextmanager
def using_prefix(recognizer, prefix: WhisperPrompt) -> Iterator[None]:
    """Decode with ``prefix`` inside the block (a request's prompt, or none for the loop fallback);
    the recogniser's own prefix is put back after it."""
    saved, recognizer.prompt = recognizer.prompt, prefix
    try:
        yield
    finally:
        recognizer.prompt = saved


def timestamp_token(tokenizer, seconds: float) -> int:
    """Id of Whisper's ``<|seconds|>`` timestamp token (0.02 s grid) for this tokenizer's vocabulary;
    see :func:`asrtune.models.whisper_spec.timestamp_token_id`."""
    return whisper_spec.timestamp_token_id(int(tokenizer.convert_tokens_to_ids("<|notimestamps|>")), seconds)


def suppress_ids(tokenizer, generation_config) -> list[int]:
    """The checkpoint's suppress list plus the control tokens (as faster-whisper does)."""
    out = set(int(t) for t in (getattr(generation_config, "suppress_tokens", None) or []))
    for t in CONTROL_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(t)
        if tid is not None and tid != tokenizer.unk_token_id:
            out.add(int(tid))
    return sorted(out)


def load_terms_arg(terms) -> list[str] | None:
    """``terms`` as a list of strings: a list as given, or a path to a one-term-per-line file."""
    if terms is None:
        return None
    if isinstance(terms, (str, os.PathLike)):
        return load_terms(terms, "--bias-terms")
    for i, term in enumerate(terms):
        check_term_length(str(term), f"bias_terms[{i}]")
    return [str(t) for t in terms]


FEATURE_STYLES = ("hf", "faster-whisper")


def feature_style(style: str) -> str:
    """Check a feature style name. ``hf`` is the default everywhere: it is what asrtune trains
    on, and on segments cut from long recordings the faster-whisper padding made tiny.en stop a
    22.7 s segment 14 words early (long-form WER 4.43 % vs 2.63 %, benchmarks/bench_transcribe.py),
    while on short clips the two styles differ by a word or two."""
    if style not in FEATURE_STYLES:
        raise ConfigError(f"--features must be one of {', '.join(FEATURE_STYLES)}, got {style!r}")
    return style




def log_mel_batch(clips: list, n_mels: int, style: str = "hf", hf_extractor=None):
    """Log-mel features ``(batch, n_mels, 3000)`` float32 for clips of up to 30 s.

    ``hf``: transformers' WhisperFeatureExtractor, which zero-pads the *audio* to 30 s before the
    spectrogram; asrtune's Whisper training sees exactly these features. ``faster-whisper``: the
    spectrogram of the clip alone, zero-padded *after* normalisation, as openai-whisper's
    ``transcribe`` and faster-whisper do; use it to reproduce faster-whisper token for token. The
    two differ only in the padded frames, which can change a word on some clips.
    """
    if style == "hf":
        if hf_extractor is None:
            from transformers import WhisperFeatureExtractor  # heavy: transformers, only for features="hf"

            hf_extractor = WhisperFeatureExtractor(feature_size=n_mels)
        return hf_extractor(clips, sampling_rate=SAMPLE_RATE_HZ, return_tensors="np").input_features.astype(np.float32)
    if style == "faster-whisper":
        # heavy: faster-whisper, only for features="faster-whisper"
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.feature_extractor import FeatureExtractor

        extractor = FeatureExtractor(feature_size=n_mels)
        out = []
        for clip in clips:
            mel = extractor(clip)  # pads 160 samples; its last frame is dropped, as faster-whisper does
            out.append(pad_or_trim(mel[:, : min(N_FRAMES, mel.shape[-1] - 1)]))
        return np.stack(out).astype(np.float32)
    raise ConfigError(f"feature style must be one of {', '.join(FEATURE_STYLES)}, got {style!r}")


# --- no-speech detection ------------------------------------------------------------------------

NO_SPEECH_THRESHOLD = 0.6  # probability of <|nospeech|> above which a segment may be silence
LOG_PROB_THRESHOLD = -1.0  # nats per token: below this the decoded text is not trusted
NO_SPEECH_TOKENS = ("<|nospeech|>", "<|nocaptions|>")  # newer / older tokenizers' name for one token


def no_speech_token(tokenizer) -> int | None:
    """Id of the "no speech" token, or None for a vocabulary without one."""
    for name in NO_SPEECH_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(name)
        if tid is not None and tid != tokenizer.unk_token_id:
            return int(tid)
    return None


def is_no_speech(no_speech_prob: float | None, avg_logprob: float | None,
                 no_speech_threshold: float = NO_SPEECH_THRESHOLD, log_prob_threshold: float = LOG_PROB_THRESHOLD) -> bool:
    """faster-whisper's rule: silence when the model both expects no speech (``no_speech_prob >
    no_speech_threshold``) and is unsure of what it decoded (``avg_logprob < log_prob_threshold``).
    A confident transcript survives a high no-speech probability (quiet but real speech).

    >>> is_no_speech(0.9, -1.4), is_no_speech(0.9, -0.3), is_no_speech(0.2, -1.4)
    (True, False, False)
    """
    if no_speech_prob is None or avg_logprob is None:
        return False
    return no_speech_prob > no_speech_threshold and avg_logprob < log_prob_threshold


def check_thresholds(no_speech_threshold: float, log_prob_threshold: float,
                     compression_ratio_threshold: float = 0.0) -> None:
    """ConfigError for a threshold outside its range."""
    if not 0.0 <= no_speech_threshold <= 1.0:
        raise ConfigError(f"--no-speech-threshold must be a probability between 0 and 1, got {no_speech_threshold}")
    if not log_prob_threshold <= 0.0:
        raise ConfigError(f"--log-prob-threshold must be <= 0 (a mean log-probability in nats), got {log_prob_threshold}")
    if not (compression_ratio_threshold == 0.0 or compression_ratio_threshold >= 1.0):
        raise ConfigError(f"--compression-ratio-threshold must be 0 (off) or >= 1, got {compression_ratio_threshold}")


# --- temperature fallback -----------------------------------------------------------------------

#: gzip compression ratio above which a text is a repetition loop ("I want all the people, I want
#: all the people, ...": greedy decoding stuck on one phrase until the token limit); openai-whisper's value
COMPRESSION_RATIO_THRESHOLD = 2.4
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)  # openai-whisper's and faster-whisper's schedule after 0
BEST_OF = 5  # samples per clip and temperature; the one with the highest mean log-probability is kept
FALLBACK_SEED = 0  # sampling seed: the same input gives the same transcript on every run


def compression_ratio(text: str) -> float:
    """How well ``text`` compresses (bytes / zlib bytes): about 1-2 for speech, far more for a loop.

    >>> round(compression_ratio("He hoped there would be stew for dinner."), 2)
    0.83
    >>> compression_ratio("I want all the people, " * 20) > COMPRESSION_RATIO_THRESHOLD
    True
    """
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def needs_fallback(text: str, threshold: float) -> bool:
    """Whether a decoded text is a repetition loop (``threshold`` 0 turns the check off)."""
    return threshold > 0 and compression_ratio(text) > threshold


def fallback_schedule(prompted: bool, temperatures: Sequence[float] = FALLBACK_TEMPERATURES) -> tuple[float, ...]:
    """Temperatures a looping transcript is decoded again at. With a prompt, the first retry is
    greedy without it: a prompt the decoder copies ("word word word ...") is the likeliest cause
    of a loop, and dropping it costs one greedy pass instead of best-of-5 sampling at 5
    temperatures (openai-whisper drops the prompt after a fallback past 0.5, for the next window).

    >>> fallback_schedule(False), fallback_schedule(True)
    ((0.2, 0.4, 0.6, 0.8, 1.0), (0.0, 0.2, 0.4, 0.6, 0.8, 1.0))
    """
    return ((0.0,) if prompted else ()) + tuple(temperatures)


def decode_with_fallback(hypotheses: list, sample: Callable[[list[int], float], list], threshold: float,
                         temperatures: Sequence[float] = FALLBACK_TEMPERATURES) -> list:
    """Replace looping hypotheses with sampled ones, at rising temperatures (openai-whisper's rule).

    ``sample(indices, temperature)`` decodes those clips of the batch again, without any prompt,
    and returns one hypothesis each: greedy (or beam) at temperature 0, else the best of
    :data:`BEST_OF` samples. A clip keeps its first non-looping hypothesis; one that loops at
    every temperature keeps the last. Unlike openai-whisper and faster-whisper, a low mean
    log-probability alone does not trigger sampling: on accented or noisy speech many clips are
    merely hard, and a deterministic transcript serves them better than a sampled one.
    """
    todo = [i for i, h in enumerate(hypotheses) if needs_fallback(h.text, threshold)]
    for temperature in temperatures:
        if not todo:
            break
        for i, hyp in zip(todo, sample(todo, temperature)):
            hypotheses[i] = hyp
        todo = [i for i in todo if needs_fallback(hypotheses[i].text, threshold)]
    return hypotheses


def best_of(candidates: list, per_clip: int) -> list:
    """The candidate with the highest mean log-probability in each run of ``per_clip``."""
    groups = [candidates[i : i + per_clip] for i in range(0, len(candidates), per_clip)]
    return [max(group, key=lambda h: h.avg_logprob if h.avg_logprob is not None else -np.inf) for group in groups]


def content_frames(clip: np.ndarray) -> int:
    """Log-mel frames (10 ms) holding the clip's audio, the rest of the 30 s window being padding."""
    return min(N_FRAMES, int(np.ceil(len(clip) / 160)))
