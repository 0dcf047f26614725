"""Training batches: the epoch's utterance order, each rank's slice of a global batch, and the
tensors of a micro-batch (from cached encoder outputs, or from audio, augmented).

Data-loading threads (``--num-workers``): decoding, resampling and augmenting audio run in C
code that releases the GIL (soundfile, soxr, numpy), so threads overlap them without the
start-up and pickling costs of worker processes. Features and token ids are made in the
training thread (tokenizers are not guaranteed thread-safe).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import numpy as np
import torch

from asrtune.data.manifest import Utterance
from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.augment import augment_waveform
from asrtune.training.compare import utterance_audio
from asrtune.training.config import TrainConfig
from asrtune.training.distributed import Processes
from asrtune.training.encoder_cache import EncoderCache
from asrtune.training.run_data import Pair
from asrtune.training.sampling import epoch_plan, group_by_duration

Plan = list[tuple[int, int]]  # (source, index) of each utterance of an epoch, in order
PAIRS_KEY = "_pairs"  # a batch's (utterance, target) pairs, beside its tensors


class Loader:
    """``map`` on the data-loading threads when ``--num-workers`` > 0, else in this thread."""

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="asrtune-data") if workers > 0 else None

    def map(self, fn: Callable, items: Iterable) -> list:
        """``[fn(x) for x in items]``, in order."""
        return list(self.pool.map(fn, items)) if self.pool else [fn(x) for x in items]

    def shutdown(self) -> None:
        if self.pool:
            self.pool.shutdown()


class Batches:
    """Plans epochs over ``sources`` (sampled by ``weights``) and builds this rank's micro-batches."""

    def __init__(self, config: TrainConfig, adapter: ModelAdapter, sources: list[list[Pair]],
                 weights: list[float] | None, processes: Processes, loader: Loader):
        self.config, self.adapter, self.sources, self.weights = config, adapter, sources, weights
        self.processes, self.loader = processes, loader
        self.global_batch = config.batch_size * processes.world

    def plan(self, epoch: int) -> Plan:
        """The epoch's utterance order; with --group-by-duration (default on for CTC, whose
        raw-audio batches pay for padding) consecutive batches hold similar durations."""
        cfg = self.config
        plan = epoch_plan([len(s) for s in self.sources], self.weights, epoch, cfg.seed)
        group = cfg.group_by_duration if cfg.group_by_duration is not None else self.adapter.family == "ctc"
        if group:
            durations = [[u.duration for u, _ in source] for source in self.sources]
            plan = group_by_duration(plan, durations, self.global_batch, epoch, cfg.seed)
        return plan

    def usable(self, plan: Plan) -> int:
        """How much of ``plan`` is used: every rank gets the same number of utterances."""
        return len(plan) - len(plan) % self.processes.world

    def take(self, plan: Plan, position: int) -> tuple[Plan, int]:
        """This rank's share of the global batch at ``position``, and the position after it (all ranks)."""
        rank, world = self.processes.rank, self.processes.world
        per_rank = max(1, min(self.global_batch, len(plan) - position) // world)
        return plan[position + rank * per_rank : position + (rank + 1) * per_rank], position + per_rank * world

    def waveform(self, utt: Utterance, rng: np.random.Generator) -> np.ndarray:
        """The clip's audio, speed-perturbed and noised when those augmentations are on."""
        audio = utterance_audio(utt)
        if self.config.speed_perturb or self.config.noise_snr_db is not None:
            audio = augment_waveform(audio, rng, self.config.speed_perturb, self.config.noise_snr_db)
        return audio

    def make(self, indices: Plan, micro_step: int, epoch: int, cache: EncoderCache | None, lazily: bool) -> dict[str, Any]:
        """Tensors on the device for ``indices`` (from ``cache`` when given, filling it first when
        ``lazily``); ``_pairs`` keeps the (utterance, target) pairs."""
        pairs = [self.sources[s][i] for s, i in indices]
        self.adapter.epoch = epoch  # per-epoch target choices (timestamps, prompts)
        if cache is not None and lazily:
            todo = cache.missing([u for u, _ in pairs])
            if todo:
                cache.build(todo, self.adapter.encode, utterance_audio, batch_size=len(todo), progress=False,
                            map_fn=self.loader.map)
        if cache is not None:
            examples = [self.adapter.make_example(u, t, encoded=np.array(cache.get(u))) for u, t in pairs]
        else:
            # one generator per example, so augmentation does not depend on thread scheduling
            rank = self.processes.rank
            seeds = np.random.SeedSequence([self.config.seed, micro_step, rank]).spawn(len(pairs))
            audios = self.loader.map(lambda k: self.waveform(pairs[k][0], np.random.default_rng(seeds[k])), range(len(pairs)))
            examples = [self.adapter.make_example(u, t, audio=a) for (u, t), a in zip(pairs, audios)]
        batch = self.adapter.collate(examples)
        if cache is None:
            gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + micro_step * 31 + self.processes.rank)
            batch = self.adapter.augment_batch(batch, gen)
        device = self.processes.device
        return {**{k: v.to(device, non_blocking=True) for k, v in batch.items()}, PAIRS_KEY: pairs}
