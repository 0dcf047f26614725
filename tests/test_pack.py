"""`asrtune manifest pack`: a speaker's clips joined into <= 30 s windows whose parts train
Whisper's multi-segment timestamp targets."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from asrtune.cli import main
from asrtune.data.audio import load_audio
from asrtune.data.manifest import load_manifest, write_manifest
from asrtune.data.pack import plan_windows
from asrtune.training.targets import utterance_segments


def test_windows_join_each_speakers_clips_sample_exact_with_one_part_per_clip(shared_data, tmp_path, capsys):
    clips = load_manifest(shared_data / "speechocean762" / "train.jsonl")[:12]
    clips.insert(3, clips[0].__class__(str(tmp_path / "gone.flac"), "LOST", 2.0, extra={"speaker": clips[0].speaker}))
    write_manifest(tmp_path / "in.jsonl", clips, relative=False)
    assert main(["manifest", "pack", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "packed.jsonl")]) == 0
    out = capsys.readouterr()
    assert "12 clips ->" in out.out and "1 unreadable clip(s) skipped" in out.out and "gone.flac" in out.err

    windows = load_manifest(tmp_path / "packed.jsonl")
    assert (tmp_path / "packed_audio").is_dir() and len(windows) < 12
    assert all(w.duration <= 30.0 for w in windows)
    by_path = {c.audio_filepath: c for c in clips}
    joined = 0
    for window in windows:
        audio = load_audio(window.audio_filepath)
        sources = [by_path[p] for p in window.extra["packed_from"]]
        assert {s.speaker for s in sources} == {window.speaker}
        parts = window.extra["segments"]
        assert [p["text"] for p in parts] == [s.text for s in sources] and window.text == " ".join(s.text for s in sources)
        for part, source in zip(parts, sources):
            a, b = round(part["start"] * 16000), round(part["end"] * 16000)
            original = load_audio(source.audio_filepath)
            assert b - a == original.size
            np.testing.assert_allclose(audio[a:b], original, atol=1 / 2**15)  # 16-bit FLAC both ways
        assert utterance_segments(window.extra, window.duration) is not None  # the trainer takes the parts
        joined += len(parts)
    assert joined == 12


def test_plan_keeps_manifest_order_within_a_speaker_and_the_limit():
    from asrtune.data.manifest import Utterance

    utts = [Utterance(f"{i}.flac", str(i), d, extra={"speaker": s}) for i, (d, s) in
            enumerate([(10, "a"), (12, "b"), (15, "a"), (9, "a"), (31, "b"), (2, "b")])]
    assert [[u.text for u in w] for w in plan_windows(utts, 30.0)] == [["0", "2"], ["3"], ["1"], ["4"], ["5"]]
    assert [[u.text for u in w] for w in plan_windows(utts, 30.0, gap_s=2.0)] == [["0", "2"], ["3"], ["1"], ["4"], ["5"]]
    assert [[u.text for u in w] for w in plan_windows(utts, 30.0, gap_s=6.0)] == [["0"], ["2", "3"], ["1"], ["4"], ["5"]]


def test_a_packed_window_trains_one_timestamp_pair_per_clip_and_a_full_stop_each(shared_data, tmp_path):
    from conftest import require_whisper_package

    require_whisper_package()
    from asrtune.data.pack import pack_utterances
    from asrtune.models import resolve_model
    from asrtune.training import TrainConfig
    from asrtune.training.adapters.whisper import WhisperAdapter
    from asrtune.training.targets import decode_target
    from asrtune.training.text_policy import apply_text_policy

    clips = load_manifest(shared_data / "speechocean762" / "train.jsonl")[:2]  # 7.9 s + 14.5 s: one window
    (window,), _ = pack_utterances(clips, tmp_path / "audio")
    texts = {}
    for fraction in (1.0, 0.0):
        config = TrainConfig(model="openai/whisper-tiny.en", train=["unused"], out="unused", timestamp_fraction=fraction)
        adapter = WhisperAdapter.from_resolved(resolve_model(config.model), config)
        target = adapter.target(window, apply_text_policy(window.text, "sentence"))
        texts[fraction] = decode_target(adapter.tokenizer, target.decoder_input_ids)
    stamped = texts[1.0]
    assert stamped.count("<|") - stamped.count("<|startoftranscript|>") == 2 * len(clips)  # <|t0|> text <|t1|> per clip
    sentence_ends = [len(re.findall(r"[a-z]\.", text)) for text in texts.values()]
    assert sentence_ends == [len(clips), len(clips)], texts
    assert json.dumps(window.extra["segments"][1]["start"]) == json.dumps(round(clips[0].duration, 3))
