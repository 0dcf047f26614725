"""Checks before a run writes anything (training/preflight.py), the divergence guard
(training/divergence.py) and the step count (training/schedule.py)."""

from __future__ import annotations

import math

import pytest
import yaml

from asrtune.data.manifest import ManifestError, Utterance, write_manifest
from asrtune.errors import ConfigError
from asrtune.training.config import TrainConfig
from asrtune.training.divergence import DIVERGENCE_GRACE_STEPS, diverged, watch_loss
from asrtune.training.preflight import check_manifests, check_run_dir
from asrtune.training.schedule import DEFAULT_EPOCHS, total_steps
from asrtune.training.state import TrainState


def manifest(path, n=1):
    write_manifest(path, [Utterance(audio_filepath=str(path.parent / f"{i}.wav"), text="hi", duration=1.0) for i in range(n)],
                   relative=False)
    return str(path)


def test_manifests_are_checked_before_anything_loads(tmp_path):
    train = manifest(tmp_path / "train.jsonl")
    check_manifests(TrainConfig(model="m", train=[train], out=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match=r"--dev .*missing.jsonl: manifest not found"):
        check_manifests(TrainConfig(model="m", train=[train], dev=str(tmp_path / "missing.jsonl")))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ManifestError, match=r"empty.jsonl: empty manifest"):  # the file's own error names it
        check_manifests(TrainConfig(model="m", train=[train], eval_sets=[str(tmp_path / "empty.jsonl")]))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file; give a folder"):
        check_manifests(TrainConfig(model="m", train=[train], out=str(tmp_path / "file")))


def test_run_dir_checks_write_nothing(tmp_path):
    said: list[str] = []
    run = tmp_path / "run"
    cfg = TrainConfig(model="m", train=["t.jsonl"], out=str(run))
    assert check_run_dir(cfg, run, said.append) is None and not run.exists()
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": "m", "train": ["t.jsonl"], "lr": 1e-5}))
    with pytest.raises(ConfigError, match="already holds a run; use --resume"):
        check_run_dir(cfg, run, said.append)
    resumed = TrainConfig(model="m", train=["t.jsonl"], resume=str(run), lr=2e-5)
    with pytest.raises(ConfigError, match="the config differs from the run's"):
        check_run_dir(resumed, run, said.append)
    resumed.force = True
    assert check_run_dir(resumed, run, said.append) is None  # no checkpoint yet
    assert said == [f"--resume: no checkpoint in {run} yet; starting from step 0"]
    with pytest.raises(ConfigError, match="not a training run dir"):
        check_run_dir(TrainConfig(model="m", train=["t.jsonl"], resume=str(tmp_path)), tmp_path, said.append)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_the_divergence_guard_waits_out_its_grace_steps(tmp_path):
    s = TrainState()
    assert watch_loss(s, 1.0, 4.0) is None and s.loss_ema == 1.0
    assert watch_loss(s, 100.0, 4.0) is None  # within the grace steps
    s.step = DIVERGENCE_GRACE_STEPS
    assert "exploded past 4x its best (1)" in watch_loss(s, 100.0, 4.0)
    assert watch_loss(TrainState(), math.nan, 4.0) == "the loss became nan"
    error = diverged(tmp_path, 12, 1e-3, "the loss became nan")
    assert "at step 12: the loss became nan" in str(error) and "--lr 1e-5" in str(error)
    assert str(error).endswith("no checkpoint was written yet")


def test_total_steps():
    assert total_steps(None, None, 5) == DEFAULT_EPOCHS * 5
    assert total_steps(None, 1.5, 3) == 5 and total_steps(9, 1.5, 3) == 9
