"""What a run produced: :class:`RunResult`, written to ``RUN_DIR/result.json`` and returned by
``train()``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunResult:
    """What a run produced (``result.json``). Without a dev set ``best_dev_wer`` is None and
    ``best_step`` is the last step (best/ holds final/'s weights)."""

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
    guard_base_wer: float | None = None  # --guard-dev: the base model's guard WER (step 0)
    best_guard_wer: float | None = None  # the guard WER of best/
    final_guard_wer: float | None = None
    guard_refused_step: int | None = None  # a checkpoint with a lower dev WER than best/'s that the guard refused
    guard_refused_dev_wer: float | None = None
    best_merge_alpha: float | None = None  # --merge-alphas: best/ is (1 - a) * base + a * final/ with this a
    merges: list[dict[str, Any]] = field(default_factory=list)  # every interpolation scored: alpha, dev_wer, guard_wer
    merge_reason: str | None = None  # why merges were scored: "requested" (--merge-alphas list) or "guard refused" (auto)
    base_dev_wer: float | None = None  # the base model's dev WER (measured at step 0 with --guard-dev)
    regularisers: dict[str, Any] = field(default_factory=dict)  # --l2-sp, --distill-base, --replay-text in force

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
