"""The training loop: one ``Trainer`` for every model family, readable top to bottom.

``train(config)`` does, in order:

1. resolve the model, pick its adapter (``adapters/whisper.py``, ``adapters/ctc.py``), freeze;
2. read the manifests, apply the text policy, skip what cannot be trained on (counted in the log);
3. fill the encoder-output cache when the encoder is frozen and nothing augments the input;
4. loop: AdamW with warm-up then linear/cosine decay, gradient accumulation and clipping,
   autocast (bf16/fp16 on CUDA), a divergence guard, dev WER every ``eval_every`` steps with the
   best model kept in ``best/``, early stopping, a resumable ``checkpoint/`` every ``save_every``;
5. write ``final/``, ``learning_curve.png``, optional base-vs-tuned tables and a CTranslate2 copy.

Data parallel: started by ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE`` > 1) the same code
wraps the model in DistributedDataParallel (gloo on CPU, nccl on CUDA); each rank takes its
slice of every global batch, rank 0 alone evaluates and writes.

The learning-rate schedule is a pure function of the step (nanoGPT-style), so "the scheduler
state" in a checkpoint is the step number itself.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asrtune.data.audio import audio_info, load_audio
from asrtune.data.manifest import Utterance, load_manifest
from asrtune.errors import AsrtuneError, ConfigError
from asrtune.fileio import atomic_directory, write_json_atomic
from asrtune.training.augment import augment_waveform
from asrtune.training.config import (
    TrainConfig,
    config_differences,
    save_yaml_config,
)
from asrtune.training.encoder_cache import EncoderCache
from asrtune.training.sampling import epoch_plan, group_by_duration
from asrtune.training.text_policy import apply_text_policy

log = logging.getLogger("asrtune.train")

DEFAULT_EPOCHS = 3  # when neither --max-steps nor --epochs is given
LOSS_EMA = 0.1  # weight of the newest loss in the smoothed loss the divergence guard watches
DIVERGENCE_GRACE_STEPS = 10  # steps before an exploding (finite) loss counts as divergence
# A loss that has fallen near zero (a small domain learnt by heart) can be "4x its best" while
# rising by thousandths of a nat; divergence must also be a real rise, in nats per token.
DIVERGENCE_MIN_RISE_NATS = 0.5
ADAPTERS = {
    "whisper": ("asrtune.training.adapters.whisper", "WhisperAdapter"),
    "ctc": ("asrtune.training.adapters.ctc", "CTCAdapter"),
}


class TrainingDiverged(AsrtuneError):
    """The loss became NaN/inf or exploded; the message names the likely cause."""


@dataclass
class RunResult:
    """What a run produced. ``best_dev_wer`` is None without a dev set."""

    run_dir: str
    steps: int
    epochs: float
    stopped: str  # "max-steps", "epochs", "time-limit", "early-stopping"
    best_dev_wer: float | None = None
    best_step: int | None = None
    final_dev_wer: float | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    eval_results: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(config: TrainConfig) -> RunResult:
    """Run or resume the fine-tuning described by ``config`` (see module docstring)."""
    _check_manifests_exist(config)
    return Trainer(config).run()


def _check_manifests_exist(config: TrainConfig) -> None:
    """Fail before any model loads or run dir is made: a typo should cost a second, not a minute."""
    named = [("train", p) for p in config.train] + [("dev", config.dev)] + [("eval-sets", p) for p in config.eval_sets]
    for option, path in named:
        if path and not Path(path).is_file():
            raise ConfigError(f"--{option} {path}: manifest not found")


# --- helpers the loop uses ---------------------------------------------------------------------


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then decay.

    >>> [round(lr_factor(s, 10, 2, "linear"), 2) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.12]
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress) if progress < 1 else 0.0


def loss_exploded(loss_ema: float, best_ema: float, factor: float) -> bool:
    """Divergence: the smoothed loss is ``factor`` times its best *and* more than
    :data:`DIVERGENCE_MIN_RISE_NATS` above it.

    >>> loss_exploded(2.5, 0.5, 4.0), loss_exploded(0.006, 0.0015, 4.0), loss_exploded(1.5, 0.5, 4.0)
    (True, False, False)
    """
    return loss_ema > factor * best_ema and loss_ema - best_ema > DIVERGENCE_MIN_RISE_NATS


def dev_wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER with the Whisper English normaliser (asrtune.evaluation.metrics)."""
    try:
        from asrtune.evaluation.metrics import corpus_wer
    except ImportError:  # metrics module not built yet: same measure straight from jiwer
        return _fallback_wer(refs, hyps)
    return float(corpus_wer(refs, hyps, normalizer="whisper-en"))


def _fallback_wer(refs: list[str], hyps: list[str]) -> float:
    import re

    import jiwer

    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^\w\s']", " ", s.lower()).split())

    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps) if norm(r)]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def _distributed() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``, initialising torch.distributed under torchrun/accelerate."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _adapter_class(family: str):
    import importlib

    if family not in ADAPTERS:
        raise ConfigError(f"--model: no trainer for model family {family!r} (known: {', '.join(ADAPTERS)})")
    module, name = ADAPTERS[family]
    return getattr(importlib.import_module(module), name)


# --- the trainer ---------------------------------------------------------------------------------


class Trainer:
    """Drives a :class:`~asrtune.training.adapters.base.ModelAdapter` through one run."""

    def __init__(self, config: TrainConfig):
        if config.resume:
            if config.out and Path(config.out).resolve() != Path(config.resume).resolve():
                raise ConfigError(f"--resume {config.resume} and --out {config.out} name different run dirs; give one")
            config.out = config.resume
        self.config = config.validate()
        self.run_dir = Path(config.out)
        self.rank, self.world, self.local_rank = _distributed()
        self.main = self.rank == 0
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.device == "auto":
            self.device = torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(config.device)
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise ConfigError("--device cuda: no CUDA device is available here")
        self._log_file = None
        # Data-loading threads: decoding, resampling and augmenting audio run in C code that
        # releases the GIL (soundfile, soxr, numpy), so threads overlap them without the
        # start-up and pickling costs of worker processes. Features and token ids are made in
        # the training thread (tokenizers are not guaranteed thread-safe).
        self._loader = ThreadPoolExecutor(config.num_workers, thread_name_prefix="asrtune-data") if config.num_workers > 0 else None

    def _map(self, fn, items) -> list:
        """``[fn(x) for x in items]``, on the data-loading threads when ``--num-workers`` > 0."""
        return list(self._loader.map(fn, items)) if self._loader else [fn(x) for x in items]

    # --- logging ------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        """A line for the user (rank 0 only), also appended to RUN_DIR/train.log."""
        if not self.main:
            return
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)
        if self._log_file is not None:
            self._log_file.write(time.strftime("%H:%M:%S ") + message + "\n")
            self._log_file.flush()

    def _metric(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # --- setup ----------------------------------------------------------------------------------

    def _prepare_run_dir(self) -> dict[str, Any] | None:
        """Create or check the run dir; returns the checkpoint state when resuming."""
        cfg = self.config
        ckpt_dir = self._checkpoint_dir()
        if cfg.resume:
            saved = self.run_dir / "config.yaml"
            if not saved.is_file():
                raise ConfigError(f"--resume {self.run_dir}: not a training run dir (no config.yaml)")
            import yaml

            diffs = config_differences(yaml.safe_load(saved.read_text()) or {}, cfg)
            if diffs and not cfg.force:
                raise ConfigError(
                    f"--resume {self.run_dir}: the config differs from the run's ({'; '.join(diffs)}); "
                    "pass --force to continue with the new values"
                )
            if ckpt_dir is None:
                self.say(f"--resume: no checkpoint in {self.run_dir} yet; starting from step 0")
                return None
            return torch.load(ckpt_dir / "state.pt", map_location="cpu", weights_only=False)
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            if (self.run_dir / "config.yaml").exists() and not cfg.force:
                raise ConfigError(
                    f"--out {self.run_dir} already holds a run; use --resume {self.run_dir} to continue it, "
                    "or --force to start over there"
                )
        return None

    def _checkpoint_dir(self) -> Path | None:
        for name in ("checkpoint", ".checkpoint.old"):  # .old survives a kill mid-replace
            path = self.run_dir / name
            if (path / "state.pt").is_file():
                return path
        return None

    def _load_data(self) -> None:
        """Manifests -> (utterance, target text) lists, with skips counted by reason."""
        cfg = self.config
        self.skipped: dict[str, int] = {}
        self.sources: list[list[tuple[Utterance, str]]] = []
        for path in cfg.train:
            kept = self._usable(load_manifest(path), path)
            if not kept:
                raise ConfigError(f"--train {path}: no usable utterances (all skipped: {self.skipped})")
            self.sources.append(kept)
        self.dev: list[tuple[Utterance, str]] = []
        if cfg.dev:
            # dev WER is scored against the references as written (normalised by the metric)
            self.dev = [(u, u.text) for u, _ in self._usable(load_manifest(cfg.dev), cfg.dev)]
            if not self.dev:
                raise ConfigError(f"--dev {cfg.dev}: no usable utterances")
        sizes = ", ".join(f"{Path(p).name}: {len(s)}" for p, s in zip(cfg.train, self.sources))
        self.say(f"train utterances: {sizes}" + (f"; dev: {len(self.dev)}" if self.dev else "; no dev set"))
        if self.skipped:
            self.say("skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())))

    def _usable(self, utts: list[Utterance], path: str) -> list[tuple[Utterance, str]]:
        kept = []
        for u in utts:
            if u.duration <= 0:  # manifests may omit durations: read them from the header
                u.duration = audio_info(u.audio_filepath)[0]
            target = apply_text_policy(u.text, self.config.text_policy)
            reason = self.adapter.skip_reason(u, target)
            if reason:
                key = f"{reason} ({Path(path).name})"
                self.skipped[key] = self.skipped.get(key, 0) + 1
                continue
            kept.append((u, target))
        return kept

    def _plan(self, epoch: int, global_batch: int) -> list[tuple[int, int]]:
        """The epoch's utterance order; with --group-by-duration (default on for CTC, whose
        raw-audio batches pay for padding) consecutive batches hold similar durations."""
        cfg = self.config
        plan = epoch_plan([len(s) for s in self.sources], cfg.weights, epoch, cfg.seed)
        group = cfg.group_by_duration if cfg.group_by_duration is not None else self.adapter.family == "ctc"
        if group:
            durations = [[u.duration for u, _ in source] for source in self.sources]
            plan = group_by_duration(plan, durations, global_batch, epoch, cfg.seed)
        return plan

    def _load_audio(self, utt: Utterance) -> np.ndarray:
        return load_audio(utt.audio_filepath, offset=utt.offset, duration=utt.duration or None)

    def _setup_cache(self) -> None:
        """Decide whether to cache encoder outputs, and fill the cache (rank 0 builds)."""
        cfg = self.config
        self.cache: EncoderCache | None = None
        self.cache_info: dict[str, Any] = {"used": False}
        shape = self.adapter.cache_shape()
        if cfg.cache == "off" or shape is None or cfg.freeze != "encoder":
            return
        if cfg.augmenting:
            self.say("input augmentation is on: encoder-output cache disabled (the frozen encoder reruns every step)")
            self.cache_info["reason"] = "augmentation"
            return
        from asrtune.models.cache import cache_dir

        root = Path(cfg.cache_dir) if cfg.cache_dir else cache_dir() / "encoder-outputs"
        self.cache = EncoderCache(root, self.adapter.cache_fingerprint(), shape)
        utts = [u for src in self.sources for u, _ in src] + [u for u, _ in self.dev]
        todo = self.cache.missing(utts)
        if self.main and todo:
            self.say(f"encoder cache: encoding {len(todo)} utterances once ({self.cache.nbytes(len(todo)) / 1e9:.2f} GB) in {self.cache.dir}")
            start = time.time()
            self.cache.build(todo, self.adapter.encode, self._load_audio, batch_size=cfg.eval_batch_size, progress=cfg.progress,
                             map_fn=self._map)
            self.say(f"encoder cache: built in {time.time() - start:.0f} s")
        elif self.main:
            self.say(f"encoder cache: all {len(utts)} utterances already cached in {self.cache.dir}")
        _barrier(self.world)
        self.cache = EncoderCache(root, self.adapter.cache_fingerprint(), shape)  # re-read the index
        self.cache_info = {"used": True, "dir": str(self.cache.dir), "encoded": len(todo) if self.main else 0, "hits": len(utts) - len(todo)}

    # --- batches ----------------------------------------------------------------------------------

    def _waveform(self, utt: Utterance, rng: np.random.Generator) -> np.ndarray:
        audio = self._load_audio(utt)
        if self.config.speed_perturb or self.config.noise_snr_db is not None:
            audio = augment_waveform(audio, rng, self.config.speed_perturb, self.config.noise_snr_db)
        return audio

    def _batch(self, pairs: list[tuple[int, int]], use_cache: bool, step: int) -> dict[str, torch.Tensor]:
        items = [self.sources[s][i] for s, i in pairs]  # (utterance, target text)
        if use_cache:
            examples = [self.adapter.make_example(u, t, encoded=np.array(self.cache.get(u))) for u, t in items]
        else:
            # one generator per example, so augmentation does not depend on thread scheduling
            seeds = np.random.SeedSequence([self.config.seed, step, self.rank]).spawn(len(items))
            audios = self._map(lambda k: self._waveform(items[k][0], np.random.default_rng(seeds[k])), range(len(items)))
            examples = [self.adapter.make_example(u, t, audio=a) for (u, t), a in zip(items, audios)]
        batch = self.adapter.collate(examples)
        if not use_cache:
            gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step * 31 + self.rank)
            batch = self.adapter.augment_batch(batch, gen)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    # --- evaluation -----------------------------------------------------------------------------

    def evaluate(self, use_cache: bool) -> float:
        """Greedy dev WER (normalised), from cached encoder outputs when they are valid."""
        refs = [u.text for u, _ in self.dev]
        if use_cache:
            encoded = np.stack([self.cache.get(u) for u, _ in self.dev])
            hyps = self.adapter.transcribe(encoded=encoded, batch_size=self.config.eval_batch_size)
        else:
            if self._dev_audio is None:
                self._dev_audio = self._map(self._load_audio, [u for u, _ in self.dev])
            hyps = self.adapter.transcribe(audios=self._dev_audio, batch_size=self.config.eval_batch_size)
        return dev_wer(refs, hyps)

    # --- saving -----------------------------------------------------------------------------------

    def _save_model(self, name: str, info: dict[str, Any]) -> None:
        with atomic_directory(self.run_dir / name) as tmp:
            self.adapter.save(tmp)
            write_json_atomic(tmp / "asrtune_training.json", {"base_model": self.config.model, **info})

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        with atomic_directory(self.run_dir / "checkpoint") as tmp:
            torch.save(state, tmp / "state.pt")

    def _amp(self) -> tuple[torch.dtype | None, bool]:
        """(autocast dtype or None, use GradScaler)."""
        p = self.config.precision
        if p == "fp32" or (p == "auto" and self.device.type != "cuda"):
            return None, False
        if p == "auto":
            p = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return (torch.bfloat16, False) if p == "bf16" else (torch.float16, self.device.type == "cuda")

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> RunResult:
        cfg = self.config
        run_start = time.time()
        state = self._prepare_run_dir() if self.main else None
        _barrier(self.world)
        if not self.main and cfg.resume:
            ckpt = self._checkpoint_dir()
            state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False) if ckpt else None
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.run_dir / "train.log", "a", encoding="utf-8")
            save_yaml_config(cfg, self.run_dir / "config.yaml")
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

        # 1. model, adapter, freezing
        from asrtune.models import resolve_model

        resolved = resolve_model(cfg.model)
        self.adapter = _adapter_class(resolved.family).from_resolved(resolved, cfg)
        if cfg.freeze == "auto":  # config.yaml keeps "auto"; the log line names the preset used
            cfg.freeze = self.adapter.DEFAULT_FREEZE
        self.adapter.apply_freeze(cfg.freeze)
        self.adapter.model.to(self.device)
        trainable, total = self.adapter.trainable_parameter_count()
        self.say(
            f"model {cfg.model} ({resolved.family}, {resolved.source}); freeze={cfg.freeze}"
            + (f", LoRA r={cfg.lora_r}" if cfg.adapter == "lora" else "")
            + f": {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.1f} %)"
        )

        # 2. data, 3. cache
        self._load_data()
        self._dev_audio: list[np.ndarray] | None = None
        self._setup_cache()

        # optimiser and schedule
        groups = self.adapter.parameter_groups(cfg)
        for g in groups:
            g["base_lr"] = g["lr"]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        amp_dtype, use_scaler = self._amp()
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        global_batch = cfg.batch_size * self.world
        epoch_len = len(epoch_plan([len(s) for s in self.sources], cfg.weights, 0, cfg.seed))
        steps_per_epoch = max(1, math.ceil(epoch_len / (global_batch * cfg.grad_accum)))
        total_steps = cfg.max_steps or math.ceil((cfg.epochs or DEFAULT_EPOCHS) * steps_per_epoch)

        # resume
        step, epoch, position = 0, 0, 0
        best_wer, best_step, evals_since_best, elapsed = None, None, 0, 0.0
        loss_ema, min_ema = None, None
        unfrozen = False
        if state is not None:
            if cfg.unfreeze_after is not None and state["step"] >= cfg.unfreeze_after:
                self.adapter.unfreeze_top_layers(cfg.unfreeze_top_layers)
                unfrozen = True
            self.adapter.load_trainable_state_dict(state["trainable"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            step, epoch, position = state["step"], state["epoch"], state["position"]
            best_wer, best_step, evals_since_best = state["best_wer"], state["best_step"], state["evals_since_best"]
            elapsed, loss_ema, min_ema = state["elapsed"], state["loss_ema"], state["min_ema"]
            random.setstate(state["rng"]["python"])
            np.random.set_state(state["rng"]["numpy"])
            torch.set_rng_state(state["rng"]["torch"])
            if self.main:
                self._truncate_metrics(step)
            self.say(f"resumed from step {step} (epoch {epoch}, position {position}); best dev WER so far: {_pct(best_wer)}")
        self.say(
            f"training {total_steps} steps ({steps_per_epoch} per epoch of {epoch_len} utterances), batch {cfg.batch_size}"
            + (f" x {self.world} processes" if self.world > 1 else "")
            + (f" x {cfg.grad_accum} accumulation" if cfg.grad_accum > 1 else "")
            + f", lr {cfg.lr:g} ({cfg.lr_schedule}, {cfg.warmup_steps} warm-up), device {self.device}"
            + (f", autocast {amp_dtype}" if amp_dtype else "")
        )
        if self.main:
            self._metric({"event": "start", "step": step, "trainable_parameters": trainable, "total_parameters": total, "total_steps": total_steps, "world_size": self.world, "cache": self.cache_info})

        model: nn.Module = self.adapter.model
        ddp_model = self._wrap(model)
        model.train()

        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not (self.main and cfg.progress), dynamic_ncols=True)
        plan = self._plan(epoch, global_batch)
        stopped = "max-steps" if cfg.max_steps else "epochs"
        window_utts, window_time, window_loss, window_n = 0, 0.0, 0.0, 0
        epoch_utts, epoch_time = 0, 0.0
        loop_start = time.time() - elapsed
        last_wer = None

        while step < total_steps:
            # gradual unfreezing: from here on the top encoder layers train and the cache is stale
            if cfg.unfreeze_after is not None and not unfrozen and step >= cfg.unfreeze_after:
                self.adapter.unfreeze_top_layers(cfg.unfreeze_top_layers)
                unfrozen = True
                ddp_model = self._wrap(model)
                self.say(f"step {step}: unfroze the top {cfg.unfreeze_top_layers} encoder layers (lr {cfg.encoder_lr or cfg.lr / 10:g}); encoder cache no longer used")
            use_cache = self.cache is not None and not unfrozen
            t0 = time.time()
            lr_now = lr_factor(step, total_steps, cfg.warmup_steps, cfg.lr_schedule)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * lr_now
            step_loss, step_utts = 0.0, 0
            for micro in range(cfg.grad_accum):
                usable = len(plan) - len(plan) % self.world  # every rank gets the same number of utterances
                if position >= usable:
                    self._metric_epoch(epoch, epoch_utts, epoch_time)
                    epoch_utts, epoch_time = 0, 0.0
                    epoch, position = epoch + 1, 0
                    plan = self._plan(epoch, global_batch)
                take = min(global_batch, len(plan) - position)
                per_rank = max(1, take // self.world)
                mine = plan[position + self.rank * per_rank : position + (self.rank + 1) * per_rank]
                position += per_rank * self.world
                batch = self._batch(mine, use_cache, step * cfg.grad_accum + micro)
                sync = micro == cfg.grad_accum - 1
                with self._no_sync(ddp_model, sync), torch.autocast(self.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    loss = self.adapter.loss(ddp_model, batch)
                scaler.scale(loss / cfg.grad_accum).backward()
                step_loss += float(loss.detach()) / cfg.grad_accum
                step_utts += len(mine) * self.world

            # divergence guard: NaN/inf, or a smoothed loss far above its best
            if self.world > 1:
                step_loss = self._all_mean(step_loss)
            if not math.isfinite(step_loss):
                self._diverged(step, step_loss, "the loss became " + str(step_loss))
            loss_ema = step_loss if loss_ema is None else (1 - LOSS_EMA) * loss_ema + LOSS_EMA * step_loss
            min_ema = loss_ema if min_ema is None else min(min_ema, loss_ema)
            if step >= DIVERGENCE_GRACE_STEPS and loss_exploded(loss_ema, min_ema, cfg.divergence_factor):
                self._diverged(step, step_loss, f"the smoothed loss {loss_ema:.3g} exploded past {cfg.divergence_factor:g}x its best ({min_ema:.3g})")

            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"] if p.grad is not None], cfg.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            dt = time.time() - t0
            window_utts += step_utts
            window_time += dt
            window_loss += step_loss
            window_n += 1
            epoch_utts += step_utts
            epoch_time += dt
            elapsed = time.time() - loop_start
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{cfg.lr * lr_now:.2e}", utts_s=f"{window_utts / max(window_time, 1e-9):.1f}")
            if step % cfg.log_every == 0 or step == total_steps:
                self._metric({"step": step, "epoch": epoch, "loss": window_loss / window_n, "lr": cfg.lr * lr_now, "grad_norm": float(grad_norm), "utts_per_s": window_utts / max(window_time, 1e-9), "elapsed_s": round(elapsed, 2)})
                window_utts, window_time, window_loss, window_n = 0, 0.0, 0.0, 0

            time_up = cfg.max_train_minutes is not None and elapsed >= cfg.max_train_minutes * 60
            last = step == total_steps or time_up
            if self.dev and (step % cfg.eval_every == 0 or last):
                wer = None
                if self.main:
                    t_eval = time.time()
                    wer = self.evaluate(use_cache)
                    model.train()
                    last_wer = wer
                    improved = best_wer is None or wer < best_wer
                    if improved:
                        best_wer, best_step, evals_since_best = wer, step, 0
                        self._save_model("best", {"step": step, "dev_wer": wer, "dev": cfg.dev})
                    else:
                        evals_since_best += 1
                    self._metric({"step": step, "dev_wer": wer, "best_dev_wer": best_wer, "eval_s": round(time.time() - t_eval, 2)})
                    self.say(f"step {step}: dev WER {_pct(wer)} (best {_pct(best_wer)} at step {best_step})" + (" - saved best/" if improved else ""))
                evals_since_best = self._broadcast_int(evals_since_best)
                if cfg.patience is not None and evals_since_best >= cfg.patience:
                    stopped, last = "early-stopping", True
                    self.say(f"early stopping: no dev WER improvement in {cfg.patience} evaluations")
            if time_up:
                stopped = "time-limit"
                self.say(f"time limit of {cfg.max_train_minutes:g} min reached at step {step}")
            if self.main and (step % cfg.save_every == 0 or last):
                self._save_checkpoint({
                    "step": step, "epoch": epoch, "position": position, "trainable": self.adapter.trainable_state_dict(),
                    "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "best_wer": best_wer,
                    "best_step": best_step, "evals_since_best": evals_since_best, "elapsed": elapsed,
                    "loss_ema": loss_ema, "min_ema": min_ema,
                    "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
                })
            if last:
                break
        bar.close()
        if epoch_utts:
            self._metric_epoch(epoch, epoch_utts, epoch_time, partial=position < len(plan) - len(plan) % self.world)

        # 5. outputs
        result = RunResult(
            run_dir=str(self.run_dir), steps=step, epochs=round(epoch + position / max(1, len(plan)), 3), stopped=stopped,
            best_dev_wer=best_wer, best_step=best_step, final_dev_wer=last_wer, trainable_parameters=trainable,
            total_parameters=total, skipped=self.skipped, cache=self.cache_info,
        )
        if self.main:
            self._save_model("final", {"step": step, "dev_wer": last_wer, "dev": cfg.dev})
            if not (self.run_dir / "best").exists():  # no dev set: final is the best we know
                self._save_model("best", {"step": step, "dev_wer": None})
            from asrtune.training.curves import plot_learning_curve

            plot_learning_curve(self.run_dir / "metrics.jsonl", self.run_dir / "learning_curve.png")
            if cfg.eval_sets:
                from asrtune.training.compare import compare_base_and_tuned

                result.eval_results = compare_base_and_tuned(self, resolved)
            if cfg.export_ct2:
                self._export_ct2()
            write_json_atomic(self.run_dir / "result.json", result.to_dict())
            self.say(
                f"done: {step} steps in {(time.time() - run_start) / 60:.1f} min ({stopped}); best dev WER {_pct(best_wer)}"
                f" at step {best_step}; models in {self.run_dir / 'best'} and {self.run_dir / 'final'}"
            )
            if self._log_file:
                self._log_file.close()
        if self._loader:
            self._loader.shutdown()
        _barrier(self.world)
        return result

    # --- small pieces of the loop --------------------------------------------------------------------

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.world <= 1:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids, find_unused_parameters=False)

    def _no_sync(self, ddp_model: nn.Module, sync: bool):
        import contextlib

        if self.world > 1 and not sync:
            return ddp_model.no_sync()
        return contextlib.nullcontext()

    def _all_mean(self, value: float) -> float:
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def _broadcast_int(self, value: int) -> int:
        if self.world <= 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.long, device=self.device if self.device.type == "cuda" else "cpu")
        dist.broadcast(t, src=0)
        return int(t.item())

    def _metric_epoch(self, epoch: int, utts: int, seconds: float, partial: bool = False) -> None:
        if utts:
            self._metric({"event": "epoch", "epoch": epoch, "utts": utts, "train_s": round(seconds, 2), "utts_per_s": utts / max(seconds, 1e-9), "partial": partial})
            self.say(f"epoch {epoch}{' (partial)' if partial else ''}: {utts} utterances at {utts / max(seconds, 1e-9):.1f} utts/s")

    def _truncate_metrics(self, step: int) -> None:
        """Drop metric lines written after the checkpoint (and a torn last line after a kill)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("step", 0) <= step:
                keep.append(line)
        from asrtune.fileio import write_text_atomic

        write_text_atomic(path, "".join(line + "\n" for line in keep))

    def _diverged(self, step: int, loss: float, what: str) -> None:
        ckpt = self._checkpoint_dir()
        best = self.run_dir / "best"
        saved = ([f"the last good checkpoint ({ckpt})"] if ckpt else []) + ([str(best)] if best.exists() else [])
        kept = " and ".join(saved) + " kept" if saved else "no checkpoint was written yet"
        self._metric({"event": "diverged", "step": step, "loss": loss if math.isfinite(loss) else str(loss)})
        raise TrainingDiverged(
            f"training diverged at step {step}: {what}. Likely cause: the learning rate ({self.config.lr:g}) is too high "
            f"for fine-tuning - try --lr 1e-5 to 3e-5 (or a longer --warmup-steps); {kept}"
        )

    def _export_ct2(self) -> None:
        from asrtune.models import hf_to_ct2

        dst = self.run_dir / "best-ct2"
        self.say(f"exporting a CTranslate2 int8 copy of best/ to {dst}")
        hf_to_ct2(self.run_dir / "best", dst, quantization="int8")


def _pct(wer: float | None) -> str:
    return "n/a" if wer is None else f"{100 * wer:.2f} %"
