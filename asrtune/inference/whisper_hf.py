"""Whisper through transformers: batched ``generate`` on 16 kHz clips of up to 30 s."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from asrtune.inference.base import Recognizer, batches, check_clips
from asrtune.inference.whisper_common import build_prompt, feature_style, load_terms_arg, log_mel_batch, suppress_ids, term_processor


class WhisperHFRecognizer(Recognizer):
    """Greedy (or beam) Whisper decoding with transformers, the engine fine-tuning evaluates with.

    The decoder prefix is the one openai-whisper and faster-whisper use without timestamps:
    ``<|startoftranscript|><|notimestamps|>`` for English-only models,
    ``<|startoftranscript|><|en|><|transcribe|><|notimestamps|>`` for multilingual ones
    (``language`` picks another language), preceded by ``<|startofprev|>`` + ``prompt`` tokens
    when an initial prompt is given.

    >>> rec = WhisperHFRecognizer(resolve_model("openai/whisper-tiny.en"))     # doctest: +SKIP
    """

    engine = "hf"

    def __init__(self, resolved, device: str = "cpu", batch_size: int = 16, terms=None, prompt: str | None = None,
                 language: str | None = None, beam_size: int = 1, term_boost: float | None = None, features: str = "hf",
                 model=None, processor=None):
        import torch

        from asrtune.models.loading import load_whisper

        self.name, self.source, self.family = resolved.name, resolved.source, resolved.family
        self.device, self.batch_size, self.beam_size = device, batch_size, beam_size
        if model is None or processor is None:
            model, processor = load_whisper(resolved, device=device)
        self.model, self.processor = model, processor
        tokenizer = processor.tokenizer
        vocab_size = model.config.vocab_size
        self.prompt_text, self.language = prompt, language
        self.prompt = build_prompt(tokenizer, vocab_size, language, prompt, model.config.max_target_positions)
        self.suppress = suppress_ids(tokenizer, model.generation_config)
        self.terms = load_terms_arg(terms)
        self.term_boost = term_boost
        self.bias = term_processor(tokenizer, self.terms, term_boost)
        self.features = feature_style(features)
        self._torch = torch

    def describe(self) -> dict:
        d = super().describe()
        d.update(beam_size=self.beam_size, language=self.language, prompt=self.prompt_text,
                 features=self.features, terms=len(self.terms or []), term_boost=self.term_boost if self.terms else None)
        return d

    def _generation_config(self):
        from transformers import GenerationConfig

        gc = self.model.generation_config
        eot = int(self.processor.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        return GenerationConfig(
            max_length=self.model.config.max_target_positions,  # prefix included, as in faster-whisper
            num_beams=self.beam_size,
            do_sample=False,
            suppress_tokens=self.suppress,
            begin_suppress_tokens=list(getattr(gc, "begin_suppress_tokens", None) or [220, eot]),
            eos_token_id=eot,
            pad_token_id=eot,
            decoder_start_token_id=self.prompt.sot[0],
        )

    def _generate(self, features=None, encoder_outputs=None):
        """Token ids after the prefix, one row per clip (eot-padded), from log-mel ``features``
        or from ``encoder_outputs`` (a ``BaseModelOutput`` the encoder already produced)."""
        from transformers import GenerationMixin, LogitsProcessorList

        torch = self._torch
        n = features.shape[0] if features is not None else encoder_outputs.last_hidden_state.shape[0]
        extra_inputs = {"encoder_outputs": encoder_outputs} if encoder_outputs is not None else {}
        prefix = torch.tensor([self.prompt.tokens()] * n, dtype=torch.long, device=self.device)
        extra = {"logits_processor": LogitsProcessorList([self.bias])} if self.bias is not None else {}
        # The plain encoder-decoder generate, not WhisperGenerationMixin.generate (which rebuilds
        # the prefix from generation_config and language detection): the prefix above is exactly
        # what the decoder is fed, the same as in faster-whisper.
        out = GenerationMixin.generate(
            self.model,
            features,  # None when decoding from encoder_outputs
            generation_config=self._generation_config(),
            decoder_input_ids=prefix,
            **extra_inputs,
            **extra,
        )
        return out[:, prefix.shape[1] :]

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        clips = check_clips(audios)
        texts: list[str] = []
        torch = self._torch
        for batch in batches(clips, self.batch_size):
            mel = log_mel_batch(batch, self.model.config.num_mel_bins, self.features, self.processor.feature_extractor)
            features = torch.from_numpy(mel).to(self.device, dtype=self.model.dtype)
            with torch.inference_mode():
                tokens = self._generate(features)
            texts += self._decode(tokens)
        return texts

    def transcribe_encoded(self, encoder_outputs: np.ndarray) -> list[str]:
        """Decode from cached encoder outputs ``[N, frames, d_model]`` with exactly the prompt,
        suppress list and generation settings of :meth:`transcribe` (fine-tuning's dev WER)."""
        from transformers.modeling_outputs import BaseModelOutput

        torch = self._torch
        texts: list[str] = []
        for start in range(0, len(encoder_outputs), self.batch_size):
            chunk = np.asarray(encoder_outputs[start : start + self.batch_size])
            hidden = torch.from_numpy(chunk).to(self.device, dtype=self.model.dtype)
            with torch.inference_mode():
                tokens = self._generate(encoder_outputs=BaseModelOutput(last_hidden_state=hidden))
            texts += self._decode(tokens)
        return texts

    def _decode(self, tokens) -> list[str]:
        return [t.strip() for t in self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)]
