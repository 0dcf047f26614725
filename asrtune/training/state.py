"""Everything a resumed run needs, saved and restored as a whole.

:class:`TrainState` is the loop's own state (where it is, how it is doing, the RNGs); a
checkpoint (``RUN_DIR/checkpoint/state.pt``) is that plus the trainable weights, the optimiser
and the gradient scaler. The learning-rate schedule is a pure function of ``step``, so it needs
no state of its own.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrtune.errors import AsrtuneError
from asrtune.fileio import atomic_directory

CHECKPOINT_FILE = "state.pt"
CHECKPOINT_DIRS = ("checkpoint", ".checkpoint.old")  # .old survives a kill mid-replace


@dataclass
class TrainState:
    """The training loop's state between two steps.

    >>> s = TrainState(step=3, best_wer=0.25)
    >>> TrainState.from_dict(s.to_dict()) == s
    True
    """

    step: int = 0  # optimiser steps taken
    epoch: int = 0
    position: int = 0  # utterances of this epoch's plan already consumed (all ranks)
    best_wer: float | None = None
    best_step: int | None = None
    last_wer: float | None = None
    evals_since_best: int = 0  # for --patience
    elapsed_s: float = 0.0  # training time so far (for --max-train-minutes across resumes)
    loss_ema: float | None = None  # smoothed loss the divergence guard watches
    min_loss_ema: float | None = None
    unfrozen: bool = False  # --unfreeze-top-layers has taken effect
    guard_base_wer: float | None = None  # --guard-dev: the base model's guard WER (measured at step 0)
    best_guard_wer: float | None = None  # ... and that of the checkpoint in best/
    guard_refused_step: int | None = None  # --guard-dev: the checkpoint with the lowest dev WER the guard kept out of best/
    guard_refused_wer: float | None = None  # ... and its dev WER
    best_merge_alpha: float | None = None  # --merge-alphas: best/ is (1 - a) * base + a * final/ with this a
    base_dev_wer: float | None = None  # the base model's dev WER (measured at step 0 with --guard-dev)
    rng: dict[str, Any] = field(default_factory=dict)  # python/numpy/torch generator states

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainState":
        return cls(**data)

    def capture_rng(self) -> None:
        self.rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}

    def restore_rng(self) -> None:
        if self.rng:
            random.setstate(self.rng["python"])
            np.random.set_state(self.rng["numpy"])
            torch.set_rng_state(self.rng["torch"])


def seed_everything(seed: int) -> None:
    """Seed the generators :meth:`TrainState.capture_rng` saves (python, numpy, torch)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint file, or None before the first save."""
    for name in CHECKPOINT_DIRS:
        path = Path(run_dir) / name / CHECKPOINT_FILE
        if path.is_file():
            return path
    return None


def save_checkpoint(run_dir: Path, state: TrainState, adapter: Any, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler) -> None:
    """Write ``run_dir/checkpoint`` atomically (the previous one stays until the new one is whole)."""
    state.capture_rng()
    payload = {"state": state.to_dict(), "trainable": adapter.trainable_state_dict(),
               "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
    with atomic_directory(Path(run_dir) / "checkpoint") as tmp:
        torch.save(payload, tmp / CHECKPOINT_FILE)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The payload :func:`save_checkpoint` wrote (on CPU)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if "state" not in payload:  # written before TrainState existed
        raise AsrtuneError(f"{path}: a checkpoint from an older asrtune that cannot be resumed; start a new run")
    return payload


def restore_checkpoint(payload: dict[str, Any], adapter: Any, optimizer: torch.optim.Optimizer,
                       scaler: torch.amp.GradScaler) -> TrainState:
    """Put weights, optimiser, scaler and RNGs back; return the loop state. The caller unfreezes
    first when ``payload["state"]["unfrozen"]`` (the weights then include the unfrozen layers)."""
    state = TrainState.from_dict(payload["state"])
    adapter.load_trainable_state_dict(payload["trainable"])
    optimizer.load_state_dict(payload["optimizer"])
    scaler.load_state_dict(payload["scaler"])
    state.restore_rng()
    return state
