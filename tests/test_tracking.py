"""Experiment trackers: what a fake run logs is read back with each tool's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrtune.errors import ConfigError
from asrtune.training.tracking import Tracker, make_tracker

CONFIG = {"model": "openai/whisper-tiny.en", "lr": 1e-5, "train": ["a.jsonl", "b.jsonl"], "augment": {"noise": 0.3}}
STEPS = [(10, 2.5, 1e-5), (20, 1.75, 2e-5), (30, 1.25, 3e-5)]
EXAMPLES = "| ref | hyp |\n|---|---|\n| kubectl apply | cube control apply |"


def fake_run(tracker: Tracker) -> None:
    """What the trainer logs: loss/lr/grad_norm/utts_per_s each log step, WERs and examples each evaluation."""
    with tracker:
        for step, loss, lr in STEPS:
            tracker.log_scalars(step, {"loss": loss, "lr": lr, "grad_norm": 0.5, "utts_per_s": 12.0})
        tracker.log_scalars(30, {"dev_wer": 0.25, "guard_wer": 0.05, "skipped": None, "nan": float("nan")})
        tracker.log_text(30, "dev_examples", EXAMPLES)


def test_tensorboard_events_hold_the_scalars_and_text(tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    fake_run(make_tracker("tensorboard", tmp_path, CONFIG))
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(s, loss) for s, loss, _ in STEPS]
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([lr for _, _, lr in STEPS])
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("dev_wer")] == [(30, 0.25)]
    assert "nan" not in acc.Tags()["scalars"] and "skipped" not in acc.Tags()["scalars"]
    (event,) = acc.Tensors("dev_examples/text_summary")
    assert event.step == 30
    assert tensor_util.make_ndarray(event.tensor_proto).item().decode() == EXAMPLES
    (config,) = acc.Tensors("config/text_summary")
    assert '"lr": 1e-05' in tensor_util.make_ndarray(config.tensor_proto).item().decode()


def test_mlflow_run_holds_params_metrics_and_text(tmp_path: Path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own reader
    tracker = make_tracker("mlflow", tmp_path / "run-7", CONFIG)
    fake_run(tracker)
    client = MlflowClient(tracking_uri=(tmp_path / "run-7" / "mlruns").as_uri())
    run = client.get_run(tracker.run_id)
    assert run.info.run_name == "run-7" and run.info.status == "FINISHED"
    assert run.data.params["train"] == "a.jsonl,b.jsonl" and run.data.params["augment.noise"] == "0.3"
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "loss")] == [(s, l) for s, l, _ in STEPS]
    assert run.data.metrics["guard_wer"] == 0.05 and "nan" not in run.data.metrics
    local = client.download_artifacts(tracker.run_id, "text/dev_examples/step_00000030.md", str(tmp_path / "dl"))
    assert Path(local).read_text() == EXAMPLES


def test_unknown_tracker_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="--report-to must be one of none, tensorboard, mlflow, got 'wandb'"):
        make_tracker("wandb", tmp_path, {})
    tracker = make_tracker("none", tmp_path, CONFIG)
    fake_run(tracker)
    assert list(tmp_path.iterdir()) == []  # "none" writes nothing
