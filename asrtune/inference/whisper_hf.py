"""Whisper through transformers: batched ``generate`` on 16 kHz clips of up to 30 s.

Each batch is encoded once; ``generate`` decodes from the encoder outputs, then one
teacher-forced decoder pass over prefix + text + end-of-text scores the result: the
no-speech probability (at ``<|startoftranscript|>``), the mean token log-probability and, when
asked, the alignment heads' cross-attention for word times (:mod:`asrtune.alignment.cross_attention`).
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
from transformers import GenerationConfig, GenerationMixin, LogitsProcessorList
from transformers.modeling_outputs import BaseModelOutput

from asrtune.alignment.cross_attention import (
    MEL_FRAMES_PER_ENCODER_FRAME, CrossAttentionRecorder, alignment_heads, words_from_scores,
)
from asrtune.inference.base import Hypothesis, Recognizer, batches, check_clips
from asrtune.inference.biasing import term_processor
from asrtune.inference.whisper_common import (
    BEST_OF, COMPRESSION_RATIO_THRESHOLD, FALLBACK_SEED, FALLBACK_TEMPERATURES, LOG_PROB_THRESHOLD, N_FRAMES, NO_SPEECH_THRESHOLD,
    WhisperPrompt, best_of, build_prompt, check_thresholds, content_frames, decode_with_fallback, fallback_schedule,
    feature_style, is_no_speech, load_terms_arg, log_mel_batch, no_speech_token, suppress_ids,
    text_token_ids, using_prefix,
)
from asrtune.models.loading import load_whisper

SCORE_BATCH = 8  # clips per teacher-forced scoring pass (bounds the recorded attention's memory)


class WhisperHFRecognizer(Recognizer):
    """Greedy (or beam) Whisper decoding with transformers, the engine fine-tuning evaluates with.

    The decoder prefix is the one openai-whisper and faster-whisper use without timestamps:
    ``<|startoftranscript|><|notimestamps|>`` for English-only models,
    ``<|startoftranscript|><|en|><|transcribe|><|notimestamps|>`` for multilingual ones
    (``language`` picks another language), preceded by ``<|startofprev|>`` + ``prompt`` tokens
    when an initial prompt is given. A clip the model thinks is silence (see
    :func:`~asrtune.inference.whisper_common.is_no_speech`) gets an empty text.

    >>> rec = WhisperHFRecognizer(resolve_model("openai/whisper-tiny.en"))     # doctest: +SKIP
    """

    engine = "hf"
    can_force_align = True

    def __init__(self, resolved, device: str = "cpu", batch_size: int = 16, terms=None, prompt: str | None = None,
                 language: str | None = None, beam_size: int = 1, term_boost: float | None = None, features: str = "hf",
                 model=None, processor=None, word_timestamps: bool = False,
                 no_speech_threshold: float = NO_SPEECH_THRESHOLD, log_prob_threshold: float = LOG_PROB_THRESHOLD,
                 compression_ratio_threshold: float = COMPRESSION_RATIO_THRESHOLD):
        check_thresholds(no_speech_threshold, log_prob_threshold, compression_ratio_threshold)
        self.name, self.source, self.family = resolved.name, resolved.source, resolved.family
        self.device, self.batch_size, self.beam_size = device, batch_size, beam_size
        if model is None or processor is None:
            model, processor = load_whisper(resolved, device=device)
        self.model, self.processor = model, processor
        tokenizer = processor.tokenizer
        self.vocab_size = int(model.config.vocab_size)
        self.max_target_tokens = int(model.config.max_target_positions)  # decoder positions, prompt included
        self.prompt_text, self.language = prompt, language
        self.prompt = self.build_prefix(prompt, language)
        self.suppress = suppress_ids(tokenizer, model.generation_config)
        self.terms = load_terms_arg(terms)
        self.term_boost = term_boost
        self.bias = term_processor(tokenizer, self.terms, term_boost)
        self.features = feature_style(features)
        self.word_timestamps = bool(word_timestamps)
        self.no_speech_threshold, self.log_prob_threshold = no_speech_threshold, log_prob_threshold
        self.compression_ratio_threshold = compression_ratio_threshold
        self.fallback_temperatures = FALLBACK_TEMPERATURES  # the sampling schedule (openai-whisper's)
        self.eot = int(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        self.no_speech_id = no_speech_token(tokenizer)
        self._heads: list[tuple[int, int]] | None = None
        self._torch = torch

    def build_prefix(self, prompt: str | None, language: str | None) -> WhisperPrompt:
        """This model's decoder prefix for ``prompt`` and ``language`` (ConfigError for a language it lacks)."""
        return build_prompt(self.processor.tokenizer, self.vocab_size, language, prompt, self.max_target_tokens)

    def describe(self) -> dict:
        d = super().describe()
        d.update(beam_size=self.beam_size, language=self.language, prompt=self.prompt_text,
                 features=self.features, terms=len(self.terms or []), term_boost=self.term_boost if self.terms else None,
                 no_speech_threshold=self.no_speech_threshold, log_prob_threshold=self.log_prob_threshold,
                 compression_ratio_threshold=self.compression_ratio_threshold)
        return d

    def _generation_config(self, temperature: float = 0.0):
        gc = self.model.generation_config
        sampling = dict(do_sample=True, temperature=temperature, top_k=0) if temperature > 0 else dict(do_sample=False)
        return GenerationConfig(
            max_length=self.max_target_tokens,  # prefix included, as in faster-whisper
            num_beams=self.beam_size if temperature == 0 else 1,
            **sampling,
            suppress_tokens=self.suppress,
            begin_suppress_tokens=list(getattr(gc, "begin_suppress_tokens", None) or [220, self.eot]),
            eos_token_id=self.eot,
            pad_token_id=self.eot,
            decoder_start_token_id=self.prompt.sot[0],
        )

    def _generate(self, encoded, temperature: float = 0.0) -> list[list[int]]:
        """Text token ids after the prefix (end-of-text and padding removed), one list per clip
        (``temperature`` > 0: sampled from the whole distribution at that temperature)."""
        torch = self._torch
        n = encoded.shape[0]
        prefix = torch.tensor([self.prompt.tokens()] * n, dtype=torch.long, device=self.device)
        extra = {"logits_processor": LogitsProcessorList([self.bias])} if self.bias is not None else {}
        # The plain encoder-decoder generate, not WhisperGenerationMixin.generate (which rebuilds
        # the prefix from generation_config and language detection): the prefix above is exactly
        # what the decoder is fed, the same as in faster-whisper.
        out = GenerationMixin.generate(
            self.model,
            encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
            # unused (the encoder already ran); given so generate does not warn about padding
            attention_mask=torch.ones(encoded.shape[:2], dtype=torch.long, device=self.device),
            generation_config=self._generation_config(temperature),
            decoder_input_ids=prefix,
            **extra,
        )
        rows = out[:, prefix.shape[1] :].tolist()
        rows = [row[: row.index(self.eot)] if self.eot in row else row for row in rows]
        return [[t for t in row if t < self.eot] for row in rows]  # no special tokens in the text

    def _encode(self, clips: list[np.ndarray]):
        mel = log_mel_batch(clips, self.model.config.num_mel_bins, self.features, self.processor.feature_extractor)
        features = self._torch.from_numpy(mel).to(self.device, dtype=self.model.dtype)
        return self.model.model.encoder(features).last_hidden_state

    def decode(self, audios: Sequence[np.ndarray], word_timestamps: bool = False) -> list[Hypothesis]:
        clips = check_clips(audios)
        out: list[Hypothesis] = []
        for batch in batches(clips, self.batch_size):
            with self._torch.inference_mode():
                encoded = self._encode(batch)
                out += self._decode_encoded(encoded, [content_frames(c) for c in batch], word_timestamps)
        return out

    def force_align(self, audios: Sequence[np.ndarray], texts: Sequence[str]) -> list[Hypothesis]:
        clips = check_clips(audios)
        tokens = [text_token_ids(self.processor.tokenizer, " " + t.strip()) if t.strip() else [] for t in texts]
        out: list[Hypothesis] = []
        for start in range(0, len(clips), SCORE_BATCH):
            part = slice(start, start + SCORE_BATCH)
            with self._torch.inference_mode():
                encoded = self._encode(clips[part])
                scored = self._score(encoded, tokens[part], [content_frames(c) for c in clips[part]], True, forced=True)
            out += scored
        return out

    def transcribe_encoded(self, encoder_outputs: np.ndarray) -> list[str]:
        """Transcripts from cached encoder outputs ``(clips, 1500, d_model)`` (the trainer's encoder
        cache), with exactly the prompt, suppression and generation settings of :meth:`decode`. The
        clips' lengths are unknown here, so each counts as a full 30 s window."""
        torch = self._torch
        texts: list[str] = []
        for start in range(0, len(encoder_outputs), self.batch_size):
            chunk = np.asarray(encoder_outputs[start : start + self.batch_size])
            encoded = torch.from_numpy(chunk).to(self.device, dtype=self.model.dtype)
            with torch.inference_mode():
                texts += [h.text for h in self._decode_encoded(encoded, [N_FRAMES] * len(chunk), False)]
        return texts

    def _decode_encoded(self, encoded, n_frames: list[int], word_timestamps: bool) -> list[Hypothesis]:
        hyps = self._score_all(encoded, self._generate(encoded), n_frames, word_timestamps)

        def sample(indices: list[int], temperature: float) -> list[Hypothesis]:
            part, frames = encoded[indices], [n_frames[i] for i in indices]
            with using_prefix(self, self.prompt.unprompted()):
                if temperature == 0:
                    return self._score_all(part, self._generate(part), frames, word_timestamps)
                return self._sample(part, frames, temperature, word_timestamps)

        schedule = fallback_schedule(bool(self.prompt.prev), self.fallback_temperatures)
        return decode_with_fallback(hyps, sample, self.compression_ratio_threshold, schedule)

    def _sample(self, encoded, n_frames: list[int], temperature: float, word_timestamps: bool) -> list[Hypothesis]:
        """Each clip decoded :data:`BEST_OF` times by sampling; the most likely sample is kept."""
        torch = self._torch
        repeated = encoded.repeat_interleave(BEST_OF, dim=0)
        cuda = [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=cuda):  # seeded, and the caller's random state untouched
            torch.manual_seed(FALLBACK_SEED)
            tokens = self._generate(repeated, temperature)
        candidates = self._score_all(repeated, tokens, [f for f in n_frames for _ in range(BEST_OF)], word_timestamps)
        chosen = best_of(candidates, BEST_OF)
        for hyp in chosen:
            hyp.temperature = temperature
        return chosen

    def _score_all(self, encoded, tokens: list[list[int]], n_frames: list[int], word_timestamps: bool) -> list[Hypothesis]:
        hyps: list[Hypothesis] = []
        for start in range(0, len(tokens), SCORE_BATCH):
            part = slice(start, start + SCORE_BATCH)
            hyps += self._score(encoded[part], tokens[part], n_frames[part], word_timestamps)
        return hyps

    def _score(self, encoded, tokens: list[list[int]], n_frames: list[int], word_timestamps: bool,
               forced: bool = False) -> list[Hypothesis]:
        """One teacher-forced decoder pass over prefix + text + end-of-text for a few clips
        (``forced``: the text was given, so the no-speech rule does not blank it)."""
        torch = self._torch
        prefix = self.prompt.tokens()
        seqs = [(prefix + t + [self.eot])[: self.max_target_tokens] for t in tokens]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [self.eot] * (width - len(s)) for s in seqs], dtype=torch.long, device=self.device)
        recorder = CrossAttentionRecorder(self.model, self._alignment_heads()) if word_timestamps else None
        with recorder or contextlib.nullcontext():
            hidden = self.model.model.decoder(input_ids=ids, encoder_hidden_states=encoded, use_cache=False).last_hidden_state
        scores = recorder.scores() if recorder is not None else None
        head = self.model.get_output_embeddings()
        sot_index = len(self.prompt.prev)
        hyps = []
        for b, (seq, text_tokens) in enumerate(zip(seqs, tokens)):
            # row p predicts token p + 1: rows len(prefix) - 1 .. len(seq) - 2 predict text + end-of-text
            targets = torch.tensor(seq[len(prefix) :], device=self.device)
            rows = slice(len(prefix) - 1, len(seq) - 1)
            logits = head(hidden[b, rows]).float()
            logits[:, self.suppress] = -np.inf
            logprobs = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
            avg_logprob = float(logprobs.sum()) / (len(text_tokens) + 1)  # faster-whisper's length normalisation
            no_speech_prob = None
            if self.no_speech_id is not None:
                first = torch.softmax(head(hidden[b, sot_index]).float(), dim=-1)
                no_speech_prob = float(first[self.no_speech_id])
            words = None
            if scores is not None:
                # normalise over <|startoftranscript|> .. end-of-text, as openai-whisper does
                window = scores[b][:, sot_index : len(seq)]
                token_rows = slice(rows.start - sot_index, rows.stop - sot_index)
                words = words_from_scores(
                    window, token_rows, n_frames[b] // MEL_FRAMES_PER_ENCODER_FRAME, text_tokens,
                    logprobs[: len(text_tokens)].exp().tolist(), self._decode_tokens,
                )
            if forced:
                hyps.append(Hypothesis(self._decode_tokens(text_tokens).strip(), words, avg_logprob, no_speech_prob, text_tokens))
            else:
                hyps.append(self._hypothesis(text_tokens, words, avg_logprob, no_speech_prob))
        return hyps

    def _hypothesis(self, tokens: list[int], words, avg_logprob: float, no_speech_prob: float | None) -> Hypothesis:
        if is_no_speech(no_speech_prob, avg_logprob, self.no_speech_threshold, self.log_prob_threshold):
            return Hypothesis("", [] if words is not None else None, avg_logprob, no_speech_prob, [])
        return Hypothesis(self._decode_tokens(tokens).strip(), words, avg_logprob, no_speech_prob, tokens)

    def _decode_tokens(self, tokens: list[int]) -> str:
        return self.processor.tokenizer.decode(tokens, skip_special_tokens=True)

    def _alignment_heads(self) -> list[tuple[int, int]]:
        if self._heads is None:
            config = self.model.config
            self._heads = alignment_heads(self.model.generation_config, config.decoder_layers,
                                          config.decoder_attention_heads, self.name)
        return self._heads
