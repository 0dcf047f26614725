"""`manifest stats` and `manifest split`, and that manifests stream in constant memory."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from asrtune.cli import main
from asrtune.data.manifest import load_manifest, read_manifest
from asrtune.data.split import assign_splits, parse_ratios, split_manifest
from asrtune.data.stats import manifest_stats
from asrtune.data.validate import validate_manifests
from asrtune.errors import AsrtuneError, ConfigError


def test_stats_on_speechocean762_test(shared_data, tmp_path, capsys):
    manifest = shared_data / "speechocean762" / "test.jsonl"
    utts = load_manifest(manifest)
    stats = manifest_stats(manifest)
    durations = np.array([u.duration for u in utts])
    assert stats.utterances == 500 and len(stats.speakers) == 25  # as the data README says
    assert stats.hours == pytest.approx(durations.sum() / 3600)
    summary = stats.duration_summary()
    assert summary["min"] == durations.min() and summary["max"] == durations.max()
    assert summary["p50"] == pytest.approx(np.median(durations))
    assert stats.characters == Counter("".join(u.text for u in utts))
    png = tmp_path / "hist.png"
    assert main(["manifest", "stats", str(manifest), "--plot", str(png), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["utterances"] == 500 and printed["speakers"] == 25
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_split_by_speaker_is_disjoint_deterministic_and_near_the_ratios(shared_data, tmp_path, capsys):
    manifest = shared_data / "speechocean762" / "train.jsonl"  # 1200 utterances, 60 speakers
    assert main(["manifest", "split", str(manifest), "--out", str(tmp_path / "a"), "--by-speaker", "--seed", "3"]) == 0
    split_manifest(manifest, tmp_path / "b", "0.8,0.1,0.1", by_speaker=True, seed=3)
    parts = {name: load_manifest(tmp_path / "a" / f"{name}.jsonl") for name in ("train", "dev", "test")}
    speakers = {name: {u.speaker for u in utts} for name, utts in parts.items()}
    assert not (speakers["train"] & speakers["dev"]) and not (speakers["train"] & speakers["test"]) and not (speakers["dev"] & speakers["test"])
    assert sum(len(v) for v in parts.values()) == 1200
    assert {u.id for v in parts.values() for u in v} == {u.id for u in read_manifest(manifest)}
    assert 0.75 < len(parts["train"]) / 1200 < 0.85 and 0.05 < len(parts["dev"]) / 1200 < 0.15
    for name in parts:  # same seed, same files, byte for byte
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    split_manifest(manifest, tmp_path / "c", "0.8,0.1,0.1", by_speaker=True, seed=4)  # another seed, another split
    assert {u.speaker for u in load_manifest(tmp_path / "c" / "dev.jsonl")} != speakers["dev"]
    assert validate_manifests([tmp_path / "a" / "dev.jsonl"], quick=True).ok  # paths re-rooted


def test_split_by_utterance_exact_counts(shared_data, tmp_path):
    manifest = shared_data / "fsdd-300" / "manifest.jsonl"
    counts = split_manifest(manifest, tmp_path, (0.7, 0.2, 0.1), seed=0)
    assert counts == {"train": 210, "dev": 60, "test": 30}
    assert len(load_manifest(tmp_path / "test.jsonl")) == 30
    utts = load_manifest(manifest)
    assert assign_splits(utts, "0.5,0.5", seed=1) == assign_splits(list(utts), (0.5, 0.5), seed=1)


def test_split_errors(tmp_path, shared_data, capsys):
    assert main(["manifest", "split", str(shared_data / "fsdd-300" / "manifest.jsonl"), "--out", str(tmp_path), "--ratios", "0.8,0.3"]) == 2
    assert "--ratios" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="2 \\(train,dev\\) or 3"):
        parse_ratios("1")
    manifest = shared_data / "ljspeech-32" / "manifest.jsonl"  # one speaker
    with pytest.raises(AsrtuneError, match="dev, test would be empty with 1 speakers"):
        split_manifest(manifest, tmp_path, by_speaker=True)
    no_speaker = tmp_path / "ns.jsonl"
    no_speaker.write_text(json.dumps({"audio_filepath": "/x.wav", "text": "A", "duration": 1.0}) + "\n")
    with pytest.raises(AsrtuneError, match="speaker.*line 1"):
        split_manifest(no_speaker, tmp_path / "o", by_speaker=True)


def test_reading_and_validating_stream_in_constant_memory(tmp_path, shared_data):
    """Peak Python memory must not grow with the manifest: 5k vs 25k lines (benchmarks/bench_manifest.py does 1M)."""
    long = shared_data / "longform" / "librispeech-1089-134686.flac"

    def write(n):
        path = tmp_path / f"m{n}.jsonl"
        with open(path, "w") as f:
            for i in range(n):  # distinct offsets so duplicate tracking is exercised, not short-cut
                f.write(json.dumps({"audio_filepath": str(long), "text": "X", "duration": 1.0, "offset": i * 0.0025, "speaker": "s"}) + "\n")
        return path

    def peak(fn):
        tracemalloc.start()
        fn()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, big = write(5_000), write(25_000)
    read_small = peak(lambda: sum(1 for _ in read_manifest(small)))
    read_big = peak(lambda: sum(1 for _ in read_manifest(big)))
    assert read_big < read_small + 256 * 1024  # iterating: flat (no per-line state at all)
    report = {}
    val_big = peak(lambda: report.update(r=validate_manifests([big], quick=True, jobs=1)))
    assert report["r"].utterances == 25_000 and report["r"].ok
    # Only the duplicate-hash set grows: well under 200 bytes per line, far below holding the lines.
    assert val_big < 25_000 * 200
