"""Experiment tracking: training curves and decoded examples in TensorBoard or MLflow.

``make_tracker(report_to, run_dir, config)`` returns a :class:`Tracker`; the trainer logs
scalars (loss, lr, grad_norm, utts_per_s each log step; dev_wer, guard_wer each evaluation) and
text (:func:`examples_table` of a few decoded dev examples) through it, and closes it at the end
of the run (``close(failed=True)`` when it fails). :func:`check_tracker` imports the library
without writing anything, so a missing one stops a run before its run dir exists.
``metrics.jsonl`` in the run dir stays the record of truth; a tracker is a view for people who
live in a dashboard.

- ``tensorboard``: event files in ``RUN_DIR/tensorboard/`` (``tensorboard --logdir RUN_DIR``);
- ``mlflow``: a run named after the run dir, in ``$MLFLOW_TRACKING_URI`` when set, else a file
  store in ``RUN_DIR/mlruns`` (``mlflow ui --backend-store-uri RUN_DIR/mlruns``); the config goes
  in as flattened parameters, text as artifacts under ``text/``. MLflow 3 keeps the file store
  only behind ``MLFLOW_ALLOW_FILE_STORE=true`` (its database stores need SQLAlchemy, which
  mlflow-skinny lacks), so asrtune sets that for the default store; point
  ``MLFLOW_TRACKING_URI`` at a server or database to use those instead;
- ``none``: nothing.

>>> with make_tracker("none", Path("runs/x"), {}) as tracker:
...     tracker.log_scalars(10, {"loss": 1.5})
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

from asrtune.errors import ConfigError
from asrtune.extras import needs_extra

REPORT_TO = ("none", "tensorboard", "mlflow")
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"
MLFLOW_EXPERIMENT = "asrtune"  # unless MLFLOW_EXPERIMENT_NAME says otherwise
MLFLOW_PARAM_CHARS = 500  # the longest parameter value every MLflow backend stores
#: what each tracker imports, and the package that provides it (named in the error)
REQUIREMENTS = {"tensorboard": ("torch.utils.tensorboard", "the tensorboard package"),
                "mlflow": ("mlflow.tracking", "mlflow-skinny")}
DEV_EXAMPLES = 5  # decoded dev utterances shown as text at each evaluation


class Tracker:
    """Where a run's numbers and text go besides ``metrics.jsonl``. This base class drops them (``none``)."""

    name = "none"

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Log each finite number in ``values`` under its key at ``step``."""

    def log_text(self, step: int, tag: str, text: str) -> None:
        """Log ``text`` (e.g. decoded dev examples, Markdown) under ``tag`` at ``step``."""

    def close(self, failed: bool = False) -> None:
        """Flush and finish the run (marked failed when ``failed``); the tracker takes nothing after this."""

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


class TensorBoardTracker(Tracker):
    """Scalars and text in TensorBoard event files under ``RUN_DIR/tensorboard/``."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, config: Mapping[str, Any]):
        check_tracker(self.name)
        from torch.utils.tensorboard import SummaryWriter  # optional extra [tracking], checked by check_tracker

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.writer.add_text("config", "```\n" + json.dumps(dict(config), indent=2, default=str) + "\n```", 0)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in _finite(values).items():
            self.writer.add_scalar(key, value, step)

    def log_text(self, step: int, tag: str, text: str) -> None:
        self.writer.add_text(tag, text, step)

    def close(self, failed: bool = False) -> None:
        self.writer.close()  # TensorBoard has no run status; the curves simply end


class MLflowTracker(Tracker):
    """An MLflow run (the client API, no global state) named after the run dir."""

    name = "mlflow"

    def __init__(self, run_dir: Path, config: Mapping[str, Any]):
        check_tracker(self.name)
        from mlflow.tracking import MlflowClient  # optional extra [tracking], checked by check_tracker

        run_dir = Path(run_dir)
        self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or _file_store(run_dir / MLFLOW_DIR)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME", MLFLOW_EXPERIMENT)
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(experiment_name)
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.resolve().name).info.run_id
        self._log_params(config)

    def _log_params(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param  # optional extra [tracking], checked by check_tracker

        params = [Param(k, v) for k, v in flatten_config(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric  # optional extra [tracking], checked by check_tracker

        now_ms = int(time.time() * 1000)
        metrics = [Metric(k, v, now_ms, int(step)) for k, v in _finite(values).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_text(self, step: int, tag: str, text: str) -> None:
        self.client.log_text(self.run_id, text, f"text/{_safe(tag)}/step_{int(step):08d}.md")

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


TRACKERS = {"none": lambda run_dir, config: Tracker(), "tensorboard": TensorBoardTracker, "mlflow": MLflowTracker}


def make_tracker(report_to: str, run_dir: Path, config: dict) -> Tracker:
    """The tracker named by ``--report-to`` (none, tensorboard, mlflow), started for ``run_dir``.

    Raises :class:`ConfigError` for an unknown name or a missing library (naming the pip extra).
    """
    name = check_tracker(report_to)
    return TRACKERS[name](Path(run_dir), config)


def check_tracker(report_to: str | None) -> str:
    """The tracker's canonical name, once its library imports; writes nothing, so a run checks
    this before it makes its run dir.

    >>> check_tracker(" None ")
    'none'
    """
    name = (report_to or "none").strip().lower()
    if name not in TRACKERS:
        raise ConfigError(f"--report-to must be one of {', '.join(REPORT_TO)}, got {report_to!r}")
    if name in REQUIREMENTS:
        module, package = REQUIREMENTS[name]
        with needs_extra("tracking", f"--report-to {name}", package):
            importlib.import_module(module)
    return name


def examples_table(refs: list[str], hyps: list[str], limit: int = DEV_EXAMPLES) -> str:
    """The first ``limit`` reference/hypothesis pairs as a Markdown table (the same utterances at
    every evaluation, so a dashboard shows how their transcripts change).

    >>> print(examples_table(["a | b", "c"], ["a b", ""], limit=1))
    | reference | hypothesis |
    |---|---|
    | a \\| b | a b |
    """
    rows = ["| reference | hypothesis |", "|---|---|"]
    rows += [f"| {_cell(ref)} | {_cell(hyp)} |" for ref, hyp in list(zip(refs, hyps))[:limit]]
    return "\n".join(rows)


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"a.b": "value"}`` strings cut to what MLflow stores.

    >>> flatten_config({"lr": 1e-5, "train": ["a.jsonl", "b.jsonl"], "aug": {"noise": None}})
    {'lr': '1e-05', 'train': 'a.jsonl,b.jsonl', 'aug.noise': 'None'}
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name + "."))
            continue
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        flat[name] = text[:MLFLOW_PARAM_CHARS]
    return flat


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    """The numeric, finite entries (a None or NaN dev WER is not a point on a curve)."""
    out = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[key] = number
    return out


def _file_store(path: Path) -> str:
    """The URI of a local MLflow file store at ``path``, opted in (see the module docstring)."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return path.resolve().as_uri()


def _cell(text: str) -> str:
    """Text fit for a Markdown table cell: one line, pipes escaped, empty shown as such."""
    return " ".join(text.split()).replace("|", "\\|") or "*(empty)*"


def _safe(tag: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in tag) or "text"
