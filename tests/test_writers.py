"""Output formats (SRT, WebVTT, txt, json), the crash-safe journal, and input collection."""

from __future__ import annotations

import io
import json

import pytest

from asrtune.errors import ConfigError
from asrtune.transcription.batch import parse_formats
from asrtune.transcription.inputs import collect_sources
from asrtune.transcription.journal import Journal, read_journal
from asrtune.transcription.writers import format_timestamp, to_srt, to_txt, to_vtt, write_outputs

RECORD = {
    "file": "/data/talk.flac",
    "duration": 3725.5,
    "text": "Hello there. General Kenobi.",
    "segments": [
        {"start": 0.0, "end": 2.5, "text": "Hello there."},
        {"start": 3725.0, "end": 3725.4567, "text": "General Kenobi."},
    ],
}


@pytest.mark.parametrize(
    "seconds, srt, vtt",
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.0005, "00:00:01,000", "00:00:01.000"),  # round half to even at the millisecond
        (59.9996, "00:01:00,000", "00:01:00.000"),  # rounding carries into the minutes
        (3725.4567, "01:02:05,457", "01:02:05.457"),
        (360000.0, "100:00:00,000", "100:00:00.000"),
    ],
)
def test_format_timestamp(seconds, srt, vtt):
    assert format_timestamp(seconds) == srt
    assert format_timestamp(seconds, ".") == vtt


def test_negative_timestamp_is_refused():
    with pytest.raises(ValueError):
        format_timestamp(-0.5)


def test_srt_layout():
    assert to_srt(RECORD) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n"
        "\n"
        "2\n01:02:05,000 --> 01:02:05,457\nGeneral Kenobi.\n"
    )


def test_vtt_layout():
    assert to_vtt(RECORD) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nHello there.\n"
        "\n"
        "01:02:05.000 --> 01:02:05.457\nGeneral Kenobi.\n"
    )


def test_long_cue_text_is_wrapped_and_empty_segments_dropped():
    words = "the quick brown fox jumps over the lazy dog " * 4
    record = {"segments": [{"start": 1, "end": 29, "text": words}, {"start": 29, "end": 30, "text": "  "}]}
    srt = to_srt(record)
    assert srt.count("-->") == 1
    lines = srt.strip().split("\n")[2:]
    assert len(lines) > 1 and all(len(line) <= 42 for line in lines)
    assert " ".join(lines) == words.strip()


def test_txt_and_empty_transcript():
    assert to_txt(RECORD) == "Hello there. General Kenobi.\n"
    assert to_txt({"text": "", "segments": []}) == ""
    assert to_srt({"segments": []}) == ""
    assert to_vtt({"segments": []}) == "WEBVTT\n\n"


def test_write_outputs_creates_nested_files(tmp_path):
    paths = write_outputs(RECORD, tmp_path, "sub/dir/talk", ("txt", "srt", "vtt", "json", "jsonl"))
    assert sorted(p.name for p in paths) == ["talk.json", "talk.srt", "talk.txt", "talk.vtt"]
    assert json.loads((tmp_path / "sub/dir/talk.json").read_text()) == RECORD
    assert (tmp_path / "sub/dir/talk.srt").read_text() == to_srt(RECORD)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_parse_formats():
    assert parse_formats("txt, SRT,srt") == ("txt", "srt")
    assert parse_formats(["vtt", "jsonl"]) == ("vtt", "jsonl")
    with pytest.raises(ConfigError, match="docx"):
        parse_formats("txt,docx")
    with pytest.raises(ConfigError):
        parse_formats("")


def test_journal_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "transcripts.jsonl"
    with Journal(path) as j:
        j.append({"file": "a", "text": "one"})
        j.append({"file": "b", "text": "two"})
    with open(path, "a") as f:  # what a kill during a write leaves behind
        f.write('{"file": "c", "text": "thr')
    with Journal(path, resume=True) as j:
        assert list(j.records) == ["a", "b"]
        j.append({"file": "c", "text": "three"})
        j.append({"file": "a", "text": "one again"})
    lines = path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line is whole JSON again
    assert read_journal(path) == {
        "b": {"file": "b", "text": "two"},
        "c": {"file": "c", "text": "three"},
        "a": {"file": "a", "text": "one again"},
    }
    with Journal(path, resume=True):  # compaction drops the duplicate
        pass
    assert [json.loads(line)["file"] for line in path.read_text().splitlines()] == ["b", "c", "a"]
    with Journal(path, resume=False):  # a fresh run starts empty
        pass
    assert path.read_text() == ""


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_collect_sources_mirrors_folders_and_keeps_stems_unique(tmp_path):
    root = tmp_path / "in"
    for rel in ["a.wav", "a.flac", "sub/b.mp3", "sub/deeper/c.WAV", "notes.txt", "sub/.hidden.ogg.tmp"]:
        _touch(root / rel)
    other = _touch(tmp_path / "elsewhere" / "b.mp3")
    sources = collect_sources([str(root), str(other), str(root / "a.wav")])
    stems = [s.stem for s in sources]
    assert stems == ["a", "a.wav", "sub/b", "sub/deeper/c", "b"]  # a.flac sorts first and keeps "a"
    keys = [s.key for s in sources]
    assert len(set(keys)) == len(keys) == 5  # a.wav given twice counts once
    assert all(s.offset == 0.0 and s.duration is None for s in sources)


def test_collect_sources_from_manifest_and_stdin(tmp_path):
    audio = _touch(tmp_path / "audio" / "long.flac")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"audio_filepath": "audio/long.flac", "text": "A", "duration": 30.0}) + "\n"
        + json.dumps({"audio_filepath": "audio/long.flac", "text": "B", "duration": 12.5, "offset": 30.0}) + "\n"
    )
    sources = collect_sources([str(manifest)])
    assert [(s.stem, s.offset, s.duration) for s in sources] == [("long", 0.0, 30.0), ("long@30.000", 30.0, 12.5)]
    assert sources[1].key == f"{audio}@30.000"
    piped = collect_sources(["-"], stdin=io.StringIO(f"{audio}\n\n{manifest}\n"))
    assert [s.key for s in piped] == [str(audio), f"{audio}@30.000"]


def test_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.wav"):
        collect_sources([str(tmp_path / "nope.wav")])
