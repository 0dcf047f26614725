"""Scoring the live model during a run: dev and guard WER through the recogniser ``asrtune
eval`` uses, from cached encoder outputs while they are valid.

At step 0 the hypotheses are looked up in (and then added to) the step-0 cache
(``training/untuned_eval.py``: key = digest of the starting weights, the clips, the decoding
settings and the asrtune source), so a second run from the same model decodes nothing; they
are also kept clip by clip (:class:`~asrtune.training.untuned_eval.StartingHypotheses`) for the
``--eval-sets`` comparison, which :meth:`Evaluator.run_decoding` hands what it may reuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from asrtune.data.manifest import Utterance
from asrtune.training.adapters.base import ModelAdapter, module_digest
from asrtune.training.compare import RunDecoding, compare_base_and_tuned, score, utterance_audio
from asrtune.training.config import TrainConfig
from asrtune.training.encoder_cache import EncoderCache
from asrtune.training.progress import Progress
from asrtune.training.run_data import Pair, cache_root
from asrtune.training.untuned_eval import (
    FOLDER, StartingHypotheses, decoding_settings, hypotheses_key, load_hypotheses, save_hypotheses,
)

MapFn = Callable[[Callable, Any], list]


class Evaluator:
    """WER of the dev set, the guard set, or any pairs, for the model the adapter holds now."""

    def __init__(self, config: TrainConfig, adapter: ModelAdapter, resolved: Any, device: torch.device,
                 sets: tuple[list[Pair], list[Pair]], map_fn: MapFn, say: Callable[[str], None]):
        self.config, self.adapter, self.resolved, self.device = config, adapter, resolved, device
        self.dev, self.guard = sets
        self.map, self.say = map_fn, say
        self.hypotheses_root = cache_root(config) / FOLDER  # where step-0 hypotheses are kept
        # the step-0 hypotheses, for the --eval-sets comparison (with --cache off none are read back)
        self.step_zero = StartingHypotheses(self.hypotheses_root if config.cache != "off" else None)
        self.start_weights: str | None = None  # digest of the weights evaluated at step 0
        self.dev_hyps: list[str] = []  # the last dev evaluation's hypotheses (the tracker's examples)
        self._audio: dict[int, list[np.ndarray]] = {}  # id(dev or guard list) -> its decoded audio

    def wer(self, pairs: list[Pair], step: int, cache: EncoderCache | None) -> float:
        """WER of ``pairs`` at ``step``, normalised for the language; ``cache``: the encoder-output
        cache while it holds this model's encoder (frozen, not yet unfrozen), else None."""
        utts = [u for u, _ in pairs]
        key = self.untuned_key(utts, cache) if step == 0 and self.config.cache != "off" else None
        hyps = load_hypotheses(self.hypotheses_root, key, len(utts)) if key else None
        if hyps is not None:
            self.say(f"step 0: the starting model's hypotheses of these {len(utts)} utterances came from the cache "
                     "(same weights, audio and decoding code)")
        else:
            hyps = self.decode(pairs, cache)
            if key:
                save_hypotheses(self.hypotheses_root, key, hyps)
        if step == 0:
            self.step_zero.remember(utts, hyps)
        if pairs is self.dev:  # the dev examples the tracker shows, never the guard set's
            self.dev_hyps = hyps
        return score([u.text for u in utts], hyps, self.config.language)

    def decode(self, pairs: list[Pair], cache: EncoderCache | None) -> list[str]:
        """Hypotheses of ``pairs`` from the live model, in eval batches (cached encoder rows or audio)."""
        batch = self.config.eval_batch_size
        recognizer = self.adapter.recognizer(str(self.device), batch)
        utts = [u for u, _ in pairs]
        audio = None if cache is not None else self.audio(pairs)
        progress = Progress("dev", len(utts), "utt", self.say, False)
        hyps: list[str] = []
        self.adapter.model.eval()
        try:
            for start in range(0, len(utts), batch):
                if cache is not None:
                    cached = np.stack([cache.get(u) for u in utts[start:start + batch]])
                    hyps += recognizer.transcribe_encoded(self.adapter.finish_encoding(cached))
                else:
                    hyps += recognizer.transcribe(audio[start:start + batch])
                progress.update(len(hyps) - progress.done)
        finally:
            self.adapter.model.train()
        return hyps

    def untuned_key(self, utts: list[Utterance], cache: EncoderCache | None) -> str:
        """Cache key of the step-0 evaluation of ``utts`` (:mod:`asrtune.training.untuned_eval`)."""
        if self.start_weights is None:  # dev and guard are both scored with the same starting weights
            self.start_weights = self.step_zero.weights = module_digest(self.adapter.model)
        settings = decoding_settings(self.resolved.family, self.config.language, self.device.type, self.resolved.path,
                                     self.config.eval_batch_size, cache.fingerprint if cache is not None else None)
        return hypotheses_key(self.start_weights, utts, settings)

    def audio(self, pairs: list[Pair]) -> list[np.ndarray]:
        """Decoded audio of ``pairs``; the dev and guard sets' is loaded once per run."""
        if pairs is not self.dev and pairs is not self.guard:
            return self.map(utterance_audio, [u for u, _ in pairs])
        if id(pairs) not in self._audio:
            self._audio[id(pairs)] = self.map(utterance_audio, [u for u, _ in pairs])
        return self._audio[id(pairs)]

    def compare(self, tuned: Path, sets: list[str], shared_cache: EncoderCache | None) -> list[dict[str, Any]]:
        """The --eval-sets rows: the base model against ``tuned``, decoding only what the run lacks."""
        return compare_base_and_tuned(self.resolved, tuned, sets, self.config, str(self.device), self.say,
                                      self.run_decoding(shared_cache))

    def run_decoding(self, shared_cache: EncoderCache | None) -> RunDecoding:
        """What the --eval-sets comparison may reuse: the step-0 hypotheses, and ``shared_cache``
        (the encoder cache while base and best/ share the cached encoder, else None)."""
        encode = self.adapter.encode if shared_cache is not None else None
        return RunDecoding(self.step_zero, shared_cache, encode, self.map)
