"""What a run tells the user and its curves: ``train.log`` lines, ``metrics.jsonl`` records.

:class:`RunLog` is rank 0's voice (every other rank stays silent): :meth:`RunLog.say` prints a
line and appends it to ``RUN_DIR/train.log``; :meth:`RunLog.metric` appends one JSON record to
``RUN_DIR/metrics.jsonl`` (fsynced: a killed run keeps every line before the kill) and sends the
points on a curve to the tracker. :class:`Meter` sums a window of steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from asrtune.fileio import write_text_atomic
from asrtune.training.progress import Progress
from asrtune.training.state import CHECKPOINT_DIRS, TrainState
from asrtune.training.tracking import Tracker

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


@dataclass
class Meter:
    """Utterances, seconds and summed loss over a window of steps (a log interval, an epoch)."""

    utts: int = 0
    seconds: float = 0.0
    loss: float = 0.0
    steps: int = 0

    def add(self, utts: int, seconds: float, loss: float) -> None:
        self.utts, self.seconds, self.loss, self.steps = self.utts + utts, self.seconds + seconds, self.loss + loss, self.steps + 1

    def rate(self) -> float:
        return self.utts / max(self.seconds, 1e-9)


class RunLog:
    """``train.log`` and ``metrics.jsonl`` of ``run_dir``, written by the main process only."""

    def __init__(self, run_dir: Path, main: bool):
        self.run_dir = run_dir
        self.main = main
        self.file: IO[str] | None = None  # train.log, open once the run dir exists
        self.tracker = Tracker()  # "none" until the run dir exists (rank 0 only)

    def open(self) -> None:
        """Start appending to ``train.log`` (the run dir exists)."""
        self.file = open(self.run_dir / LOG_FILE, "a", encoding="utf-8")

    def say(self, message: str) -> None:
        """A line for the user (rank 0 only), also appended to RUN_DIR/train.log."""
        if not self.main:
            return
        tqdm.write(message, file=sys.stderr)
        if self.file is not None:
            self.file.write(time.strftime("%H:%M:%S ") + message + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def metric(self, record: dict[str, Any]) -> None:
        """Append ``record`` to metrics.jsonl; a point on a curve (no ``event``) also goes to the tracker."""
        if not self.main:
            return
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if "event" not in record:  # a log step or an evaluation: every number in it (loss, lr, dev_wer, guard_wer, ...)
            self.tracker.log_scalars(record["step"], {k: v for k, v in record.items()
                                                      if k not in ("step", "wall_time") and not isinstance(v, bool)})

    def truncate_metrics(self, step: int) -> None:
        """Drop metric lines written after the checkpoint of ``step`` (and a torn last line after a kill)."""
        path = self.run_dir / METRICS_FILE
        if not self.main or not path.exists():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
        write_text_atomic(path, "".join(line + "\n" for line in keep))


def clear_earlier_run(run_dir: Path) -> None:
    """Remove what a run started over in ``run_dir`` (``--force`` without ``--resume``) would
    otherwise mix with an earlier run's: its metrics (one learning curve, not two), result and
    resumable checkpoint. ``best/`` and ``final/`` are replaced when the new run writes them;
    ``train.log`` keeps both runs' lines."""
    for name in (METRICS_FILE, "result.json"):
        (run_dir / name).unlink(missing_ok=True)
    for name in CHECKPOINT_DIRS:
        shutil.rmtree(run_dir / name, ignore_errors=True)


class StepMeters:
    """Per-step bookkeeping: a ``metrics.jsonl`` line every ``--log-every`` steps (mean loss,
    learning rate, gradient norm, utterances per second) and one per epoch."""

    def __init__(self, log: RunLog, log_every: int):
        self.log, self.log_every = log, log_every
        self.interval, self.epoch = Meter(), Meter()

    def record(self, state: TrainState, progress: Progress, last: bool, loss: float, utts: int, seconds: float,
               lr: float, grad_norm: float) -> None:
        """Count the step just taken (``state.step``); ``last``: the run's last step, always logged."""
        s = state
        s.elapsed_s = progress.elapsed()
        self.interval.add(utts, seconds, loss)
        self.epoch.add(utts, seconds, loss)
        progress.update(1, utts=utts, loss=f"{loss:.3f}", lr=f"{lr:.2e}", utts_s=f"{self.interval.rate():.1f}")
        if s.step % self.log_every == 0 or last:
            m = self.interval
            self.log.metric({"step": s.step, "epoch": s.epoch, "loss": m.loss / m.steps, "lr": lr, "grad_norm": grad_norm,
                             "utts_per_s": m.rate(), "elapsed_s": round(s.elapsed_s, 2)})
            self.interval = Meter()

    def end_epoch(self, epoch: int, partial: bool) -> None:
        """The epoch's line (when it trained on anything); the epoch meter starts again."""
        m = self.epoch
        if m.utts:
            self.log.metric({"event": "epoch", "epoch": epoch, "utts": m.utts, "train_s": round(m.seconds, 2),
                             "utts_per_s": m.rate(), "partial": partial})
            self.log.say(f"epoch {epoch}{' (partial)' if partial else ''}: {m.utts} utterances at {m.rate():.1f} utts/s")
        self.epoch = Meter()
