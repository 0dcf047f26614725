"""Whisper through CTranslate2 (the engine inside faster-whisper): int8 on CPU, batched.

Runs ``ctranslate2.models.Whisper`` directly on a batch of 30 s log-mel windows with the same
prompt and suppressed tokens as faster-whisper, so with ``features="faster-whisper"`` (the default for released checkpoints) its
greedy transcripts are faster-whisper's token for token, at a batch per call instead of one clip.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import ctranslate2
import numpy as np
from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperTokenizer

from asrtune.alignment.ct2 import align_tokens, check_alignment_heads
from asrtune.errors import AsrtuneError
from asrtune.inference.base import Hypothesis, Recognizer, batches, check_clips
from asrtune.inference.whisper_common import (
    BEST_OF, COMPRESSION_RATIO_THRESHOLD, FALLBACK_SEED, FALLBACK_TEMPERATURES, LOG_PROB_THRESHOLD, NO_SPEECH_THRESHOLD,
    WhisperPrompt, build_prompt, check_thresholds, content_frames, decode_with_fallback, fallback_schedule, feature_style,
    is_no_speech, load_terms_arg, log_mel_batch, suppress_ids, text_token_ids, using_prefix,
)
from asrtune.models.registry import ct2_copy_for
from asrtune.models.whisper_spec import MAX_TARGET_TOKENS


class WhisperCT2Recognizer(Recognizer):
    """CTranslate2 Whisper recognizer.

    >>> rec = WhisperCT2Recognizer(resolve_model("openai/whisper-tiny.en"))    # doctest: +SKIP
    >>> rec.transcribe([audio])                                                # doctest: +SKIP

    A model that came from a CTranslate2 folder (e.g. a weights package) runs from it directly;
    a Hugging Face model (e.g. a fine-tuned run) is converted once with ``hf_to_ct2`` and cached.
    """

    engine = "ct2"
    can_force_align = True

    def __init__(self, resolved, device: str = "cpu", batch_size: int = 16, terms=None, prompt: str | None = None,
                 language: str | None = None, beam_size: int = 1, compute_type: str = "int8",
                 features: str = "hf", threads: int | None = None, word_timestamps: bool = False,
                 no_speech_threshold: float = NO_SPEECH_THRESHOLD, log_prob_threshold: float = LOG_PROB_THRESHOLD,
                 compression_ratio_threshold: float = COMPRESSION_RATIO_THRESHOLD):
        if load_terms_arg(terms):
            raise AsrtuneError("term biasing (--terms) needs the hf engine; CTranslate2 takes no logits processor")
        check_thresholds(no_speech_threshold, log_prob_threshold, compression_ratio_threshold)
        self.word_timestamps = bool(word_timestamps)
        self.no_speech_threshold, self.log_prob_threshold = no_speech_threshold, log_prob_threshold
        self.compression_ratio_threshold = compression_ratio_threshold
        self.fallback_temperatures = FALLBACK_TEMPERATURES  # the sampling schedule (openai-whisper's)
        self.name, self.source, self.family = resolved.name, resolved.source, resolved.family
        self.batch_size, self.beam_size, self.compute_type = batch_size, beam_size, compute_type
        self.features = feature_style(features)
        self.language, self.prompt_text = language, prompt
        self.ct2_path = ct2_copy_for(resolved, quantization=compute_type if compute_type.startswith(("int8", "int16", "float", "bfloat")) else "int8")
        threads = threads or min(os.cpu_count() or 1, 8)
        try:
            self.model = ctranslate2.models.Whisper(
                str(self.ct2_path), device=device, compute_type=compute_type, intra_threads=threads
            )
        except (RuntimeError, ValueError) as e:
            raise AsrtuneError(f"{self.ct2_path}: CTranslate2 cannot load this model on {device} ({compute_type}): {e}") from None
        self.tokenizer = WhisperTokenizer.from_pretrained(resolved.path)
        generation = GenerationConfig.from_pretrained(resolved.path)
        self.vocab_size = int(self._vocab_size(resolved))
        self.max_target_tokens = MAX_TARGET_TOKENS  # decoder positions, prompt included (every Whisper checkpoint's)
        self.n_mels = int(self.model.n_mels)
        self.prompt = self.build_prefix(prompt, language)
        self.suppress = suppress_ids(self.tokenizer, generation)
        self.eot = int(self.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        self._hf_extractor = None
        self._heads_checked: bool | None = None

    @staticmethod
    def _vocab_size(resolved) -> int:
        return json.loads((resolved.path / "config.json").read_text())["vocab_size"]

    def build_prefix(self, prompt: str | None, language: str | None) -> WhisperPrompt:
        """This model's decoder prefix for ``prompt`` and ``language`` (ConfigError for a language it lacks)."""
        return build_prompt(self.tokenizer, self.vocab_size, language, prompt, self.max_target_tokens)

    def describe(self) -> dict:
        d = super().describe()
        d.update(beam_size=self.beam_size, compute_type=self.compute_type, language=self.language,
                 prompt=self.prompt_text, features=self.features,
                 no_speech_threshold=self.no_speech_threshold, log_prob_threshold=self.log_prob_threshold,
                 compression_ratio_threshold=self.compression_ratio_threshold)
        return d

    def decode(self, audios: Sequence[np.ndarray], word_timestamps: bool = False) -> list[Hypothesis]:
        clips = check_clips(audios)
        out: list[Hypothesis] = []
        for batch in batches(clips, self.batch_size):
            hyps = self._decode_batch(batch, word_timestamps)

            def sample(indices: list[int], temperature: float, batch=batch) -> list[Hypothesis]:
                with using_prefix(self, self.prompt.unprompted()):
                    return self._decode_batch([batch[i] for i in indices], word_timestamps, temperature)

            schedule = fallback_schedule(bool(self.prompt.prev), self.fallback_temperatures)
            out += decode_with_fallback(hyps, sample, self.compression_ratio_threshold, schedule)
        return out

    def _decode_batch(self, batch: list[np.ndarray], word_timestamps: bool, temperature: float = 0.0) -> list[Hypothesis]:
        """Greedy or beam decoding; with ``temperature`` > 0, the best of :data:`BEST_OF` samples per clip.

        CTranslate2 keeps one random generator per worker thread, seeded from the global seed when
        the thread first samples: a new process gives the same samples for the same inputs, but a
        second fallback in one process continues the stream (the hf engine reseeds every time)."""
        encoded = self._encode(batch)
        if temperature > 0:
            ctranslate2.set_random_seed(FALLBACK_SEED)
            search = dict(beam_size=1, num_hypotheses=BEST_OF, sampling_topk=0, sampling_temperature=temperature)
        else:
            search = dict(beam_size=self.beam_size)
        results = self.model.generate(
            encoded,
            [self.prompt.tokens()] * len(batch),
            max_length=self.max_target_tokens,  # prefix included, as in faster-whisper
            suppress_blank=True,
            suppress_tokens=self.suppress,
            return_scores=True,
            return_no_speech_prob=True,
            **search,
        )
        picks = []  # (avg_logprob, text token ids) of each clip's most likely hypothesis
        for r in results:
            candidates = []
            for ids, score in zip(r.sequences_ids, r.scores):
                ids = [t for t in ids if t < self.eot]
                # CTranslate2's score is the length-normalised sum (end-of-text included): back to a
                # per-token mean over len + 1 tokens, as faster-whisper computes avg_logprob
                candidates.append((score * len(ids) / (len(ids) + 1), ids))
            picks.append(max(candidates, key=lambda c: c[0]))
        tokens = [ids for _, ids in picks]
        words = self._words(encoded, tokens, [content_frames(c) for c in batch]) if word_timestamps else None
        hyps = [self._hypothesis(ids, None if words is None else words[i], avg_logprob, r.no_speech_prob)
                for i, ((avg_logprob, ids), r) in enumerate(zip(picks, results))]
        for hyp in hyps:
            hyp.temperature = temperature
        return hyps

    def _encode(self, clips: list[np.ndarray]):
        if self.features == "hf" and self._hf_extractor is None:
            self._hf_extractor = WhisperFeatureExtractor(feature_size=self.n_mels)
        mel = log_mel_batch(clips, self.n_mels, self.features, self._hf_extractor)
        return self.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)))

    def force_align(self, audios: Sequence[np.ndarray], texts: Sequence[str]) -> list[Hypothesis]:
        """``avg_logprob`` is the mean log-probability of the text's tokens from CTranslate2's
        ``Whisper.align`` (which reports text-token probabilities, not the end-of-text one)."""
        clips = check_clips(audios)
        tokens = [text_token_ids(self.tokenizer, " " + t.strip()) if t.strip() else [] for t in texts]
        out: list[Hypothesis] = []
        for start in range(0, len(clips), self.batch_size):
            batch, ids = clips[start : start + self.batch_size], tokens[start : start + self.batch_size]
            encoded = self._encode(batch)
            aligned = align_tokens(self.model, encoded, self.prompt.sot[:-1], ids, [content_frames(c) for c in batch],
                                   self.tokenizer.decode)
            for text_ids, (words, probs) in zip(ids, aligned):
                logprob = float(np.mean(np.log(np.maximum(probs, 1e-12)))) if probs else 0.0
                out.append(Hypothesis(self.tokenizer.decode(text_ids).strip(), words, logprob, None, text_ids))
        return out

    def _words(self, encoded, tokens: list[list[int]], mel_frames: list[int]):
        if self._heads_checked is None:
            self._heads_checked = check_alignment_heads(self.ct2_path)
        # CTranslate2 appends <|notimestamps|> itself; its start sequence is the rest of the prefix
        aligned = align_tokens(self.model, encoded, self.prompt.sot[:-1], tokens, mel_frames, self.tokenizer.decode)
        return [words for words, _ in aligned]

    def _hypothesis(self, tokens: list[int], words, avg_logprob: float, no_speech_prob: float) -> Hypothesis:
        if is_no_speech(no_speech_prob, avg_logprob, self.no_speech_threshold, self.log_prob_threshold):
            return Hypothesis("", [] if words is not None else None, avg_logprob, no_speech_prob, [])
        return Hypothesis(self.tokenizer.decode(tokens).strip(), words, avg_logprob, no_speech_prob, tokens)
