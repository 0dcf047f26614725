"""Which checkpoint becomes ``best/``: the dev (and ``--guard-dev``) WER at each evaluation.

A checkpoint becomes ``best/`` when its dev WER is the lowest so far and, with a guard, its
guard WER is at most ``--guard-margin`` percentage points above the base model's
(``outcome.guard_allows``). The base model is the first candidate: a fresh run with a guard
evaluates it at step 0. The best-on-dev checkpoint the guard refused stays in
:class:`~asrtune.training.state.TrainState` (``guard_refused_step/_wer``), for the closing lines
and the WiSE-FT merges.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from asrtune.training.config import TrainConfig
from asrtune.training.distributed import Processes
from asrtune.training.model_folders import ModelFolders
from asrtune.training.outcome import guard_allows
from asrtune.training.outcome import pct as _pct
from asrtune.training.run_data import Pair
from asrtune.training.run_log import RunLog
from asrtune.training.state import TrainState
from asrtune.training.tracking import examples_table


class Selection:
    """Evaluates dev and the guard through ``score`` and keeps ``best/`` (rank 0 scores; every
    rank learns the patience count)."""

    def __init__(self, config: TrainConfig, sets: tuple[list[Pair], list[Pair]], score: Callable[[list[Pair]], float],
                 folders: ModelFolders, log: RunLog, processes: Processes, dev_hyps: Callable[[], list[str]]):
        self.config, self.folders, self.log, self.processes = config, folders, log, processes
        self.dev, self.guard = sets
        self.score = score  # WER of a set for the model as it is now
        self.dev_hyps = dev_hyps  # the last dev evaluation's hypotheses
        self.guard_last: float | None = None  # the guard WER of the last evaluation

    def guard_ok(self, state: TrainState, guard_wer: float | None) -> bool:
        """Whether a checkpoint with this guard WER may become ``best/`` (always, without a guard)."""
        return guard_allows(guard_wer, state.guard_base_wer, self.config.guard_margin)

    def evaluate_dev(self, state: TrainState, stopped: str | None = None) -> None:
        """Dev (and guard) WER on rank 0; keeps ``best/`` and the patience count (shared with every rank)."""
        s = state
        if self.processes.main:
            start = time.time()
            s.last_wer = wer = self.score(self.dev)
            self.guard_last = guard = self._guard_wer(s)
            if s.step == 0:  # the base model (evaluated first with a guard)
                s.base_dev_wer = wer
            improved = self._keep(s, wer, guard, stopped)
            # wall_time (Unix seconds, as TensorBoard's) dates the checkpoint: WER against wall-clock time
            record = {"step": s.step, "dev_wer": wer, "best_dev_wer": s.best_wer, "eval_s": round(time.time() - start, 2),
                      "wall_time": round(time.time(), 2)}
            if self.guard:
                record |= {"guard_wer": guard, "guard_base_wer": s.guard_base_wer, "guard_ok": self.guard_ok(s, guard)}
            self.log.metric(record)
            self.log.tracker.log_text(s.step, "dev_examples", examples_table([u.text for u, _ in self.dev], self.dev_hyps()))
            self.log.say(f"step {s.step}: dev WER {_pct(wer)}{self._guard_note(s, guard)} (best {_pct(s.best_wer)} at "
                         f"step {s.best_step})" + (" - saved best/" if improved else ""))
        s.evals_since_best = self.processes.broadcast_int(s.evals_since_best)

    def _guard_wer(self, s: TrainState) -> float | None:
        if not self.guard:
            return None
        if s.step == 0 and s.guard_base_wer is not None:
            return s.guard_base_wer  # the base model, just measured
        return self.score(self.guard)

    def _keep(self, s: TrainState, wer: float, guard: float | None, stopped: str | None) -> bool:
        """Save ``best/`` when this checkpoint is the best admissible one; whether it was."""
        beats_best = s.best_wer is None or wer < s.best_wer
        improved = beats_best and self.guard_ok(s, guard)
        if beats_best and not improved and (s.guard_refused_wer is None or wer < s.guard_refused_wer):
            s.guard_refused_step, s.guard_refused_wer = s.step, wer
        if not improved:
            s.evals_since_best += 1
            return False
        s.best_wer, s.best_step, s.evals_since_best, s.best_guard_wer = wer, s.step, 0, guard
        s.best_merge_alpha = None  # a checkpoint of a resumed run can beat an earlier run's merge
        self.folders.save("best", {"step": s.step, "dev_wer": wer, "dev": self.config.dev, "guard_wer": guard}, s, stopped)
        return True

    def _guard_note(self, s: TrainState, guard: float | None) -> str:
        if not self.guard:
            return ""
        over = "" if self.guard_ok(s, guard) else ", over the margin: not eligible"
        return f", guard WER {_pct(guard)} (base {_pct(s.guard_base_wer)}{over})"

    def evaluate_guard_base(self, state: TrainState) -> None:
        """The base model's guard WER. A fresh run measures it at step 0 by evaluating the base
        model like any checkpoint (so the base is the first candidate for ``best/``: with no
        later checkpoint inside the margin, ``best/`` is the base model); a resumed run has it in
        its :class:`TrainState`."""
        if state.guard_base_wer is not None:
            return
        if state.step > 0:
            self.log.say("--guard-dev: this run's checkpoint holds no base guard WER (an older asrtune wrote it); "
                         "measuring the current model instead")
        if self.processes.main:
            state.guard_base_wer = self.score(self.guard)
            self.log.metric({"event": "guard-base", "step": state.step, "guard_wer": state.guard_base_wer})
            self.log.say(f"guard {Path(self.config.guard_dev).name}: base WER {_pct(state.guard_base_wer)} on "
                         f"{len(self.guard)} utterances; best/ must stay within +{self.config.guard_margin:g} points")
        if state.step == 0:
            self.evaluate_dev(state)
