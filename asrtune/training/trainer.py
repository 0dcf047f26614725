"""The training loop: one ``Trainer`` for every model family, readable top to bottom.

:meth:`Trainer.run` is the whole story, one call per phase:

1. check the run dir, resolve the model, check the options for its family, build its adapter
   (``adapters/whisper.py``, ``adapters/ctc.py``) and freeze - before anything is written;
2. read the manifests, apply the text policy, skip what cannot be trained on (counted in the log);
3. write the run dir, fill the encoder-output cache when the encoder is frozen and nothing
   augments the input, build the optimiser, resume from ``checkpoint/`` (one :class:`TrainState`);
4. loop over :meth:`Trainer.train_step`: AdamW with warm-up then linear/cosine decay, gradient
   accumulation and clipping, autocast (bf16/fp16 on CUDA), a divergence guard, dev WER every
   ``eval_every`` steps with the best model kept in ``best/``, early stopping, a resumable
   ``checkpoint/`` every ``save_every``;
5. :meth:`Trainer.finish`: ``final/``, ``learning_curve.png``, base-vs-tuned tables, ``--export``
   copies of ``best/`` (``best-ct2/``, ``best-ggml/``, ...: ``training/export.py``).

Every model folder (``best/``, ``final/``, ``best-FORMAT/``) gets a model card (``README.md``,
``model_card.py``); ``best/``'s is rewritten at the end with the ``--eval-sets`` results. With
``--report-to tensorboard|mlflow`` every ``metrics.jsonl`` point (log steps, evaluations) and a
few decoded dev examples also go to the tracker (``tracking.py``), closed at the end or on failure.

Data parallel: started by ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE`` > 1) the same code
wraps the model in DistributedDataParallel (gloo on CPU, nccl on CUDA); each rank takes its
slice of every global batch, rank 0 alone evaluates and writes.

The learning-rate schedule is a pure function of the step (nanoGPT-style), so "the scheduler
state" in a checkpoint is the step number itself.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from asrtune.data.manifest import Utterance, load_manifest
from asrtune.data.audio import audio_info
from asrtune.errors import ConfigError
from asrtune.fileio import atomic_directory, write_json_atomic
from asrtune.models.cache import cache_dir
from asrtune.training.adapters import adapter_class
from asrtune.training.adapters.base import ModelAdapter, module_digest
from asrtune.training.augment import augment_waveform
from asrtune.training.compare import RunDecoding, compare_base_and_tuned, score, utterance_audio
from asrtune.training.config import AUTO as AUTO_MERGE
from asrtune.training.config import TrainConfig, save_yaml_config
from asrtune.training.distributed import Processes, distributed
from asrtune.training.divergence import TrainingDiverged, diverged, loss_exploded, watch_loss  # noqa: F401 (re-exported)
from asrtune.training.encoder_cache import EncoderCache
from asrtune.training.outcome import (DEFAULT_MERGE_ALPHAS, MERGE_AFTER_REFUSAL, MERGE_REQUESTED, best_holds,
                                      guard_allows, outcome_lines)
from asrtune.training.outcome import pct as _pct
from asrtune.training.export import check_exports
from asrtune.training.preflight import check_manifests, check_run_dir
from asrtune.training.progress import Progress
from asrtune.training.regularisers import Regularisers
from asrtune.training.replay import replay_utterances, replay_weights
from asrtune.training.result import RunResult
from asrtune.training.sampling import epoch_plan, group_by_duration
from asrtune.training.schedule import lr_factor, total_steps
from asrtune.training.state import TrainState, restore_checkpoint, save_checkpoint
from asrtune.training.text_policy import apply_text_policy
from asrtune.training.run_log import Meter, RunLog
from asrtune.training.tracking import check_tracker, examples_table, make_tracker
from asrtune.training.untuned_eval import (
    FOLDER, StartingHypotheses, decoding_settings, hypotheses_key, load_hypotheses, save_hypotheses,
)

Pair = tuple[Utterance, str]  # an utterance and its training target text


def train(config: TrainConfig, on_step: Callable[["Trainer"], None] | None = None) -> RunResult:
    """Run or resume the fine-tuning described by ``config`` (see module docstring).

    ``on_step(trainer)`` is called after every optimiser step and its checkpoint (tests stop a
    run there: raising from it leaves the run as a kill would)."""
    check_manifests(config)
    return Trainer(config, on_step).run()


class Trainer:
    """Drives a :class:`~asrtune.training.adapters.base.ModelAdapter` through one run."""

    def __init__(self, config: TrainConfig, on_step: Callable[["Trainer"], None] | None = None):
        if config.resume:
            if config.out and Path(config.out).resolve() != Path(config.resume).resolve():
                raise ConfigError(f"--resume {config.resume} and --out {config.out} name different run dirs; give one")
            config.out = config.resume
        self.config = config.validate()
        self.requested_freeze = config.freeze  # config.yaml keeps "auto"; build_model resolves it
        self.on_step = on_step
        self.run_dir = Path(config.out)
        self.rank, self.world, self.local_rank = distributed()
        self.main = self.rank == 0
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = self._device()
        self.processes = Processes(self.rank, self.world, self.device)
        # Data-loading threads: decoding, resampling and augmenting audio run in C code that
        # releases the GIL (soundfile, soxr, numpy), so threads overlap them without the
        # start-up and pickling costs of worker processes. Features and token ids are made in
        # the training thread (tokenizers are not guaranteed thread-safe).
        self.loader = ThreadPoolExecutor(config.num_workers, thread_name_prefix="asrtune-data") if config.num_workers > 0 else None
        self.log = RunLog(self.run_dir, self.main)
        self.run_start = time.time()
        self.resolved: Any = None
        self.adapter: ModelAdapter | None = None
        self.ddp_model: nn.Module | None = None
        self.sources: list[list[Pair]] = []  # the --train manifests, then the --replay-text renderings
        self.weights: list[float] | None = None  # sampling weights of the sources (--weights, --replay-share)
        self.added: list[Pair] = []  # examples the adapter added to the first source (no-speech clips)
        self.dev: list[Pair] = []
        self.dev_audio: list[np.ndarray] | None = None
        self.guard: list[Pair] = []  # --guard-dev utterances
        self.guard_audio: list[np.ndarray] | None = None
        self.guard_last: float | None = None
        self._start_weights: str | None = None  # digest of the weights evaluated at step 0
        # the step-0 hypotheses, for the --eval-sets comparison (with --cache off none are read back)
        self.step_zero = StartingHypotheses(self._hypotheses_root() if config.cache != "off" else None)
        self.base_weights: dict[str, torch.Tensor] = {}  # --merge-alphas: the base values of what may train
        self.regularisers = Regularisers()  # --l2-sp, --distill-base: built with the model
        self.skipped: dict[str, int] = {}
        self.cache: EncoderCache | None = None
        self.cache_lazily = False  # training utterances enter the cache on first use
        self.cache_info: dict[str, Any] = {"used": False}
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.amp_dtype: torch.dtype | None = None
        self.global_batch = config.batch_size * self.world
        self.epoch_len = self.steps_per_epoch = self.total_steps = 0
        self.state = TrainState()
        self.plan: list[tuple[int, int]] = []
        self.stopped: str | None = None
        self.log_meter, self.epoch_meter = Meter(), Meter()
        self.progress: Progress | None = None
        self.dev_hyps: list[str] = []  # the last dev evaluation's hypotheses
        self.data_stats: dict[str, dict[str, Any]] | None = None  # manifest -> ManifestStats.to_dict(), for the cards

    def _device(self) -> torch.device:
        if self.config.device == "auto":
            return torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.config.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here")
        return device

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> RunResult:
        checkpoint = check_run_dir(self.config, self.run_dir, self.log.say)  # nothing is written until every check has passed
        check_tracker(self.config.report_to)
        check_exports(self.config.export_formats())
        self.build_model()
        self.load_data()
        created = self.create_run_dir()
        try:
            self.setup_cache()
            self.build_optimizer()
            self.resume(checkpoint)
            if self.main:
                self.log.tracker = make_tracker(self.config.report_to, self.run_dir, asdict(self.config))
        except BaseException:
            if created:  # a fresh run that never started: leave no half-made run dir behind
                self.log.close()
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        try:
            self.unfreeze_from_start()
            self.announce()
            self.loop()
            result = self.finish()
        except BaseException:
            self.log.tracker.close(failed=True)  # the curves up to the failure stay readable
            raise
        self.log.tracker.close()
        return result

    def loop(self) -> None:
        """Steps until a stop condition; dev evaluation and checkpoints on their schedules."""
        cfg = self.config
        self.adapter.model.train()
        self.progress = Progress("train", self.total_steps, "step", self.log.say, self.main and cfg.progress,
                                 initial=self.state.step, elapsed_s=self.state.elapsed_s,
                                 budget_s=cfg.max_train_minutes * 60 if cfg.max_train_minutes else None)
        self.plan = self._plan(self.state.epoch)
        if self.guard:  # the base model is the first candidate for best/ (and sets the guard's base WER)
            self.evaluate_guard_base()
        while self.stopped is None:
            self.maybe_unfreeze()
            self.train_step()
            self.stopped = self.stop_reason()
            if self.dev and (self.state.step % cfg.eval_every == 0 or self.stopped):
                self.evaluate_dev()
                if cfg.patience is not None and self.state.evals_since_best >= cfg.patience:
                    self.log.say(f"early stopping: no dev WER improvement in {cfg.patience} evaluations")
                    self.stopped = self.stopped or "early-stopping"
            if self.main and (self.state.step % cfg.save_every == 0 or self.stopped):
                save_checkpoint(self.run_dir, self.state, self.adapter, self.optimizer, self.scaler)
            if self.on_step is not None:
                self.on_step(self)
        self.progress.close()
        self._end_epoch(partial=self.state.position < self._usable_plan_length())

    def stop_reason(self) -> str | None:
        cfg = self.config
        if cfg.max_train_minutes is not None and self.state.elapsed_s >= cfg.max_train_minutes * 60:
            self.log.say(f"time limit of {cfg.max_train_minutes:g} min reached at step {self.state.step}")
            return "time-limit"
        if self.state.step >= self.total_steps:
            return "max-steps" if cfg.max_steps else "epochs"
        return None

    # --- setup (nothing written) ------------------------------------------------------------------

    def build_model(self) -> None:
        """Resolve the model, refuse options its family ignores, load its adapter and freeze."""
        from asrtune.models import resolve_model

        cfg = self.config
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.resolved = resolve_model(cfg.model)
        if cfg.export_formats() and self.resolved.family != "whisper":
            raise ConfigError(f"--export {','.join(cfg.export_formats())}: the export formats are for Whisper models; "
                              f"{cfg.model} is a {self.resolved.family} model")
        family = adapter_class(self.resolved.family)
        family.check_config(cfg)
        self.adapter = family.from_resolved(self.resolved, cfg)
        if cfg.freeze == "auto":  # the log line names the preset used
            cfg.freeze = self.adapter.DEFAULT_FREEZE
        self.adapter.apply_freeze(cfg.freeze)
        self.adapter.top_layer_parameters(self._unfreeze_layers())  # checks K against the encoder depth
        if cfg.may_merge:  # before any resume or step: the base model's weights
            self.base_weights = self._trainable_weights()
        self.adapter.model.to(self.device)
        may_train = {id(p) for p in self.adapter.top_layer_parameters(self._unfreeze_layers())}
        self.regularisers = Regularisers.build(cfg, self.adapter, [p for p in self.adapter.model.parameters()
                                                                   if p.requires_grad or id(p) in may_train])
        self.ddp_model = self.processes.wrap(self.adapter.model)

    def _unfreeze_layers(self) -> int:
        return self.config.unfreeze_top_layers if self.config.freeze == "encoder" else 0

    def _unfreeze_at(self) -> int | None:
        """The step the top encoder layers unfreeze at: ``--unfreeze-after``, or 0 when only K is given."""
        if not self._unfreeze_layers():
            return None
        return self.config.unfreeze_after if self.config.unfreeze_after is not None else 0

    def load_data(self) -> None:
        """Manifests -> (utterance, target text) lists, with skips counted by reason."""
        cfg = self.config
        for path in cfg.train:
            kept = self._usable(load_manifest(path), path)
            if not kept:
                raise ConfigError(f"--train {path}: no usable utterances (all skipped: {self.skipped})")
            self.sources.append(kept)
        self.added = self.adapter.prepare_training(self.sources)  # Whisper: no-speech clips
        self.sources[0] += self.added
        self.weights = cfg.weights
        if cfg.replay_text:  # general English, spoken by eSpeak, at --replay-share of each epoch
            replay = self._usable(replay_utterances(cfg.replay_text, self._cache_root(), cfg.seed), cfg.replay_text)
            if not replay:
                raise ConfigError(f"--replay-text {cfg.replay_text}: no usable utterances (all skipped: {self.skipped})")
            self.weights = replay_weights(cfg.weights, [len(s) for s in self.sources], cfg.replay_share)
            self.sources.append(replay)
        if cfg.dev:
            # dev WER is scored against the references as written (normalised by the metric)
            self.dev = [(u, u.text) for u, _ in self._usable(load_manifest(cfg.dev), cfg.dev)]
            if not self.dev:
                raise ConfigError(f"--dev {cfg.dev}: no usable utterances")
        if cfg.guard_dev:
            self.guard = [(u, u.text) for u, _ in self._usable(load_manifest(cfg.guard_dev), cfg.guard_dev)]
            if not self.guard:
                raise ConfigError(f"--guard-dev {cfg.guard_dev}: no usable utterances")
        self.epoch_len = len(epoch_plan([len(s) for s in self.sources], self.weights, 0, cfg.seed))
        self.steps_per_epoch = max(1, math.ceil(self.epoch_len / (self.global_batch * cfg.grad_accum)))
        self.total_steps = total_steps(cfg.max_steps, cfg.epochs, self.steps_per_epoch)

    def _usable(self, utts: list[Utterance], path: str) -> list[Pair]:
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

    # --- setup (writing) --------------------------------------------------------------------------

    def create_run_dir(self) -> bool:
        """Write config.yaml and open train.log (rank 0); True when this call created the dir."""
        if not self.main:
            return False
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log.open()
        save_yaml_config(dataclasses.replace(self.config, freeze=self.requested_freeze), self.run_dir / "config.yaml")
        sizes = ", ".join(f"{Path(p).name}: {len(s)}" for p, s in zip(self.config.train, self.sources))
        self.log.say(f"train utterances: {sizes}" + (f" (with {self.adapter.describe_added(self.added)})" if self.added else "")
                 + (f"; dev: {len(self.dev)}" if self.dev else "; no dev set"))
        if self.skipped:
            self.log.say("skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())))
        return created

    def setup_cache(self) -> None:
        """Decide whether to cache encoder outputs, and fill the cache (rank 0 builds)."""
        cfg = self.config
        shape = self.adapter.cache_shape()
        if cfg.cache == "off" or shape is None or cfg.freeze != "encoder":
            return
        if self._unfreeze_at() == 0:
            self.log.say(f"--unfreeze-top-layers {cfg.unfreeze_top_layers} without --unfreeze-after: the top encoder "
                     "layers train from step 0, so the encoder-output cache is off")
            self.cache_info["reason"] = "unfrozen from step 0"
            return
        if cfg.augmenting:
            self.log.say("input augmentation is on: encoder-output cache disabled (the frozen encoder reruns every step)")
            self.cache_info["reason"] = "augmentation"
            return
        root = Path(cfg.cache_dir) if cfg.cache_dir else cache_dir() / "encoder-outputs"
        utts = [u for src in self.sources for u, _ in src] + [u for u, _ in self.dev + self.guard]
        if cfg.max_train_minutes is not None:
            # A time budget should not be spent encoding utterances the run may never reach:
            # the evaluation sets are cached now, training utterances on first use (_batch).
            utts = [u for u, _ in self.dev + self.guard]
            self.cache_lazily = True
            self.log.say("encoder cache: --max-train-minutes is set, so training utterances are encoded on first use")
        todo = EncoderCache(root, self.adapter.cache_fingerprint(), shape).missing(utts)
        if self.main and todo:
            self._build_cache(EncoderCache(root, self.adapter.cache_fingerprint(), shape), todo)
        elif self.main:
            self.log.say(f"encoder cache: all {len(utts)} utterances already cached")
        self.processes.barrier()
        self.cache = EncoderCache(root, self.adapter.cache_fingerprint(), shape)  # re-read the index
        self.cache_info = {"used": True, "dir": str(self.cache.dir), "encoded": len(todo) if self.main else 0,
                           "hits": len(utts) - len(todo), "split_layer": getattr(self.adapter, "encoder_split", None)}

    def _build_cache(self, cache: EncoderCache, todo: list[Utterance]) -> None:
        self.log.say(f"encoder cache: encoding {len(todo)} utterances once ({cache.nbytes(len(todo)) / 1e9:.2f} GB) in {cache.dir}")
        start = time.time()
        progress = Progress("encoder cache", len(todo), "utt", self.log.say, self.config.progress)
        cache.build(todo, self.adapter.encode, utterance_audio, batch_size=self.config.eval_batch_size,
                    progress=progress, map_fn=self._map)
        progress.close()
        self.log.say(f"encoder cache: built in {time.time() - start:.0f} s")

    def build_optimizer(self) -> None:
        """AdamW over the adapter's parameter groups (each remembers its base lr), and the scaler."""
        groups = self.adapter.parameter_groups(self.config)
        for g in groups:
            g["base_lr"] = g["lr"]
        self.optimizer = torch.optim.AdamW(groups, lr=self.config.lr, betas=(0.9, 0.98), eps=1e-6)
        self.amp_dtype, use_scaler = self._amp()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    def resume(self, checkpoint: dict[str, Any] | None) -> None:
        """Restore the whole :class:`TrainState` (+ weights, optimiser, scaler) from a checkpoint."""
        if checkpoint is None:
            return
        if checkpoint["state"]["unfrozen"]:  # the saved weights include the unfrozen layers
            self.unfreeze()
        self.state = restore_checkpoint(checkpoint, self.adapter, self.optimizer, self.scaler)
        if self.main:
            self.log.truncate_metrics(self.state.step)
        s = self.state
        self.log.say(f"resumed from step {s.step} (epoch {s.epoch}, position {s.position}); best dev WER so far: {_pct(s.best_wer)}")

    def unfreeze_from_start(self) -> None:
        """``--unfreeze-top-layers K`` without ``--unfreeze-after``: the top layers train from the
        first step, so they open before the run is announced (its parameter count includes them)."""
        if self._unfreeze_at() == 0 and not self.state.unfrozen:
            self.unfreeze()

    def announce(self) -> None:
        cfg = self.config
        trainable, total = self.adapter.trainable_parameter_count()
        opened = ""
        if self.state.unfrozen:
            opened = f" + top {cfg.unfreeze_top_layers} encoder layers (lr {cfg.encoder_lr or cfg.lr / 10:g})"
            opened += " from step 0" if self._unfreeze_at() == 0 else ""
        self.log.say(
            f"model {cfg.model} ({self.resolved.family}, {self.resolved.source}); freeze={cfg.freeze}{opened}"
            + (f", LoRA r={cfg.lora_r}" if cfg.adapter == "lora" else "")
            + f": {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.1f} %)"
        )
        self.log.say(
            f"training {self.total_steps} steps ({self.steps_per_epoch} per epoch of {self.epoch_len} utterances), batch {cfg.batch_size}"
            + (f" x {self.world} processes" if self.world > 1 else "")
            + (f" x {cfg.grad_accum} accumulation" if cfg.grad_accum > 1 else "")
            + f", lr {cfg.lr:g} ({cfg.lr_schedule}, {cfg.warmup_steps} warm-up), device {self.device}"
            + (f", autocast {self.amp_dtype}" if self.amp_dtype else "")
        )
        if self.regularisers.describe():
            self.log.say(self.regularisers.describe())
        if cfg.replay_text:
            self.log.say(f"replay: {len(self.sources[-1])} eSpeak renderings of {cfg.replay_text}, "
                     f"{100 * cfg.replay_share:g} % of each epoch")
        self.log.metric({"event": "start", "step": self.state.step, "trainable_parameters": trainable,
                      "total_parameters": total, "total_steps": self.total_steps, "world_size": self.world,
                      "cache": self.cache_info})

    # --- the step ---------------------------------------------------------------------------------

    def maybe_unfreeze(self) -> None:
        """Gradual unfreezing: from ``--unfreeze-after`` on, the top encoder layers train and the
        encoder cache (outputs of the frozen encoder) is no longer used."""
        at = self._unfreeze_at()
        if at is None or self.state.unfrozen or self.state.step < at:
            return
        self.unfreeze()
        cfg = self.config
        self.log.say(f"step {self.state.step}: unfroze the top {cfg.unfreeze_top_layers} encoder layers "
                 f"(lr {cfg.encoder_lr or cfg.lr / 10:g}); encoder cache not used from here on")

    def unfreeze(self) -> None:
        self.adapter.unfreeze_top_layers(self.config.unfreeze_top_layers)
        self.state.unfrozen = True
        self.ddp_model = self.processes.wrap(self.adapter.model)  # DDP must see the new trainable set

    def train_step(self) -> None:
        """One optimiser step over ``grad_accum`` micro-batches; updates :attr:`state`."""
        cfg, start = self.config, time.time()
        factor = lr_factor(self.state.step, self.total_steps, cfg.warmup_steps, cfg.lr_schedule)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor
        batches = [self._batch(self._next_slice(), self.state.step * cfg.grad_accum + m) for m in range(cfg.grad_accum)]
        loss = self._accumulate(batches)
        self._guard_divergence(loss)
        grad_norm = self._optimizer_step()
        self.state.step += 1
        utts = sum(len(b["_pairs"]) for b in batches) * self.world
        self._record(loss, utts, time.time() - start, cfg.lr * factor, grad_norm)

    def _accumulate(self, batches: list[dict[str, Any]]) -> float:
        """Backward through every micro-batch, each weighted by its share of the step's loss terms
        (tokens for Whisper), so 2 x 8 accumulates the same gradient as one batch of 16."""
        weights = [float(self.adapter.loss_weight(b)) for b in batches]
        total = self.processes.all_sum(sum(weights)) / self.world  # DDP averages over ranks
        step_loss = 0.0
        for i, batch in enumerate(batches):
            sync = i == len(batches) - 1
            with self.processes.no_sync(self.ddp_model, sync), torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                                      enabled=self.amp_dtype is not None):
                loss, _ = self.regularisers.loss(self.adapter, self.ddp_model, {k: v for k, v in batch.items() if k != "_pairs"})
            self.scaler.scale(loss * (weights[i] / total)).backward()
            step_loss += float(loss.detach()) * weights[i] / total
        return self.processes.all_sum(step_loss) / self.world

    def _guard_divergence(self, loss: float) -> None:
        """Stop on NaN/inf, or on a smoothed loss far above its best."""
        what = watch_loss(self.state, loss, self.config.divergence_factor)
        if what is not None:
            self.log.metric({"event": "diverged", "step": self.state.step, "loss": loss if math.isfinite(loss) else str(loss)})
            raise diverged(self.run_dir, self.state.step, self.config.lr, what)

    def _optimizer_step(self) -> float:
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.regularisers.pull_towards_base(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _record(self, loss: float, utts: int, seconds: float, lr: float, grad_norm: float) -> None:
        """Step bookkeeping: elapsed time, meters, progress, and a metrics line every ``log_every``."""
        s = self.state
        s.elapsed_s = self.progress.elapsed()
        self.log_meter.add(utts, seconds, loss)
        self.epoch_meter.add(utts, seconds, loss)
        self.progress.update(1, utts=utts, loss=f"{loss:.3f}", lr=f"{lr:.2e}", utts_s=f"{self.log_meter.rate():.1f}")
        if s.step % self.config.log_every == 0 or s.step == self.total_steps:
            m = self.log_meter
            self.log.metric({"step": s.step, "epoch": s.epoch, "loss": m.loss / m.steps, "lr": lr, "grad_norm": grad_norm,
                          "utts_per_s": m.rate(), "elapsed_s": round(s.elapsed_s, 2)})
            self.log_meter = Meter()

    # --- batches ----------------------------------------------------------------------------------

    def _plan(self, epoch: int) -> list[tuple[int, int]]:
        """The epoch's utterance order; with --group-by-duration (default on for CTC, whose
        raw-audio batches pay for padding) consecutive batches hold similar durations."""
        cfg = self.config
        plan = epoch_plan([len(s) for s in self.sources], self.weights, epoch, cfg.seed)
        group = cfg.group_by_duration if cfg.group_by_duration is not None else self.adapter.family == "ctc"
        if group:
            durations = [[u.duration for u, _ in source] for source in self.sources]
            plan = group_by_duration(plan, durations, self.global_batch, epoch, cfg.seed)
        return plan

    def _usable_plan_length(self) -> int:
        return len(self.plan) - len(self.plan) % self.world  # every rank gets the same number of utterances

    def _next_slice(self) -> list[tuple[int, int]]:
        """This rank's share of the next global batch (starting the next epoch when this one is used up)."""
        s = self.state
        if s.position >= self._usable_plan_length():
            self._end_epoch(partial=False)
            s.epoch, s.position = s.epoch + 1, 0
            self.plan = self._plan(s.epoch)
        per_rank = max(1, min(self.global_batch, len(self.plan) - s.position) // self.world)
        mine = self.plan[s.position + self.rank * per_rank : s.position + (self.rank + 1) * per_rank]
        s.position += per_rank * self.world
        return mine

    def _waveform(self, utt: Utterance, rng: np.random.Generator) -> np.ndarray:
        audio = utterance_audio(utt)
        if self.config.speed_perturb or self.config.noise_snr_db is not None:
            audio = augment_waveform(audio, rng, self.config.speed_perturb, self.config.noise_snr_db)
        return audio

    def _batch(self, indices: list[tuple[int, int]], micro_step: int) -> dict[str, Any]:
        """Tensors on the device for ``indices``; ``_pairs`` keeps the (utterance, target) pairs."""
        pairs = [self.sources[s][i] for s, i in indices]
        self.adapter.epoch = self.state.epoch  # per-epoch target choices (timestamps, prompts)
        use_cache = self.cache is not None and not self.state.unfrozen
        if use_cache and self.cache_lazily:
            todo = self.cache.missing([u for u, _ in pairs])
            if todo:
                self.cache.build(todo, self.adapter.encode, utterance_audio, batch_size=len(todo), progress=False,
                                 map_fn=self._map)
        if use_cache:
            examples = [self.adapter.make_example(u, t, encoded=np.array(self.cache.get(u))) for u, t in pairs]
        else:
            # one generator per example, so augmentation does not depend on thread scheduling
            seeds = np.random.SeedSequence([self.config.seed, micro_step, self.rank]).spawn(len(pairs))
            audios = self._map(lambda k: self._waveform(pairs[k][0], np.random.default_rng(seeds[k])), range(len(pairs)))
            examples = [self.adapter.make_example(u, t, audio=a) for (u, t), a in zip(pairs, audios)]
        batch = self.adapter.collate(examples)
        if not use_cache:
            gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + micro_step * 31 + self.rank)
            batch = self.adapter.augment_batch(batch, gen)
        return {**{k: v.to(self.device, non_blocking=True) for k, v in batch.items()}, "_pairs": pairs}

    def _map(self, fn: Callable, items) -> list:
        """``[fn(x) for x in items]``, on the data-loading threads when ``--num-workers`` > 0."""
        return list(self.loader.map(fn, items)) if self.loader else [fn(x) for x in items]

    def _end_epoch(self, partial: bool) -> None:
        m, epoch = self.epoch_meter, self.state.epoch
        if m.utts:
            self.log.metric({"event": "epoch", "epoch": epoch, "utts": m.utts, "train_s": round(m.seconds, 2),
                          "utts_per_s": m.rate(), "partial": partial})
            self.log.say(f"epoch {epoch}{' (partial)' if partial else ''}: {m.utts} utterances at {m.rate():.1f} utts/s")
        self.epoch_meter = Meter()

    # --- evaluation -------------------------------------------------------------------------------

    def evaluate_dev(self) -> None:
        """Dev (and guard) WER on rank 0; keeps ``best/`` and the patience count (shared with every rank).

        With ``--guard-dev`` a checkpoint can become ``best/`` only while its guard WER is at most
        ``--guard-margin`` percentage points above the base model's (:meth:`guard_ok`)."""
        s = self.state
        if self.main:
            start = time.time()
            s.last_wer = wer = self.evaluate(self.dev)
            if not self.guard:
                guard = None
            elif s.step == 0 and s.guard_base_wer is not None:
                guard = s.guard_base_wer  # the base model, just measured
            else:
                guard = self.evaluate(self.guard)
            self.guard_last = guard
            if s.step == 0:  # the base model (evaluated first with a guard)
                s.base_dev_wer = wer
            beats_best = s.best_wer is None or wer < s.best_wer
            improved = beats_best and self.guard_ok(guard)
            if beats_best and not improved and (s.guard_refused_wer is None or wer < s.guard_refused_wer):
                s.guard_refused_step, s.guard_refused_wer = s.step, wer
            if improved:
                s.best_wer, s.best_step, s.evals_since_best, s.best_guard_wer = wer, s.step, 0, guard
                s.best_merge_alpha = None  # a checkpoint of a resumed run can beat an earlier run's merge
                self._save_model("best", {"step": s.step, "dev_wer": wer, "dev": self.config.dev, "guard_wer": guard})
            else:
                s.evals_since_best += 1
            record = {"step": s.step, "dev_wer": wer, "best_dev_wer": s.best_wer, "eval_s": round(time.time() - start, 2)}
            if self.guard:
                record |= {"guard_wer": guard, "guard_base_wer": s.guard_base_wer, "guard_ok": self.guard_ok(guard)}
            self.log.metric(record)
            self.log.tracker.log_text(s.step, "dev_examples", examples_table([u.text for u, _ in self.dev], self.dev_hyps))
            guard_note = ""
            if self.guard:
                guard_note = f", guard WER {_pct(guard)} (base {_pct(s.guard_base_wer)}" + ("" if self.guard_ok(guard) else
                                                                                         ", over the margin: not eligible") + ")"
            self.log.say(f"step {s.step}: dev WER {_pct(wer)}{guard_note} (best {_pct(s.best_wer)} at step {s.best_step})"
                     + (" - saved best/" if improved else ""))
        s.evals_since_best = self.processes.broadcast_int(s.evals_since_best)

    def guard_ok(self, guard_wer: float | None) -> bool:
        """Whether a checkpoint with this guard WER may become ``best/`` (always, without a guard)."""
        return guard_allows(guard_wer, self.state.guard_base_wer, self.config.guard_margin)

    def evaluate_guard_base(self) -> None:
        """The base model's guard WER. A fresh run measures it at step 0 by evaluating the base
        model like any checkpoint (so the base is the first candidate for ``best/``: with no
        later checkpoint inside the margin, ``best/`` is the base model); a resumed run has it in
        its :class:`TrainState`."""
        if self.state.guard_base_wer is not None:
            return
        if self.state.step > 0:
            self.log.say("--guard-dev: this run's checkpoint holds no base guard WER (an older asrtune wrote it); "
                     "measuring the current model instead")
        if self.main:
            self.state.guard_base_wer = self.evaluate(self.guard)
            self.log.metric({"event": "guard-base", "step": self.state.step, "guard_wer": self.state.guard_base_wer})
            self.log.say(f"guard {Path(self.config.guard_dev).name}: base WER {_pct(self.state.guard_base_wer)} on {len(self.guard)} "
                     f"utterances; best/ must stay within +{self.config.guard_margin:g} points")
        if self.state.step == 0:
            self.evaluate_dev()

    def evaluate(self, pairs: list[Pair] | None = None) -> float:
        """WER of ``pairs`` (default: the dev set) through the recogniser ``asrtune eval`` uses (from
        cached encoder outputs while they are valid, finished by the trainable top layers when the
        cache holds a split point), normalised for the language."""
        pairs = self.dev if pairs is None else pairs
        utts = [u for u, _ in pairs]
        from_cache = self.cache is not None and not self.state.unfrozen
        key = self._untuned_key(utts, from_cache) if self.state.step == 0 and self.config.cache != "off" else None
        hyps = load_hypotheses(self._hypotheses_root(), key, len(utts)) if key else None
        if hyps is not None:
            self.log.say(f"step 0: the starting model's hypotheses of these {len(utts)} utterances came from the cache "
                     "(same weights, audio and decoding code)")
        else:
            hyps = self._decode(pairs, from_cache)
            if key:
                save_hypotheses(self._hypotheses_root(), key, hyps)
        if self.state.step == 0:
            self.step_zero.remember(utts, hyps)
        if pairs is self.dev:  # the dev examples the tracker shows, never the guard set's
            self.dev_hyps = hyps
        return score([u.text for u in utts], hyps, self.config.language)

    def _decode(self, pairs: list[Pair], from_cache: bool) -> list[str]:
        """Hypotheses of ``pairs`` from the live model, in eval batches (cached encoder rows or audio)."""
        batch = self.config.eval_batch_size
        recognizer = self.adapter.recognizer(str(self.device), batch)
        utts = [u for u, _ in pairs]
        audio = None if from_cache else self._eval_audio(pairs)
        progress = Progress("dev", len(utts), "utt", self.log.say, False)
        hyps: list[str] = []
        self.adapter.model.eval()
        try:
            for start in range(0, len(utts), batch):
                if from_cache:
                    cached = np.stack([self.cache.get(u) for u in utts[start:start + batch]])
                    hyps += recognizer.transcribe_encoded(self.adapter.finish_encoding(cached))
                else:
                    hyps += recognizer.transcribe(audio[start:start + batch])
                progress.update(len(hyps) - progress.done)
        finally:
            self.adapter.model.train()
        return hyps

    def _cache_root(self) -> Path:
        """``--cache-dir`` when given, else the asrtune cache."""
        return Path(self.config.cache_dir) if self.config.cache_dir else cache_dir()

    def _hypotheses_root(self) -> Path:
        """Where step-0 hypotheses are kept."""
        return self._cache_root() / FOLDER

    def _untuned_key(self, utts: list[Utterance], from_cache: bool) -> str:
        """Cache key of the step-0 evaluation of ``utts`` (:mod:`asrtune.training.untuned_eval`)."""
        if self._start_weights is None:  # dev and guard are both scored with the same starting weights
            self._start_weights = self.step_zero.weights = module_digest(self.adapter.model)
        settings = decoding_settings(self.resolved.family, self.config.language, self.device.type, self.resolved.path,
                                     self.config.eval_batch_size, self.cache.fingerprint if from_cache else None)
        return hypotheses_key(self._start_weights, utts, settings)

    def _run_decoding(self) -> RunDecoding:
        """What the --eval-sets comparison may reuse: the step-0 hypotheses, and the encoder cache
        while base and best/ share the cached encoder (frozen throughout, no split point)."""
        shared = self.cache is not None and not self.state.unfrozen and self.cache_info.get("split_layer") is None
        return RunDecoding(self.step_zero, self.cache if shared else None, self.adapter.encode if shared else None,
                           self._map)

    def _eval_audio(self, pairs: list[Pair]) -> list[np.ndarray]:
        """Decoded audio of the dev or guard set, loaded once per run."""
        if pairs is self.guard:
            if self.guard_audio is None:
                self.guard_audio = self._map(utterance_audio, [u for u, _ in pairs])
            return self.guard_audio
        if pairs is self.dev:
            if self.dev_audio is None:
                self.dev_audio = self._map(utterance_audio, [u for u, _ in pairs])
            return self.dev_audio
        return self._map(utterance_audio, [u for u, _ in pairs])

    # --- the end of the run ------------------------------------------------------------------------

    def finish(self) -> RunResult:
        """``final/``, any WiSE-FT merges, ``best/`` without a dev set, learning curve, eval sets,
        export, result.json, and the closing lines saying what best/ and final/ hold."""
        s, cfg = self.state, self.config
        trainable, total = self.adapter.trainable_parameter_count()
        result = RunResult(
            run_dir=str(self.run_dir), steps=s.step, epochs=round(s.epoch + s.position / max(1, len(self.plan)), 3),
            stopped=self.stopped, best_dev_wer=s.best_wer, best_step=s.best_step, final_dev_wer=s.last_wer,
            trainable_parameters=trainable, total_parameters=total, skipped=self.skipped, cache=self.cache_info,
            guard_base_wer=self.state.guard_base_wer, best_guard_wer=self.state.best_guard_wer, final_guard_wer=self.guard_last,
            base_dev_wer=s.base_dev_wer, regularisers=cfg.keep_general_settings(),
        )
        if self.main:
            self._save_model("final", {"step": s.step, "dev_wer": s.last_wer, "dev": cfg.dev, "guard_wer": self.guard_last})
            alphas, reason = self.merge_plan()
            if alphas:
                self.search_merges(result, alphas, reason)
            if self._guard_refused_better():
                result.guard_refused_step, result.guard_refused_dev_wer = s.guard_refused_step, s.guard_refused_wer
            if not (self.run_dir / "best").exists():  # no dev set: final is the best we know
                self._save_model("best", {"step": s.step, "dev_wer": None})
                result.best_step = s.step
            from asrtune.training.curves import plot_learning_curve

            plot_learning_curve(self.run_dir / "metrics.jsonl", self.run_dir / "learning_curve.png")
            if cfg.eval_sets:
                sets = ([cfg.dev] if cfg.dev else []) + [p for p in cfg.eval_sets if p != cfg.dev]
                result.eval_results = compare_base_and_tuned(self.resolved, self.run_dir / "best", sets, cfg,
                                                             str(self.device), self.log.say, self._run_decoding())
            # the run's final word on both folders; the --eval-sets rows describe best/, so final/ only
            # shows them when it holds the same weights
            self._write_card(self.run_dir / "best", "best", result.to_dict())
            same = not cfg.dev or (s.best_step == s.step and s.best_merge_alpha is None)
            self._write_card(self.run_dir / "final", "final", result.to_dict() | ({} if same else {"eval_results": []}))
            for fmt in cfg.export_formats():
                self._export(fmt, result.to_dict())
            write_json_atomic(self.run_dir / "result.json", result.to_dict())
            self.log.say(f"done: {s.step} steps in {(time.time() - self.run_start) / 60:.1f} min ({self.stopped}); models in "
                     f"{self.run_dir / 'best'} and {self.run_dir / 'final'}")
            for line in outcome_lines(result, cfg.guard_margin, has_dev=bool(cfg.dev)):
                self.log.say(line)
            self.log.close()
        if self.loader:
            self.loader.shutdown()
        self.processes.barrier()
        return result

    def _guard_refused_better(self) -> bool:
        """Whether the guard refused a checkpoint with a lower dev WER than best/'s."""
        s = self.state
        return s.guard_refused_wer is not None and (s.best_wer is None or s.guard_refused_wer < s.best_wer)

    def merge_plan(self) -> tuple[list[float], str | None]:
        """The WiSE-FT alphas to score at the end of the run, and why (``RunResult.merge_reason``).

        ``--merge-alphas`` listed: those. ``auto`` (the default): :data:`DEFAULT_MERGE_ALPHAS` when
        the forgetting guard refused checkpoints better on dev than best/ (a merge of final/ with
        the base often keeps much of the gain within the guard), else none. ``none``: none."""
        cfg, s = self.config, self.state
        if cfg.merge_alphas != AUTO_MERGE:
            return list(cfg.merge_alphas), MERGE_REQUESTED if cfg.merge_alphas else None
        if not (self.guard and self._guard_refused_better()):
            return [], None
        self.log.say(f"the forgetting guard refused every checkpoint better on dev than best/ ({best_holds(s)}, dev WER "
                 f"{_pct(s.best_wer)}; step {s.guard_refused_step} reached {_pct(s.guard_refused_wer)}): scoring WiSE-FT "
                 f"merges of final/ with the base model, alphas {', '.join(f'{a:g}' for a in DEFAULT_MERGE_ALPHAS)} "
                 "(--merge-alphas none skips this)")
        return list(DEFAULT_MERGE_ALPHAS), MERGE_AFTER_REFUSAL

    def search_merges(self, result: RunResult, alphas: list[float], reason: str | None = MERGE_REQUESTED) -> None:
        """Score ``(1 - a) * base + a * final`` on dev and the guard for each ``a`` in ``alphas``
        (WiSE-FT, ``models/interpolate.py``); the best on dev within the guard margin that beats
        ``best/`` replaces it. The model holds final/'s weights again afterwards."""
        from asrtune.models.interpolate import interpolate_weights

        s, cfg = self.state, self.config
        final = self._trainable_weights()
        result.merge_reason = reason
        chosen: tuple[float, float, float | None] | None = None
        for alpha in alphas:
            self.adapter.load_trainable_state_dict(interpolate_weights(self.base_weights, final, alpha))
            wer = self.evaluate(self.dev)
            guard = self.evaluate(self.guard) if self.guard else None
            ok = self.guard_ok(guard)
            result.merges.append({"alpha": alpha, "dev_wer": wer, "guard_wer": guard, "guard_ok": ok})
            self.log.metric({"event": "merge", "step": s.step, "alpha": alpha, "merge_dev_wer": wer, "guard_wer": guard,
                          "guard_ok": ok})
            self.log.say(f"merge {1 - alpha:g} x base + {alpha:g} x final/: dev WER {_pct(wer)}"
                     + (f", guard WER {_pct(guard)}" + ("" if ok else " (over the margin)") if self.guard else ""))
            if ok and (s.best_wer is None or wer < s.best_wer) and (chosen is None or wer < chosen[1]):
                chosen = (alpha, wer, guard)
        if chosen is not None:
            alpha, s.best_wer, s.best_guard_wer = chosen
            s.best_step, s.best_merge_alpha = s.step, alpha
            self.adapter.load_trainable_state_dict(interpolate_weights(self.base_weights, final, alpha))
            self._save_model("best", {"step": s.step, "merge_alpha": alpha, "dev_wer": s.best_wer, "dev": cfg.dev,
                                      "guard_wer": s.best_guard_wer})
            self.log.say(f"best/ is now the merge with alpha {alpha:g} (dev WER {_pct(s.best_wer)})")
        self.adapter.load_trainable_state_dict(final)
        result.best_dev_wer, result.best_step, result.best_guard_wer = s.best_wer, s.best_step, s.best_guard_wer
        result.best_merge_alpha = s.best_merge_alpha

    def _trainable_weights(self) -> dict[str, torch.Tensor]:
        """CPU copies of every weight training may change (the trainable ones and the top encoder
        layers --unfreeze-top-layers will open)."""
        may_train = {id(p) for p in self.adapter.top_layer_parameters(self._unfreeze_layers())}
        return {n: p.detach().cpu().clone() for n, p in self.adapter.model.named_parameters()
                if p.requires_grad or id(p) in may_train}

    def _save_model(self, name: str, info: dict[str, Any]) -> None:
        with atomic_directory(self.run_dir / name) as tmp:
            self.adapter.save(tmp)
            write_json_atomic(tmp / "asrtune_training.json", {"base_model": self.config.model, **info})
            self._write_card(tmp, name, self._card_result())

    def _write_card(self, model_dir: Path, checkpoint: str, result: dict[str, Any], export: str = "transformers") -> None:
        """The model card (``README.md``) of a model folder this run wrote."""
        from asrtune.text.normalizers import normalizer_for_language
        from asrtune.training.model_card import ModelCardInfo, write_model_card

        info = ModelCardInfo.from_run(asdict(self.config), result, self._data_stats(), checkpoint=checkpoint,
                                      export=export, family=self.resolved.family,
                                      normalizer=normalizer_for_language(self.config.language))
        write_model_card(model_dir, info)

    def _card_result(self) -> dict[str, Any]:
        """What a card says of the run so far (``best/`` is saved mid-run, before any RunResult)."""
        s = self.state
        trainable, total = self.adapter.trainable_parameter_count()
        return {"steps": s.step, "best_step": s.best_step, "best_dev_wer": s.best_wer, "stopped": self.stopped,
                "best_merge_alpha": s.best_merge_alpha, "base_dev_wer": s.base_dev_wer,
                "trainable_parameters": trainable, "total_parameters": total}

    def _data_stats(self) -> dict[str, dict[str, Any]]:
        """Size of the train and dev manifests (read once per run, shared by every card)."""
        if self.data_stats is None:
            from asrtune.data.stats import manifest_stats

            paths = [*self.config.train, *([self.config.dev] if self.config.dev else [])]
            self.data_stats = {p: manifest_stats(p).to_dict() for p in paths}
        return self.data_stats

    def _export(self, fmt: str, result: dict[str, Any]) -> None:
        """``--export``: best/ in ``fmt`` at RUN_DIR/best-FORMAT (the format's default weight type),
        with the run's model card for that runtime."""
        from asrtune.training.export import export_model
        from asrtune.training.model_card import CARD_EXPORT_NAMES

        dst = self.run_dir / f"best-{fmt}"
        self.log.say(f"exporting best/ to {fmt} in {dst}")
        exported = export_model(self.run_dir / "best", fmt, dst, force=True,
                                write_card=lambda folder, _: self._write_card(folder, "best", result,
                                                                             export=CARD_EXPORT_NAMES[fmt]))
        self.log.say(f"exported {fmt} ({exported.quantization}, {exported.size_bytes / 1e6:.1f} MB)")

    def _amp(self) -> tuple[torch.dtype | None, bool]:
        """(autocast dtype or None, use GradScaler)."""
        p = self.config.precision
        if p == "fp32" or (p == "auto" and self.device.type != "cuda"):
            return None, False
        if p == "auto":
            p = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return (torch.bfloat16, False) if p == "bf16" else (torch.float16, self.device.type == "cuda")
