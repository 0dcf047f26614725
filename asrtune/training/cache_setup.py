"""Whether a run caches its frozen encoder's outputs, and filling the cache before step 0.

The cache (``encoder_cache.py``) is used when ``--freeze encoder`` holds the encoder fixed,
``--cache`` is on and the adapter has encoder outputs to keep. It is off when the top encoder
layers train from step 0 or input augmentation changes the audio every epoch (both named in
the log and in ``RunResult.cache["reason"]``). With ``--max-train-minutes`` only the evaluation
sets are encoded up front; training utterances enter the cache on first use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from asrtune.data.manifest import Utterance
from asrtune.models.cache import cache_dir
from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.compare import utterance_audio
from asrtune.training.config import TrainConfig
from asrtune.training.distributed import Processes
from asrtune.training.encoder_cache import EncoderCache
from asrtune.training.progress import Progress

ENCODER_OUTPUTS = "encoder-outputs"  # folder of the asrtune cache holding encoder outputs (without --cache-dir)


@dataclass
class CacheUse:
    """The encoder-output cache a run uses (None: it decodes from audio)."""

    cache: EncoderCache | None = None
    lazily: bool = False  # training utterances enter the cache on first use
    info: dict[str, Any] = field(default_factory=lambda: {"used": False})  # RunResult.cache


def why_not_cached(config: TrainConfig, adapter: ModelAdapter, unfreeze_at: int | None) -> str | None:
    """Why this run decodes from audio rather than cached encoder outputs ("" when that needs no
    word: cache off, nothing frozen to cache), or None when it caches."""
    if config.cache == "off" or adapter.cache_shape() is None or config.freeze != "encoder":
        return ""
    if unfreeze_at == 0:
        return "unfrozen from step 0"
    if config.augmenting:
        return "augmentation"
    return None


def set_up_encoder_cache(config: TrainConfig, adapter: ModelAdapter, train: Sequence[Utterance],
                         evaluation: Sequence[Utterance], unfreeze_at: int | None, processes: Processes,
                         say: Callable[[str], None], map_fn: Callable) -> CacheUse:
    """Decide whether to cache encoder outputs, and fill the cache (rank 0 builds, every rank waits)."""
    reason = why_not_cached(config, adapter, unfreeze_at)
    if reason == "unfrozen from step 0":
        say(f"--unfreeze-top-layers {config.unfreeze_top_layers} without --unfreeze-after: the top encoder "
            "layers train from step 0, so the encoder-output cache is off")
    elif reason == "augmentation":
        say("input augmentation is on: encoder-output cache disabled (the frozen encoder reruns every step)")
    if reason is not None:
        return CacheUse(info={"used": False, "reason": reason} if reason else {"used": False})
    root = Path(config.cache_dir) if config.cache_dir else cache_dir() / ENCODER_OUTPUTS
    utts, lazily = [*train, *evaluation], config.max_train_minutes is not None
    if lazily:
        # A time budget should not be spent encoding utterances the run may never reach:
        # the evaluation sets are cached now, training utterances on first use (batches.py).
        utts = list(evaluation)
        say("encoder cache: --max-train-minutes is set, so training utterances are encoded on first use")
    shape, fingerprint = adapter.cache_shape(), adapter.cache_fingerprint()
    todo, build_s = EncoderCache(root, fingerprint, shape).missing(utts), 0.0
    if processes.main and todo:
        build_s = _build(EncoderCache(root, fingerprint, shape), todo, adapter, config, say, map_fn)
    elif processes.main:
        say(f"encoder cache: all {len(utts)} utterances already cached")
    processes.barrier()
    cache = EncoderCache(root, fingerprint, shape)  # re-read the index
    info = {"used": True, "dir": str(cache.dir), "encoded": len(todo) if processes.main else 0,
            "hits": len(utts) - len(todo), "build_s": round(build_s, 2), "split_layer": getattr(adapter, "encoder_split", None)}
    return CacheUse(cache, lazily, info)


def _build(cache: EncoderCache, todo: list[Utterance], adapter: ModelAdapter, config: TrainConfig,
           say: Callable[[str], None], map_fn: Callable) -> float:
    """Encode ``todo`` into ``cache``; returns the seconds it took."""
    say(f"encoder cache: encoding {len(todo)} utterances once ({cache.nbytes(len(todo)) / 1e9:.2f} GB) in {cache.dir}")
    start = time.time()
    progress = Progress("encoder cache", len(todo), "utt", say, config.progress)
    cache.build(todo, adapter.encode, utterance_audio, batch_size=config.eval_batch_size, progress=progress, map_fn=map_fn)
    progress.close()
    seconds = time.time() - start
    say(f"encoder cache: built in {seconds:.0f} s ({len(todo) / seconds:.1f} utts/s)")
    return seconds
