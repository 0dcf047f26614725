"""What a run trains and evaluates on: the manifests read into (utterance, target text) pairs,
with the text policy applied and what the model cannot train on skipped (counted by reason).

Sources are the ``--train`` manifests (the first one with the examples the adapter adds, e.g.
Whisper's no-speech clips), then the ``--replay-text`` renderings; ``weights`` are their
sampling weights. Dev and guard pairs keep the references as written (the metric normalises).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from asrtune.data.audio import audio_info
from asrtune.data.manifest import Utterance, load_manifest
from asrtune.errors import ConfigError
from asrtune.models.cache import cache_dir
from asrtune.training.adapters.base import ModelAdapter
from asrtune.training.config import TrainConfig
from asrtune.training.replay import replay_utterances, replay_weights
from asrtune.training.text_policy import apply_text_policy

Pair = tuple[Utterance, str]  # an utterance and its training target (or, for dev and guard, reference) text


def cache_root(config: TrainConfig) -> Path:
    """``--cache-dir`` when given, else the asrtune cache (step-0 hypotheses, replay renderings)."""
    return Path(config.cache_dir) if config.cache_dir else cache_dir()


@dataclass
class RunData:
    """The run's training sources, evaluation sets and skip counts."""

    sources: list[list[Pair]] = field(default_factory=list)  # the --train manifests, then the --replay-text renderings
    weights: list[float] | None = None  # sampling weights of the sources (--weights, --replay-share)
    added: list[Pair] = field(default_factory=list)  # examples the adapter added to the first source (no-speech clips)
    dev: list[Pair] = field(default_factory=list)
    guard: list[Pair] = field(default_factory=list)  # --guard-dev
    skipped: dict[str, int] = field(default_factory=dict)  # "reason (manifest name)" -> count

    def summary(self, train_paths: list[str], describe_added: Callable[[list[Pair]], str]) -> list[str]:
        """The log lines naming what the run trains and evaluates on, and what it skipped."""
        sizes = ", ".join(f"{Path(p).name}: {len(s)}" for p, s in zip(train_paths, self.sources))
        lines = [f"train utterances: {sizes}" + (f" (with {describe_added(self.added)})" if self.added else "")
                 + (f"; dev: {len(self.dev)}" if self.dev else "; no dev set")]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())))
        return lines


def load_run_data(config: TrainConfig, adapter: ModelAdapter) -> RunData:
    """Read every manifest ``config`` names; a manifest left with nothing usable is a ConfigError."""
    data = RunData(weights=config.weights)
    for path in config.train:
        kept = usable(load_manifest(path), path, config, adapter, data.skipped)
        if not kept:
            raise ConfigError(f"--train {path}: no usable utterances (all skipped: {data.skipped})")
        data.sources.append(kept)
    data.added = adapter.prepare_training(data.sources)  # Whisper: no-speech clips
    data.sources[0] += data.added
    if config.replay_text:  # general English, spoken by eSpeak, at --replay-share of each epoch
        spoken = replay_utterances(config.replay_text, cache_root(config), config.seed)
        replay = usable(spoken, config.replay_text, config, adapter, data.skipped)
        if not replay:
            raise ConfigError(f"--replay-text {config.replay_text}: no usable utterances (all skipped: {data.skipped})")
        data.weights = replay_weights(config.weights, [len(s) for s in data.sources], config.replay_share)
        data.sources.append(replay)
    for option, path, pairs in (("--dev", config.dev, data.dev), ("--guard-dev", config.guard_dev, data.guard)):
        if path:
            pairs += [(u, u.text) for u, _ in usable(load_manifest(path), path, config, adapter, data.skipped)]
            if not pairs:
                raise ConfigError(f"{option} {path}: no usable utterances")
    return data


def usable(utts: list[Utterance], path: str, config: TrainConfig, adapter: ModelAdapter, skipped: dict[str, int]) -> list[Pair]:
    """The (utterance, target text) pairs of ``utts`` the adapter can train on; the rest are
    counted in ``skipped`` under their reason and ``path``'s file name."""
    kept = []
    for u in utts:
        if u.duration <= 0:  # manifests may omit durations: read them from the header
            u.duration = audio_info(u.audio_filepath)[0]
        target = apply_text_policy(u.text, config.text_policy)
        reason = adapter.skip_reason(u, target)
        if reason:
            key = f"{reason} ({Path(path).name})"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        kept.append((u, target))
    return kept
