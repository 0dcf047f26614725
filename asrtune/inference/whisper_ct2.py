"""Whisper through CTranslate2 (the engine inside faster-whisper): int8 on CPU, batched.

Runs ``ctranslate2.models.Whisper`` directly on a batch of 30 s log-mel windows with the same
prompt and suppressed tokens as faster-whisper, so with ``features="faster-whisper"`` (the default for released checkpoints) its
greedy transcripts are faster-whisper's token for token, at a batch per call instead of one clip.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from asrtune.errors import AsrtuneError
from asrtune.inference.base import Recognizer, batches, check_clips
from asrtune.inference.whisper_common import build_prompt, feature_style, load_terms_arg, log_mel_batch, suppress_ids

from asrtune.models.whisper_spec import MAX_TARGET_TOKENS as MAX_LENGTH  # decoder positions, prompt included


class WhisperCT2Recognizer(Recognizer):
    """CTranslate2 Whisper recognizer.

    >>> rec = WhisperCT2Recognizer(resolve_model("openai/whisper-tiny.en"))    # doctest: +SKIP
    >>> rec.transcribe([audio])                                                # doctest: +SKIP

    A model that came from a CTranslate2 folder (e.g. a weights package) runs from it directly;
    a Hugging Face model (e.g. a fine-tuned run) is converted once with ``hf_to_ct2`` and cached.
    """

    engine = "ct2"

    def __init__(self, resolved, device: str = "cpu", batch_size: int = 16, terms=None, prompt: str | None = None,
                 language: str | None = None, beam_size: int = 1, compute_type: str = "int8",
                 features: str = "hf", threads: int | None = None):
        import ctranslate2
        from transformers import GenerationConfig, WhisperTokenizer

        from asrtune.models.registry import ct2_copy_for

        if load_terms_arg(terms):
            raise AsrtuneError("term biasing (--terms) needs the hf engine; CTranslate2 takes no logits processor")
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
        vocab_size = int(self._vocab_size(resolved))
        self.n_mels = int(self.model.n_mels)
        self.prompt = build_prompt(self.tokenizer, vocab_size, language, prompt, MAX_LENGTH)
        self.suppress = suppress_ids(self.tokenizer, generation)
        self.eot = int(self.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        self._hf_extractor = None

    @staticmethod
    def _vocab_size(resolved) -> int:
        import json

        return json.loads((resolved.path / "config.json").read_text())["vocab_size"]

    def describe(self) -> dict:
        d = super().describe()
        d.update(beam_size=self.beam_size, compute_type=self.compute_type, language=self.language,
                 prompt=self.prompt_text, features=self.features)
        return d

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        import ctranslate2

        clips = check_clips(audios)
        texts: list[str] = []
        for batch in batches(clips, self.batch_size):
            if self.features == "hf" and self._hf_extractor is None:
                from transformers import WhisperFeatureExtractor

                self._hf_extractor = WhisperFeatureExtractor(feature_size=self.n_mels)
            mel = log_mel_batch(batch, self.n_mels, self.features, self._hf_extractor)
            encoded = self.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)))
            results = self.model.generate(
                encoded,
                [self.prompt.tokens()] * len(batch),
                beam_size=self.beam_size,
                max_length=MAX_LENGTH,
                suppress_blank=True,
                suppress_tokens=self.suppress,
                return_scores=False,
            )
            for r in results:
                ids = [t for t in r.sequences_ids[0] if t < self.eot]
                texts.append(self.tokenizer.decode(ids).strip())
        return texts
