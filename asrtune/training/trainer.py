"""The training loop: one ``Trainer`` for every model family, readable top to bottom.

:meth:`Trainer.run` is the whole story: check the run dir and options before anything is written
(``preflight.py``), build the model's adapter (``adapters/``) and freeze, read the data
(``run_data.py``), write the run dir, fill the encoder-output cache (``cache_setup.py``), build
the optimiser (``optim.py``), resume (one :class:`TrainState`), then loop over
:meth:`Trainer.train_step` - the learning rate a function of the step (``schedule.py``),
gradient accumulation and clipping, autocast, the divergence guard (``divergence.py``), dev WER
(``evaluator.py``) keeping ``best/`` (``selection.py``), early stopping, a resumable
``checkpoint/`` - and finish (``finisher.py``: ``final/``, merges, cards, exports,
``result.json``). Batches come from ``batches.py``, log lines and ``metrics.jsonl`` from
``run_log.py``; under ``torchrun`` each rank trains on its slice of every global batch and
rank 0 alone evaluates and writes (``distributed.py``).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from asrtune.errors import ConfigError
from asrtune.models import resolve_model
from asrtune.training.adapters import adapter_class
from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.batches import PAIRS_KEY, Batches, Loader
from asrtune.training.cache_setup import CacheUse, set_up_encoder_cache
from asrtune.training.config import TrainConfig, save_yaml_config
from asrtune.training.distributed import Processes, distributed, pick_device
from asrtune.training.divergence import TrainingDiverged, diverged, loss_exploded, watch_loss  # noqa: F401 (re-exported)
from asrtune.training.encoder_cache import EncoderCache
from asrtune.training.evaluator import Evaluator
from asrtune.training.export import check_exports
from asrtune.training.finisher import Finisher, may_train, trainable_weights
from asrtune.training.model_folders import ModelFolders
from asrtune.training.outcome import guard_allows  # noqa: F401 (re-exported: benchmarks and tests import it here)
from asrtune.training.optim import make_optimizer
from asrtune.training.outcome import pct as _pct
from asrtune.training.preflight import check_manifests, check_run_dir
from asrtune.training.progress import Progress
from asrtune.training.regularisers import Regularisers
from asrtune.training.result import RunResult
from asrtune.training.run_data import Pair, RunData, load_run_data
from asrtune.training.run_log import RunLog, StepMeters, clear_earlier_run
from asrtune.training.sampling import epoch_plan
from asrtune.training.schedule import lr_factor, total_steps, unfreeze_layers, unfreeze_step
from asrtune.training.selection import Selection
from asrtune.training.state import TrainState, restore_checkpoint, save_checkpoint, seed_everything
from asrtune.training.tracking import check_tracker, make_tracker

__all__ = ["RunResult", "Trainer", "TrainingDiverged", "train"]


def train(config: TrainConfig, on_step: Callable[["Trainer"], None] | None = None) -> RunResult:
    """Run or resume the fine-tuning described by ``config`` (see module docstring).

    ``on_step(trainer)`` is called after every optimiser step and its checkpoint (tests stop a
    run there: raising from it leaves the run as a kill would)."""
    check_manifests(config)  # a typo costs a second, not a model load
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
        self.device = pick_device(config.device, self.local_rank)
        self.processes = Processes(self.rank, self.world, self.device)
        self.loader = Loader(config.num_workers)
        self.log = RunLog(self.run_dir, self.main)
        self.run_start = time.time()
        self.resolved: Any = None
        self.adapter: ModelAdapter | None = None
        self.ddp_model: nn.Module | None = None
        self.top_layers, self.unfreeze_at = 0, None  # --unfreeze-top-layers K and its step, once frozen
        self.regularisers = Regularisers()  # --l2-sp, --distill-base: built with the model
        self.base_weights: dict[str, torch.Tensor] = {}  # --merge-alphas: the base values of what may train
        self.data = RunData()  # the training sources, their weights, the skip counts (run_data.py)
        self.dev, self.guard = self.data.dev, self.data.guard  # the dev and --guard-dev pairs
        self.cache = CacheUse()  # the encoder-output cache, if the run uses one (cache_setup.py)
        self.optimizer: torch.optim.Optimizer | None = None  # with its scaler and autocast dtype (optim.py)
        self.scaler, self.amp_dtype = None, None
        self.epoch_len = self.steps_per_epoch = self.total_steps = 0
        self.state = TrainState()
        self.plan: list[tuple[int, int]] = []
        self.stopped: str | None = None
        self.meters = StepMeters(self.log, config.log_every)
        self.progress: Progress | None = None
        # the parts built once the model and the data are loaded (_assemble)
        self.batches: Batches | None = None
        self.evaluator: Evaluator | None = None
        self.folders: ModelFolders | None = None
        self.selection: Selection | None = None

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> RunResult:
        checkpoint = check_run_dir(self.config, self.run_dir, self.log.say)  # nothing is written until every check passed
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
                self.log.tracker = make_tracker(self.config.report_to, self.run_dir, dataclasses.asdict(self.config))
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
        self.plan = self.batches.plan(self.state.epoch)
        if self.guard:  # the base model is the first candidate for best/ (and sets the guard's base WER)
            self.selection.evaluate_guard_base(self.state)
        while self.stopped is None:
            self.maybe_unfreeze()
            self.train_step()
            self.stopped = self.stop_reason()
            if self.dev and (self.state.step % cfg.eval_every == 0 or self.stopped):
                self.selection.evaluate_dev(self.state, self.stopped)
                if cfg.patience is not None and self.state.evals_since_best >= cfg.patience:
                    self.log.say(f"early stopping: no dev WER improvement in {cfg.patience} evaluations")
                    self.stopped = self.stopped or "early-stopping"
            if self.main and (self.state.step % cfg.save_every == 0 or self.stopped):
                save_checkpoint(self.run_dir, self.state, self.adapter, self.optimizer, self.scaler)
            if self.on_step is not None:
                self.on_step(self)
        self.progress.close()
        self.meters.end_epoch(self.state.epoch, partial=self.state.position < self.batches.usable(self.plan))

    def stop_reason(self) -> str | None:
        cfg = self.config
        if cfg.max_train_minutes is not None and self.state.elapsed_s >= cfg.max_train_minutes * 60:
            self.log.say(f"time limit of {cfg.max_train_minutes:g} min reached at step {self.state.step}")
            return "time-limit"
        if self.state.step >= self.total_steps:
            return "max-steps" if cfg.max_steps else "epochs"
        return None

    def finish(self) -> RunResult:
        """The run's :class:`RunResult`; rank 0 writes ``final/``, merges, cards, exports and
        ``result.json`` (``finisher.py``)."""
        s, cfg = self.state, self.config
        trainable, total = self.adapter.trainable_parameter_count()
        result = RunResult(
            run_dir=str(self.run_dir), steps=s.step, epochs=round(s.epoch + s.position / max(1, len(self.plan)), 3),
            stopped=self.stopped, best_dev_wer=s.best_wer, best_step=s.best_step, final_dev_wer=s.last_wer,
            trainable_parameters=trainable, total_parameters=total, skipped=self.data.skipped, cache=self.cache.info,
            guard_base_wer=s.guard_base_wer, best_guard_wer=s.best_guard_wer, final_guard_wer=self.selection.guard_last,
            base_dev_wer=s.base_dev_wer, regularisers=cfg.keep_general_settings(),
        )
        if self.main:
            finisher = Finisher(cfg, self.run_dir, self.adapter, self.folders, self.selection, self.log)
            finisher.finish(result, s, self.base_weights, self.top_layers, self._compare, self.run_start)
        self.loader.shutdown()
        self.processes.barrier()
        return result

    # --- setup (nothing written) ------------------------------------------------------------------

    def build_model(self) -> None:
        """Resolve the model, refuse options its family ignores, load its adapter and freeze."""
        cfg = self.config
        seed_everything(cfg.seed)
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
        self.top_layers = unfreeze_layers(cfg.freeze, cfg.unfreeze_top_layers)  # encoder layers that may open
        self.unfreeze_at = unfreeze_step(cfg.freeze, cfg.unfreeze_top_layers, cfg.unfreeze_after)
        self.adapter.top_layer_parameters(self.top_layers)  # checks K against the encoder depth
        if cfg.may_merge:  # before any resume or step: the base model's weights
            self.base_weights = trainable_weights(self.adapter, self.top_layers)
        self.adapter.model.to(self.device)
        self.regularisers = Regularisers.build(cfg, self.adapter, list(may_train(self.adapter, self.top_layers).values()))
        self.ddp_model = self.processes.wrap(self.adapter.model)

    def load_data(self) -> None:
        """Manifests -> (utterance, target text) lists, with skips counted by reason (``run_data.py``)."""
        cfg, data = self.config, load_run_data(self.config, self.adapter)
        self.data, self.dev, self.guard = data, data.dev, data.guard
        self.epoch_len = len(epoch_plan([len(s) for s in self.data.sources], self.data.weights, 0, cfg.seed))
        self.steps_per_epoch = max(1, math.ceil(self.epoch_len / (cfg.batch_size * self.world * cfg.grad_accum)))
        self.total_steps = total_steps(cfg.max_steps, cfg.epochs, self.steps_per_epoch)
        self._assemble()

    def _assemble(self) -> None:
        """The parts that work on the loaded model and data: batches, evaluation, model folders."""
        cfg, say, sets = self.config, self.log.say, (self.dev, self.guard)
        self.batches = Batches(cfg, self.adapter, self.data.sources, self.data.weights, self.processes, self.loader)
        self.evaluator = Evaluator(cfg, self.adapter, self.resolved, self.device, sets, self.loader.map, say)
        self.folders = ModelFolders(cfg, self.run_dir, self.adapter, self.resolved.family, say)
        self.selection = Selection(cfg, sets, lambda pairs: self.evaluate(pairs), self.folders, self.log,
                                   self.processes, lambda: self.evaluator.dev_hyps)

    # --- setup (writing) --------------------------------------------------------------------------

    def create_run_dir(self) -> bool:
        """Write config.yaml and open train.log (rank 0); True when this call created the dir."""
        if not self.main:
            return False
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.config.resume:  # --force over an earlier run starts over: its curves and checkpoint go
            clear_earlier_run(self.run_dir)
        self.log.open()
        save_yaml_config(dataclasses.replace(self.config, freeze=self.requested_freeze), self.run_dir / "config.yaml")
        for line in self.data.summary(self.config.train, self.adapter.describe_added):
            self.log.say(line)
        return created

    def setup_cache(self) -> None:
        """Decide whether to cache encoder outputs, and fill the cache (``cache_setup.py``)."""
        self.cache = set_up_encoder_cache(self.config, self.adapter, [u for s in self.data.sources for u, _ in s],
                                          [u for u, _ in self.dev + self.guard], self.unfreeze_at, self.processes,
                                          self.log.say, self.loader.map)

    def build_optimizer(self) -> None:
        """AdamW over the adapter's parameter groups, the gradient scaler, the autocast dtype (``optim.py``)."""
        self.optimizer, self.scaler, self.amp_dtype = make_optimizer(self.adapter, self.config, self.device)

    def resume(self, checkpoint: dict[str, Any] | None) -> None:
        """Restore the whole :class:`TrainState` (+ weights, optimiser, scaler) from a checkpoint."""
        if checkpoint is None:
            return
        if checkpoint["state"]["unfrozen"]:  # the saved weights include the unfrozen layers
            self.unfreeze()
        self.state = restore_checkpoint(checkpoint, self.adapter, self.optimizer, self.scaler)
        self.log.truncate_metrics(self.state.step)  # rank 0's file; other ranks write nothing
        s = self.state
        self.log.say(f"resumed from step {s.step} (epoch {s.epoch}, position {s.position}); best dev WER so far: {_pct(s.best_wer)}")

    def unfreeze_from_start(self) -> None:
        """``--unfreeze-top-layers K`` without ``--unfreeze-after``: the top layers train from the
        first step, so they open before the run is announced (its parameter count includes them)."""
        if self.unfreeze_at == 0 and not self.state.unfrozen:
            self.unfreeze()

    def announce(self) -> None:
        cfg = self.config
        trainable, total = self.adapter.trainable_parameter_count()
        opened = ""
        if self.state.unfrozen:
            opened = f" + top {cfg.unfreeze_top_layers} encoder layers (lr {cfg.encoder_lr or cfg.lr / 10:g})"
            opened += " from step 0" if self.unfreeze_at == 0 else ""
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
            self.log.say(f"replay: {len(self.data.sources[-1])} eSpeak renderings of {cfg.replay_text}, "
                     f"{100 * cfg.replay_share:g} % of each epoch")
        self.log.metric({"event": "start", "step": self.state.step, "trainable_parameters": trainable,
                      "total_parameters": total, "total_steps": self.total_steps, "world_size": self.world,
                      "cache": self.cache.info})

    # --- the step ---------------------------------------------------------------------------------

    def maybe_unfreeze(self) -> None:
        """Gradual unfreezing: from ``--unfreeze-after`` on, the top encoder layers train and the
        encoder cache (outputs of the frozen encoder) is no longer used."""
        at = self.unfreeze_at
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
        batches = [self._batch(self.state.step * cfg.grad_accum + m) for m in range(cfg.grad_accum)]
        loss = self._accumulate(batches)
        self._guard_divergence(loss)
        grad_norm = self._optimizer_step()
        self.state.step += 1
        utts = sum(len(b[PAIRS_KEY]) for b in batches) * self.world
        self.meters.record(self.state, self.progress, self.state.step == self.total_steps, loss, utts,
                           time.time() - start, cfg.lr * factor, grad_norm)

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
                loss, _ = self.regularisers.loss(self.adapter, self.ddp_model, {k: v for k, v in batch.items() if k != PAIRS_KEY})
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

    def _batch(self, micro_step: int) -> dict[str, Any]:
        """This rank's next micro-batch (starting the next epoch when this one is used up)."""
        s = self.state
        if s.position >= self.batches.usable(self.plan):
            self.meters.end_epoch(self.state.epoch, partial=False)
            s.epoch, s.position = s.epoch + 1, 0
            self.plan = self.batches.plan(s.epoch)
        indices, s.position = self.batches.take(self.plan, s.position)
        return self.batches.make(indices, micro_step, s.epoch, self._live_cache(), self.cache.lazily)

    # --- evaluation -------------------------------------------------------------------------------

    def evaluate(self, pairs: list[Pair] | None = None) -> float:
        """WER of ``pairs`` (default: the dev set) for the model as it is now (``evaluator.py``)."""
        return self.evaluator.wer(self.dev if pairs is None else pairs, self.state.step, self._live_cache())

    def _live_cache(self) -> EncoderCache | None:
        """The encoder-output cache while it holds this model's encoder outputs (until unfreezing)."""
        return self.cache.cache if not self.state.unfrozen else None

    def _compare(self, sets: list[str]) -> list[dict[str, Any]]:
        """The --eval-sets rows of base against best/ (the encoder cache is shared unless split)."""
        shared = self._live_cache() if self.cache.info.get("split_layer") is None else None
        return self.evaluator.compare(self.run_dir / "best", sets, shared)
