"""The checks a run makes before it loads a model or writes anything: a typo should cost a
second, not a minute, and leave no half-made run dir behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from asrtune.data.manifest import read_manifest
from asrtune.errors import ConfigError
from asrtune.training.config import TrainConfig, config_differences
from asrtune.training.state import find_checkpoint, load_checkpoint


def check_manifests(config: TrainConfig) -> None:
    """Every manifest exists, is read through (a bad line raises ``ManifestError`` naming it) and
    holds an utterance; ``--out`` is not an existing file."""
    named = [("train", p) for p in config.train] + [("dev", config.dev), ("guard-dev", config.guard_dev)]
    named += [("eval-sets", p) for p in config.eval_sets]
    for option, path in named:
        if path and not Path(path).is_file():
            raise ConfigError(f"--{option} {path}: manifest not found")
    for option, path in named:
        if path and sum(1 for _ in read_manifest(path)) == 0:
            raise ConfigError(f"--{option} {path}: manifest is empty (no utterances)")
    out = config.resume or config.out
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder for the run")


def check_run_dir(config: TrainConfig, run_dir: Path, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Check ``--out``/``--resume`` without writing; returns the checkpoint to resume from (None:
    start at step 0). A resumed run's options must match its ``config.yaml`` unless ``--force``."""
    if not config.resume:
        if (run_dir / "config.yaml").exists() and not config.force:
            raise ConfigError(f"--out {run_dir} already holds a run; use --resume {run_dir} to continue it, "
                              "or --force to start over there")
        return None
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"--resume {run_dir}: not a training run dir (no config.yaml)")
    diffs = config_differences(yaml.safe_load(saved.read_text()) or {}, config)
    if diffs and not config.force:
        raise ConfigError(f"--resume {run_dir}: the config differs from the run's ({'; '.join(diffs)}); "
                          "pass --force to continue with the new values")
    path = find_checkpoint(run_dir)
    if path is None:
        say(f"--resume: no checkpoint in {run_dir} yet; starting from step 0")
        return None
    return load_checkpoint(path)
