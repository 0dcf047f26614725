"""`asrtune transcribe` end to end with the real tiny.en model on real speech.

Fast tests cover option checking and the runner on a few short clips (CTranslate2 engine, which
loads in about a second); slow ones run the 5-minute long-form file, kill + resume, workers and Ray.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import pytest

from asrtune.data.audio import audio_info, load_audio
from asrtune.errors import ConfigError
from asrtune.inference import RecognizerOptions
from asrtune.transcription import collect_sources, transcribe, transcribe_sources
from asrtune.transcription.longform import transcribe_audio
from conftest import REPO_ROOT, require_whisper_package

MODEL = "openai/whisper-tiny.en"
BATCH_4 = RecognizerOptions(batch_size=4)
CT2_BATCH_4 = RecognizerOptions(engine="ct2", batch_size=4)
LIBRI = "librispeech-test-clean-40"
LONGFORM = "longform/librispeech-1089-134686.flac"


def _normalizer():
    try:
        from asrtune.text.normalizers import get_normalizer

        return get_normalizer("basic")
    except ImportError:
        from transformers.models.whisper.english_normalizer import BasicTextNormalizer

        return BasicTextNormalizer()


def _wer(refs: list[str], hyps: list[str]) -> float:
    norm = _normalizer()
    return jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])


def _libri(shared_data, n: int) -> list[dict]:
    lines = (shared_data / LIBRI / "manifest.jsonl").read_text().splitlines()[:n]
    return [dict(json.loads(line), audio=shared_data / LIBRI / json.loads(line)["audio_filepath"]) for line in lines]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def ct2_recognizer():
    require_whisper_package(MODEL)
    from asrtune.inference import load_recognizer

    return load_recognizer(MODEL, engine="ct2", batch_size=4)


@pytest.fixture()
def messy_folder(tmp_path, shared_data) -> tuple[Path, list[dict]]:
    """Good LibriSpeech clips in nested folders, plus a corrupt and an empty 'audio' file."""
    folder = tmp_path / "in"
    utts = _libri(shared_data, 6)
    for i, u in enumerate(utts):
        dest = folder / ("sub" if i % 2 else "") / Path(u["audio_filepath"]).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(u["audio"], dest)
        u["copy"] = dest
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage, not audio" * 10)
    (folder / "sub" / "empty.flac").write_bytes(b"")
    return folder, utts


# ----------------------------------------------------------------------------- fast


def test_bad_options_fail_before_any_model_loads(tmp_path, shared_data):
    clip = str(_libri(shared_data, 1)[0]["audio"])
    with pytest.raises(ConfigError, match="docx"):
        transcribe([clip], "no/such-model", tmp_path, formats="txt,docx")
    with pytest.raises(ConfigError, match="--workers"):
        transcribe([clip], "no/such-model", tmp_path, workers=0)
    with pytest.raises(ConfigError, match="--max-segment-s"):
        transcribe([clip], "no/such-model", tmp_path, max_segment_s=45)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no audio found"):
        transcribe([tmp_path / "empty"], "no/such-model", tmp_path / "out")


def test_cli_reports_a_missing_input_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "asrtune", "transcribe", str(tmp_path / "missing.flac"), "--model", MODEL, "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )
    assert proc.returncode == 2
    assert "missing.flac" in proc.stderr and "Traceback" not in proc.stderr


def test_runner_batches_across_files_and_reports_bad_ones(ct2_recognizer, messy_folder):
    folder, utts = messy_folder
    sources = collect_sources([str(folder)])
    outcomes = {o.source.key: o for o in transcribe_sources(ct2_recognizer, sources, batch_size=4)}
    assert len(outcomes) == len(sources) == 8
    bad = {k: o.error for k, o in outcomes.items() if not o.ok}
    assert sorted(Path(k).name for k in bad) == ["corrupt.wav", "empty.flac"]
    assert all(Path(k).name in msg for k, msg in bad.items())  # the reason names the file
    good = [outcomes[str(u["copy"].resolve())].record for u in utts]
    # Batched across files = the one-file hub (same VAD spans, same decoding) on each file alone.
    singles = [transcribe_audio(ct2_recognizer, load_audio(u["copy"])) for u in utts[:2]]
    assert [r["segments"] for r in good[:2]] == [[s.to_dict() for s in segs] for segs in singles]
    assert _wer([u["text"] for u in utts], [r["text"] for r in good]) < 0.10
    for r, u in zip(good, utts):  # speech starts within the first second of a LibriSpeech clip
        assert 0.0 <= r["segments"][0]["start"] < 1.0 and abs(r["duration"] - audio_info(u["copy"])[0]) < 0.01


def test_transcribe_api_writes_every_format_and_errors(tmp_path, ct2_recognizer, messy_folder):
    folder, utts = messy_folder
    out = tmp_path / "out"
    summary = transcribe([folder], ct2_recognizer, out, BATCH_4, formats="txt,srt,vtt,json,jsonl", progress=False)
    assert (summary.files, summary.transcribed, summary.failed) == (8, 6, 2) and not summary.ok
    records = _lines(out / "transcripts.jsonl")
    assert len(records) == 6 and len({r["file"] for r in records}) == 6
    for u in utts:  # outputs mirror the input tree
        rel = u["copy"].relative_to(folder).with_suffix("")
        for ext in ("txt", "srt", "vtt", "json"):
            assert (out / f"{rel}.{ext}").is_file()
        assert re.match(r"1\n00:00:00,\d{3} --> ", (out / f"{rel}.srt").read_text())
    assert sorted(Path(e["file"]).name for e in _lines(out / "errors.jsonl")) == ["corrupt.wav", "empty.flac"]
    assert json.loads((out / "summary.json").read_text())["failed"] == 2
    # Resume: nothing left but the two bad files, which are retried and fail again.
    again = transcribe([folder], ct2_recognizer, out, BATCH_4, resume=True, progress=False)
    assert (again.skipped, again.transcribed, again.failed) == (6, 0, 2)
    assert [r["file"] for r in _lines(out / "transcripts.jsonl")] == [r["file"] for r in records]


def test_word_timestamps_reach_jsonl_and_word_timed_subtitles(tmp_path, ct2_recognizer, messy_folder):
    import srt

    from asrtune.transcription.subtitles import SubtitleOptions

    _, utts = messy_folder
    out = tmp_path / "out"
    narrow = SubtitleOptions(max_line_width=24, max_line_count=1, max_cue_seconds=3.0)
    transcribe([u["copy"] for u in utts[:2]], ct2_recognizer, out, RecognizerOptions(batch_size=4, word_timestamps=True),
               formats="srt,json,jsonl", subtitles=narrow, progress=False)
    for record in _lines(out / "transcripts.jsonl"):
        words = [w for s in record["segments"] for w in s["words"]]
        assert "".join(w["text"] for w in words) == record["text"].replace(" ", "")  # the words are the text
        assert all(0 <= w["start"] <= w["end"] <= record["duration"] and 0 <= w["probability"] <= 1 for w in words)
        cues = list(srt.parse((out / f"{record['output']}.srt").read_text()))
        assert len(cues) > len(record["segments"])  # cut from word times, not one cue per segment
        assert all(len(c.content) <= 24 and (c.end - c.start).total_seconds() <= 3.0 for c in cues)
        assert json.loads((out / f"{record['output']}.json").read_text())["segments"][0]["words"]


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_longform_file_srt_jsonl_wer_and_timestamps(tmp_path, shared_data):
    require_whisper_package(MODEL)
    out = tmp_path / "out"
    summary = transcribe([shared_data / LONGFORM], MODEL, out, formats="srt,jsonl", progress=False)
    assert summary.ok and summary.transcribed == 1
    (record,) = _lines(out / "transcripts.jsonl")
    srt = (out / "librispeech-1089-134686.srt").read_text()
    assert srt.startswith("1\n") and srt.count(" --> ") == len(record["segments"]) > 1
    reference = json.loads((shared_data / "longform/manifest.jsonl").read_text().splitlines()[0])["text"]
    wer = _wer([reference], [record["text"]])
    print(f"long-form WER {wer:.2%}, {len(record['segments'])} segments, RTF {summary.rtf}")
    assert wer <= 0.06
    duration = audio_info(shared_data / LONGFORM)[0]
    assert abs(record["duration"] - duration) < 0.01
    previous_end = 0.0
    for seg in record["segments"]:
        assert previous_end <= seg["start"] < seg["end"] <= duration
        assert seg["end"] - seg["start"] <= 30.0
        previous_end = seg["end"]


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "asrtune", "transcribe", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_killed_run_resumes_and_every_file_is_done_exactly_once(tmp_path, messy_folder):
    require_whisper_package(MODEL)
    folder, utts = messy_folder
    out = tmp_path / "out"
    args = [str(folder), "--model", MODEL, "--engine", "ct2", "--out", str(out), "--batch-size", "1", "--no-progress"]
    first = _cli(args)
    journal = out / "transcripts.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and len(_lines_safe(journal)) < 2:
        time.sleep(0.05)
    assert first.poll() is None, f"run ended before it could be killed: {first.communicate()[1][-2000:]}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_at_kill = len(_lines_safe(journal))
    assert 2 <= done_at_kill < 6, done_at_kill
    with open(journal, "a") as f:  # what a kill in the middle of a write would leave
        f.write('{"file": "' + str(utts[-1]["copy"].resolve()) + '", "text": "half a li')

    second = _cli([*args, "--resume"])
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 1, stderr  # two files failed
    assert f"skipped {done_at_kill} already done" in stderr
    records = _lines(journal)
    keys = [r["file"] for r in records]
    assert sorted(keys) == sorted(str(u["copy"].resolve()) for u in utts)  # each good file exactly once
    assert sorted(Path(e["file"]).name for e in _lines(out / "errors.jsonl")) == ["corrupt.wav", "empty.flac"]
    for u in utts:
        assert (out / u["copy"].relative_to(folder).with_suffix(".txt")).read_text().strip()
    by_key = {r["file"]: r["text"] for r in records}
    assert _wer([u["text"] for u in utts], [by_key[str(u["copy"].resolve())] for u in utts]) < 0.10


def _lines_safe(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.endswith("}")]
    except FileNotFoundError:
        return []


@pytest.mark.kernels
@pytest.mark.slow
def test_workers_match_a_single_process(tmp_path, ct2_recognizer, messy_folder):
    folder, _ = messy_folder
    single = transcribe([folder], ct2_recognizer, tmp_path / "one", BATCH_4, progress=False)
    multi = transcribe([folder], MODEL, tmp_path / "two", CT2_BATCH_4, workers=2, progress=False)
    assert (multi.transcribed, multi.failed) == (single.transcribed, single.failed) == (6, 2)
    assert multi.model["decoding"] == CT2_BATCH_4.to_dict()  # what the workers were told, in summary.json
    texts = lambda d: {r["file"]: r["text"] for r in _lines(d / "transcripts.jsonl")}  # noqa: E731
    assert texts(tmp_path / "two") == texts(tmp_path / "one")


@pytest.mark.slow
def test_ray_job_matches_a_single_process(tmp_path, ct2_recognizer, messy_folder):
    ray = pytest.importorskip("ray")
    folder, _ = messy_folder
    single = transcribe([folder], ct2_recognizer, tmp_path / "one", BATCH_4, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        job = transcribe([folder], MODEL, tmp_path / "ray", CT2_BATCH_4, workers=2, use_ray=True, progress=False)
    finally:
        ray.shutdown()
    assert (job.transcribed, job.failed) == (single.transcribed, single.failed) == (6, 2)
    texts = lambda d: {r["file"]: r["text"] for r in _lines(d / "transcripts.jsonl")}  # noqa: E731
    assert texts(tmp_path / "ray") == texts(tmp_path / "one")
