"""`asrtune eval` on a recording longer than 30 s scores it the way `asrtune transcribe` decodes it."""

from __future__ import annotations

import json

import pytest

from asrtune.cli import main
from asrtune.data import load_manifest, write_manifest
from asrtune.evaluation import corpus_wer
from conftest import require_whisper_package

TINY = "openai/whisper-tiny.en"
MAX_WER_GAP = 0.005  # half a percentage point: the same segmentation should give the same words


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ct2", "hf"])
def test_eval_long_recording_matches_transcribe_then_score(engine, shared_data, tmp_path):
    require_whisper_package(TINY)
    (utt,) = load_manifest(shared_data / "longform" / "manifest.jsonl")
    assert utt.duration > 60  # the point of the test: far beyond one 30 s window
    manifest = tmp_path / "long.jsonl"
    write_manifest(manifest, [utt], relative=False)

    report_dir = tmp_path / "report"
    assert main(["eval", "--model", TINY, "--engine", engine, "--manifest", str(manifest), "--out", str(report_dir),
                 "--resamples", "100", "--quiet"]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    (line,) = [json.loads(x) for x in (report_dir / "utterances.jsonl").read_text().splitlines()]
    assert report["failed"] == [] and report["speed"]["long_form_recordings"] == 1
    assert len(line["segments"]) >= 10 and line["segments"][-1]["end"] > 0.9 * utt.duration
    assert line["hyp"] == " ".join(s["text"] for s in line["segments"])

    transcripts = tmp_path / "transcripts"
    assert main(["transcribe", utt.audio_filepath, "--model", TINY, "--engine", engine, "--out", str(transcripts),
                 "--format", "jsonl", "--no-progress"]) == 0
    (record,) = [json.loads(x) for x in (transcripts / "transcripts.jsonl").read_text().splitlines()]
    transcribe_wer = corpus_wer([utt.text], [record["text"]])
    assert report["normalized"]["wer"] < 0.10  # tiny.en reads LibriSpeech at a few percent
    assert abs(report["normalized"]["wer"] - transcribe_wer) <= MAX_WER_GAP

    # The transcript file scored by --hypotheses is the same number again, and --compare pairs the two.
    scored = tmp_path / "scored"
    assert main(["eval", "--hypotheses", str(transcripts / "transcripts.jsonl"), "--manifest", str(manifest),
                 "--out", str(scored), "--resamples", "100", "--compare", str(report_dir)]) == 0
    scored_report = json.loads((scored / "report.json").read_text())
    assert scored_report["normalized"]["wer"] == pytest.approx(transcribe_wer)
    assert scored_report["compare"]["matched_utterances"] == 1


@pytest.mark.kernels
def test_long_and_short_utterances_share_one_report(shared_data, tmp_path):
    """A 35 s recording goes the long-form way (segments kept), a short clip the batched way."""
    require_whisper_package(TINY)
    long_utt = load_manifest(shared_data / "software-docs-3" / "manifest.jsonl")[0]
    short = min(load_manifest(shared_data / "librispeech-test-clean-40" / "manifest.jsonl"), key=lambda u: u.duration)
    assert long_utt.duration > 30 > short.duration
    manifest = tmp_path / "mixed.jsonl"
    write_manifest(manifest, [short, long_utt], relative=False)

    out = tmp_path / "report"
    assert main(["eval", "--model", TINY, "--engine", "ct2", "--manifest", str(manifest), "--out", str(out),
                 "--resamples", "100", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    lines = {json.loads(x)["id"]: json.loads(x) for x in (out / "utterances.jsonl").read_text().splitlines()}
    assert report["n_utterances"] == 2 and report["failed"] == [] and report["speed"]["long_form_recordings"] == 1
    assert "segments" not in lines[short.id]
    segments = lines[long_utt.id]["segments"]
    assert len(segments) >= 2 and segments[-1]["end"] > 30  # more than one window, in file time
    assert lines[long_utt.id]["normalized"]["wer"] < 0.25
