"""The end of a run, rank 0: ``final/``, the WiSE-FT merge search, ``best/`` without a dev set,
``learning_curve.png``, the ``--eval-sets`` comparison, the model cards, ``--export`` copies,
``result.json`` and the closing lines saying what ``best/`` and ``final/`` hold.

WiSE-FT (``--merge-alphas``): :func:`merge_plan` picks the alphas (a listed ``--merge-alphas``;
for ``auto`` :data:`~asrtune.training.outcome.DEFAULT_MERGE_ALPHAS` when the forgetting guard
refused a checkpoint better on dev than ``best/``); :meth:`Finisher.search_merges` scores each
``(1 - a) * base + a * final`` on dev and the guard (``models/interpolate.py``) and saves the best
admissible one as ``best/``; the model holds ``final/``'s weights again afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from asrtune.fileio import write_json_atomic
from asrtune.models.interpolate import interpolate_weights
from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.config import AUTO as AUTO_MERGE
from asrtune.training.config import TrainConfig
from asrtune.training.curves import plot_learning_curve
from asrtune.training.model_folders import ModelFolders
from asrtune.training.outcome import DEFAULT_MERGE_ALPHAS, MERGE_AFTER_REFUSAL, MERGE_REQUESTED, best_holds, outcome_lines
from asrtune.training.outcome import pct as _pct
from asrtune.training.result import RunResult
from asrtune.training.run_log import RunLog
from asrtune.training.selection import Selection
from asrtune.training.state import TrainState

Weights = dict[str, torch.Tensor]


def may_train(adapter: ModelAdapter, top_layers: int) -> dict[str, torch.nn.Parameter]:
    """Every parameter training may change: the trainable ones and those of the ``top_layers``
    top encoder layers --unfreeze-top-layers will open (by name, in the model's order)."""
    opening = {id(p) for p in adapter.top_layer_parameters(top_layers)}
    return {n: p for n, p in adapter.model.named_parameters() if p.requires_grad or id(p) in opening}


def trainable_weights(adapter: ModelAdapter, top_layers: int) -> Weights:
    """CPU copies of every weight training may change (:func:`may_train`): the base values a
    WiSE-FT merge starts from, or final/'s to put back."""
    return {n: p.detach().cpu().clone() for n, p in may_train(adapter, top_layers).items()}


def guard_refused_better(state: TrainState) -> bool:
    """Whether the guard refused a checkpoint with a lower dev WER than best/'s."""
    s = state
    return s.guard_refused_wer is not None and (s.best_wer is None or s.guard_refused_wer < s.best_wer)


def merge_plan(config: TrainConfig, state: TrainState, has_guard: bool) -> tuple[list[float], str | None]:
    """The WiSE-FT alphas to score at the end of the run, and why (``RunResult.merge_reason``).

    ``--merge-alphas`` listed: those. ``auto`` (the default): :data:`DEFAULT_MERGE_ALPHAS` when
    the forgetting guard refused checkpoints better on dev than best/ (a merge of final/ with
    the base often keeps much of the gain within the guard), else none. ``none``: none."""
    if config.merge_alphas != AUTO_MERGE:
        return list(config.merge_alphas), MERGE_REQUESTED if config.merge_alphas else None
    if not (has_guard and guard_refused_better(state)):
        return [], None
    return list(DEFAULT_MERGE_ALPHAS), MERGE_AFTER_REFUSAL


def refusal_merge_note(state: TrainState) -> str:
    """The line announcing the merges ``auto`` scores after the guard refused better checkpoints."""
    s = state
    return (f"the forgetting guard refused every checkpoint better on dev than best/ ({best_holds(s)}, dev WER "
            f"{_pct(s.best_wer)}; step {s.guard_refused_step} reached {_pct(s.guard_refused_wer)}): scoring WiSE-FT "
            f"merges of final/ with the base model, alphas {', '.join(f'{a:g}' for a in DEFAULT_MERGE_ALPHAS)} "
            "(--merge-alphas none skips this)")


class Finisher:
    """Writes what a finished run leaves behind (rank 0 only)."""

    def __init__(self, config: TrainConfig, run_dir: Path, adapter: ModelAdapter, folders: ModelFolders,
                 selection: Selection, log: RunLog):
        self.config, self.run_dir, self.adapter = config, run_dir, adapter
        self.folders, self.selection, self.log = folders, selection, log

    def finish(self, result: RunResult, state: TrainState, base_weights: Weights, top_layers: int,
               compare: Callable[[list[str]], list[dict[str, Any]]], started: float) -> None:
        """Everything after the last step; ``compare(sets)`` gives the ``--eval-sets`` rows of best/."""
        s, cfg = state, self.config
        guard = self.selection.guard_last
        self.folders.save("final", {"step": s.step, "dev_wer": s.last_wer, "dev": cfg.dev, "guard_wer": guard},
                          s, result.stopped)
        alphas, reason = merge_plan(cfg, s, bool(self.selection.guard))
        if reason == MERGE_AFTER_REFUSAL:
            self.log.say(refusal_merge_note(s))
        if alphas:
            self.search_merges(result, s, alphas, reason, base_weights, trainable_weights(self.adapter, top_layers))
        if guard_refused_better(s):
            result.guard_refused_step, result.guard_refused_dev_wer = s.guard_refused_step, s.guard_refused_wer
        if not (self.run_dir / "best").exists():  # no dev set: final is the best we know
            self.folders.save("best", {"step": s.step, "dev_wer": None}, s, result.stopped)
            result.best_step = s.step
        plot_learning_curve(self.run_dir / "metrics.jsonl", self.run_dir / "learning_curve.png")
        if cfg.eval_sets:
            result.eval_results = compare(([cfg.dev] if cfg.dev else []) + [p for p in cfg.eval_sets if p != cfg.dev])
        self.write_cards(result, s)
        for fmt in cfg.export_formats():
            self.folders.export(fmt, result.to_dict())
        write_json_atomic(self.run_dir / "result.json", result.to_dict())
        self.log.say(f"done: {s.step} steps in {(time.time() - started) / 60:.1f} min ({result.stopped}); models in "
                     f"{self.run_dir / 'best'} and {self.run_dir / 'final'}")
        for line in outcome_lines(result, cfg.guard_margin, has_dev=bool(cfg.dev)):
            self.log.say(line)
        self.log.close()

    def write_cards(self, result: RunResult, state: TrainState) -> None:
        """The run's final word on both folders; the --eval-sets rows describe best/, so final/
        only shows them when it holds the same weights."""
        self.folders.write_card(self.run_dir / "best", "best", result.to_dict())
        same = not self.config.dev or (state.best_step == state.step and state.best_merge_alpha is None)
        self.folders.write_card(self.run_dir / "final", "final", result.to_dict() | ({} if same else {"eval_results": []}))

    def search_merges(self, result: RunResult, state: TrainState, alphas: list[float], reason: str | None,
                      base: Weights, final: Weights) -> None:
        """Score ``(1 - a) * base + a * final`` on dev and the guard for each ``a`` in ``alphas``;
        the best on dev within the guard margin that beats ``best/`` replaces it."""
        s, sel = state, self.selection
        result.merge_reason = reason
        chosen: tuple[float, float, float | None] | None = None
        for alpha in alphas:
            self.adapter.load_trainable_state_dict(interpolate_weights(base, final, alpha))
            wer = sel.score(sel.dev)
            guard = sel.score(sel.guard) if sel.guard else None
            ok = sel.guard_ok(s, guard)
            result.merges.append({"alpha": alpha, "dev_wer": wer, "guard_wer": guard, "guard_ok": ok})
            self.log.metric({"event": "merge", "step": s.step, "alpha": alpha, "merge_dev_wer": wer, "guard_wer": guard,
                             "guard_ok": ok})
            self.log.say(f"merge {1 - alpha:g} x base + {alpha:g} x final/: dev WER {_pct(wer)}"
                         + (f", guard WER {_pct(guard)}" + ("" if ok else " (over the margin)") if sel.guard else ""))
            if ok and (s.best_wer is None or wer < s.best_wer) and (chosen is None or wer < chosen[1]):
                chosen = (alpha, wer, guard)
        if chosen is not None:
            alpha, s.best_wer, s.best_guard_wer = chosen
            s.best_step, s.best_merge_alpha = s.step, alpha
            self.adapter.load_trainable_state_dict(interpolate_weights(base, final, alpha))
            self.folders.save("best", {"step": s.step, "merge_alpha": alpha, "dev_wer": s.best_wer, "dev": self.config.dev,
                                       "guard_wer": s.best_guard_wer}, s, result.stopped)
            self.log.say(f"best/ is now the merge with alpha {alpha:g} (dev WER {_pct(s.best_wer)})")
        self.adapter.load_trainable_state_dict(final)
        result.best_dev_wer, result.best_step, result.best_guard_wer = s.best_wer, s.best_step, s.best_guard_wer
        result.best_merge_alpha = s.best_merge_alpha
