"""Whisper through ONNX Runtime: the graphs of ``asrtune export --to onnx``, decoded greedily.

The encoder graph gives every decoder layer's cross-attention keys and values once per batch;
the decoder graph then runs the prompt and one token per step with its self-attention cache
(:mod:`asrtune.models.onnx_export`). Decoding follows the ct2 engine: the same prompt, suppressed
tokens (plus blank and end-of-text at the first step), no-speech rule and loop fallback (best of
:data:`~asrtune.inference.whisper_common.BEST_OF` samples at rising temperatures, seeded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperTokenizer

from asrtune.errors import AsrtuneError
from asrtune.inference.base import Hypothesis, Recognizer, batches, check_clips
from asrtune.inference.whisper_common import (
    BEST_OF, COMPRESSION_RATIO_THRESHOLD, FALLBACK_SEED, FALLBACK_TEMPERATURES, LOG_PROB_THRESHOLD, NO_SPEECH_THRESHOLD,
    best_of, build_prompt, decode_with_fallback, feature_style, is_no_speech, log_mel_batch, no_speech_token, suppress_ids,
)
from asrtune.models.onnx_export import DECODER_FILE, ENCODER_FILE
from asrtune.models.whisper_spec import MAX_TARGET_TOKENS


class WhisperOnnxRecognizer(Recognizer):
    """ONNX Runtime Whisper recognizer over an export folder (``encoder_model.onnx`` + ``decoder_model.onnx``).

    >>> rec = WhisperOnnxRecognizer(Path("exports/acc-onnx"), name="acc", source="onnx")   # doctest: +SKIP
    """

    engine = "onnx"
    family = "whisper"

    def __init__(self, folder: Path, *, name: str, source: str, batch_size: int = 16, prompt: str | None = None,
                 language: str | None = None, features: str = "hf", threads: int | None = None,
                 no_speech_threshold: float = NO_SPEECH_THRESHOLD, log_prob_threshold: float = LOG_PROB_THRESHOLD,
                 compression_ratio_threshold: float = COMPRESSION_RATIO_THRESHOLD):
        import onnxruntime as ort  # optional extra [export], checked by check_packages before the engine loads

        self.folder, self.name, self.source = Path(folder), name, source
        self.batch_size, self.features, self.language, self.prompt_text = batch_size, feature_style(features), language, prompt
        self.no_speech_threshold, self.log_prob_threshold = no_speech_threshold, log_prob_threshold
        self.compression_ratio_threshold = compression_ratio_threshold
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # ORT's warnings about unused initialisers are noise here
        try:
            self.encoder = ort.InferenceSession(str(self.folder / ENCODER_FILE), options, providers=["CPUExecutionProvider"])
            self.decoder = ort.InferenceSession(str(self.folder / DECODER_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            raise AsrtuneError(f"{self.folder}: ONNX Runtime cannot load the graphs ({e})") from None
        config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        self.n_mels = int(config["num_mel_bins"])
        self.layers, self.heads = int(config["decoder_layers"]), int(config["decoder_attention_heads"])
        self.head_dim = int(config["d_model"]) // self.heads
        self.tokenizer = WhisperTokenizer.from_pretrained(self.folder)
        generation = GenerationConfig.from_pretrained(self.folder)
        self.prompt = build_prompt(self.tokenizer, int(config["vocab_size"]), language, prompt, MAX_TARGET_TOKENS)
        self.suppress = np.array(suppress_ids(self.tokenizer, generation), dtype=np.int64)
        self.eot = int(self.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        begin = getattr(generation, "begin_suppress_tokens", None) or [self.tokenizer.encode(" ", add_special_tokens=False)[0], self.eot]
        self.begin_suppress = np.array(sorted(set(int(t) for t in begin)), dtype=np.int64)
        self.no_speech_id = no_speech_token(self.tokenizer)
        self.timestamp_begin = int(self.tokenizer.convert_tokens_to_ids("<|notimestamps|>")) + 1
        self._extractor = None

    def describe(self) -> dict:
        d = super().describe()
        d.update(beam_size=1, language=self.language, prompt=self.prompt_text, features=self.features,
                 no_speech_threshold=self.no_speech_threshold, log_prob_threshold=self.log_prob_threshold,
                 compression_ratio_threshold=self.compression_ratio_threshold)
        return d

    def decode(self, audios: Sequence[np.ndarray], word_timestamps: bool = False) -> list[Hypothesis]:
        if word_timestamps:
            raise AsrtuneError("the onnx engine has no word timestamps; use --engine hf or ct2 for them")
        clips = check_clips(audios)
        out: list[Hypothesis] = []
        for batch in batches(clips, self.batch_size):
            cross = self._encode(batch)
            hyps = self._generate(cross, 0.0)

            def sample(indices: list[int], temperature: float, cross=cross) -> list[Hypothesis]:
                picked = np.repeat(cross[:, :, indices], BEST_OF, axis=2)
                return best_of(self._generate(picked, temperature), BEST_OF)

            out += decode_with_fallback(hyps, sample, self.compression_ratio_threshold, FALLBACK_TEMPERATURES)
        return out

    def _encode(self, clips: list[np.ndarray]) -> np.ndarray:
        if self.features == "hf" and self._extractor is None:
            self._extractor = WhisperFeatureExtractor(feature_size=self.n_mels)
        mel = log_mel_batch(clips, self.n_mels, self.features, self._extractor)
        return self.encoder.run(["cross_kv"], {"input_features": np.ascontiguousarray(mel, dtype=np.float32)})[0]

    def _generate(self, cross: np.ndarray, temperature: float) -> list[Hypothesis]:
        """Greedy (``temperature`` 0) or sampled decoding of a batch; one hypothesis per row of ``cross``."""
        batch = cross.shape[2]
        prompt = self.prompt.tokens()
        rng = np.random.default_rng(FALLBACK_SEED)
        ids = np.tile(np.array(prompt, dtype=np.int64), (batch, 1))
        past = np.zeros((self.layers, 2, batch, self.heads, 0, self.head_dim), dtype=np.float32)
        tokens: list[list[int]] = [[] for _ in range(batch)]
        logprob_sums = np.zeros(batch)
        done = np.zeros(batch, dtype=bool)
        no_speech = [None] * batch
        for step in range(MAX_TARGET_TOKENS - len(prompt)):
            logits, past = self.decoder.run(["logits", "present_kv"], {"input_ids": ids, "self_kv": past, "cross_kv": cross})
            if step == 0 and self.no_speech_id is not None:
                sot_logits = logits[:, len(self.prompt.prev)].astype(np.float64)
                no_speech = list(_softmax(sot_logits)[:, self.no_speech_id])
            last = logits[:, -1].astype(np.float64)
            last[:, self.suppress] = -np.inf
            last[:, self.timestamp_begin:] = -np.inf  # <|notimestamps|> decoding: no timestamp tokens
            if step == 0:
                last[:, self.begin_suppress] = -np.inf
            logprobs = _log_softmax(last)
            if temperature > 0:
                probs = _softmax(last / temperature)
                chosen = np.array([rng.choice(len(p), p=p) for p in probs])
            else:
                chosen = logprobs.argmax(axis=-1)
            for row in np.flatnonzero(~done):
                logprob_sums[row] += logprobs[row, chosen[row]]
                if chosen[row] == self.eot:
                    done[row] = True
                else:
                    tokens[row].append(int(chosen[row]))
            if done.all():
                break
            ids = np.where(done, self.eot, chosen).astype(np.int64)[:, None]
        hyps = []
        for row in range(batch):
            avg_logprob = float(logprob_sums[row] / (len(tokens[row]) + 1))
            hyps.append(self._hypothesis(tokens[row], avg_logprob, no_speech[row], temperature))
        return hyps

    def _hypothesis(self, tokens: list[int], avg_logprob: float, no_speech_prob: float | None, temperature: float) -> Hypothesis:
        if is_no_speech(no_speech_prob, avg_logprob, self.no_speech_threshold, self.log_prob_threshold):
            return Hypothesis("", None, avg_logprob, no_speech_prob, [], temperature)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return Hypothesis(text, None, avg_logprob, None if no_speech_prob is None else float(no_speech_prob), tokens, temperature)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(x))
