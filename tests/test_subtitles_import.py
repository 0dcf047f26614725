"""`asrtune manifest import subtitles`: SRT/VTT cues over long audio become <= 30 s training segments.

Subtitle files are written by the tests; the audio is the real 5-minute longform recording.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from asrtune.cli import main
from asrtune.data.audio import load_audio
from asrtune.data.manifest import load_manifest
from asrtune.data.subtitles import Cue, clean_text, merge_cues, parse_clean, parse_timestamp, read_cues
from asrtune.errors import ConfigError
from tests.conftest import require_whisper_package

LONGFORM_S = 305.0  # s: the shared longform file lasts a little over 5 minutes; cues below stay inside it


def srt(cues: list[tuple[str, str, str]], crlf: bool = False, bom: bool = False) -> str:
    """An SRT file from (start, end, text) triples, numbered from 1."""
    blocks = [f"{n}\n{start} --> {end}\n{text}\n" for n, (start, end, text) in enumerate(cues, 1)]
    body = "\n".join(blocks)
    if crlf:
        body = body.replace("\n", "\r\n")
    return ("\ufeff" if bom else "") + body


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture()
def episode(tmp_path, shared_data) -> Path:
    """A folder holding the real 5-minute recording as ep1.flac (a symlink)."""
    audio = shared_data / "longform" / "librispeech-1089-134686.flac"
    os.symlink(audio, tmp_path / "ep1.flac")
    return tmp_path


def words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(n))


# ------------------------------------------------------------------------------------ timestamps


def test_timestamps_without_hours_and_beyond_99_hours():
    assert parse_timestamp("00:01.000") == 1.0
    assert parse_timestamp("00:00:02,5") == 2.5
    assert parse_timestamp("123:45:06.789") == pytest.approx(123 * 3600 + 45 * 60 + 6.789)
    with pytest.raises(ValueError):
        parse_timestamp("1.5s")


def test_srt_with_bom_crlf_missing_hours_and_huge_hours(tmp_path):
    path = write(tmp_path / "a.srt", srt([("00:01.000", "00:02.500", "first"), ("00:00:03,000", "00:00:04,000", "second"),
                                          ("100:00:00,000", "100:00:01,000", "far away")], crlf=True, bom=True))
    cues, problems = read_cues(path)
    assert problems == []
    assert [(c.number, c.start, c.end, c.text) for c in cues] == [(1, 1.0, 2.5, "first"), (2, 3.0, 4.0, "second"), (3, 360000.0, 360001.0, "far away")]


def test_vtt_header_notes_ids_settings_and_multiline_cues(tmp_path):
    path = write(tmp_path / "a.vtt", "WEBVTT - episode one\n\nNOTE written by hand\n\nintro\n00:01.000 --> 00:02.000 align:start line:0\n"
                 "<v John>Hello <b>there</b>\nsecond line\n\n00:00:03.000 --> 00:00:04.500\n[applause]\n")
    cues, problems = read_cues(path)
    assert problems == []
    assert [(c.number, c.start, c.end, c.text) for c in cues] == [(1, 1.0, 2.0, "Hello there second line"), (2, 3.0, 4.5, "")]


# ------------------------------------------------------------------------------------ cleaning


def test_each_cleaning_rule_is_switchable():
    text = "<i>JOHN: Hello</i> {\\an8}there\n>> [music] world (laughs) ♪"
    assert clean_text(text) == "Hello there world"
    assert clean_text(text, ("speakers", "sound-tags")) == "<i>JOHN: Hello</i> {\\an8}there world"
    assert clean_text(text, ("markup", "sound-tags")) == "JOHN: Hello there >> world"
    assert clean_text(text, ("markup", "speakers")) == "Hello there [music] world (laughs) ♪"
    assert clean_text("- Yes.\n- Dr. Smith: No.", ("speakers",)) == "Yes. No."
    assert parse_clean("all") == ("markup", "speakers", "sound-tags") and parse_clean("none") == ()
    with pytest.raises(ConfigError, match="--clean: unknown rule"):
        parse_clean("markup,emoji")


def test_keeping_markup_reads_the_raw_cue(tmp_path):
    path = write(tmp_path / "a.srt", srt([("00:00:01,000", "00:00:02,000", "<i>JOHN: hi</i> [music]")]))
    assert read_cues(path, ())[0][0].text == "{\\i1}JOHN: hi{\\i0} [music]"  # pysubs2's form of <i>
    assert read_cues(path, ("markup",))[0][0].text == "JOHN: hi [music]"


# ------------------------------------------------------------------------------------ bad cues


def test_bad_cues_are_reported_by_number_and_skipped(tmp_path):
    path = write(tmp_path / "a.srt", srt([
        ("00:00:01,000", "00:00:03,000", "fine"),
        ("00:00:02,000", "00:00:04,000", "overlapping"),
        ("00:00:00,500", "00:00:00,900", "out of order"),
        ("00:00:05,000", "00:00:05,000", "zero length"),
        ("00:00:07,000", "00:00:06,000", "backwards"),
        ("00:00:08,000", "00:00:09,000", "fine again"),
        ("00:05:10,000", "00:05:12,000", "past the end"),
    ]))
    cues, problems = read_cues(path, audio_duration=LONGFORM_S)
    assert [c.text for c in cues] == ["fine", "fine again"]
    lines = [p.format() for p in problems]
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:cue {n}" for n in (2, 3, 4, 5, 7)]
    assert "overlaps cue 1" in lines[0] and "out of order" in lines[1] and "zero length" in lines[2]
    assert "before it starts" in lines[3] and "past the end of the audio" in lines[4]


# ------------------------------------------------------------------------------------ merging


def test_cues_merge_up_to_30_s_and_split_at_long_gaps_and_sound_only_cues():
    count = lambda t: len(t.split())  # noqa: E731 - a stand-in tokenizer: one token a word
    cues = [Cue(1, 0, 9, "a"), Cue(2, 9.5, 19, "b"), Cue(3, 19.5, 29, "c"), Cue(4, 29.5, 35, "d"),  # 4 would pass 30 s
            Cue(5, 38, 40, "e"),  # after a 3 s gap
            Cue(6, 40.5, 41, ""),  # [music] only
            Cue(7, 41.5, 43, "f"), Cue(8, 43, 80, "g")]  # 8 is too long alone
    groups, too_long = merge_cues(cues, count, max_gap_s=2.0)
    assert [[c.number for c in g] for g in groups] == [[1, 2, 3], [4], [5], [7]]
    assert [c.number for c in too_long] == [8]
    groups, _ = merge_cues(cues[:3], count, max_tokens=2)
    assert [[c.number for c in g] for g in groups] == [[1, 2], [3]]


def test_real_whisper_tokens_bound_a_segment():
    require_whisper_package()
    from asrtune.alignment.limits import MAX_TEXT_TOKENS, whisper_token_counter

    count = whisper_token_counter()
    assert count("Hello world.") == 3
    long_text = " ".join(["supercalifragilistic"] * 60)  # ~5 tokens a word: 3 cues pass 443 tokens together
    cues = [Cue(n, n * 5.0, n * 5.0 + 4, long_text) for n in range(1, 4)]
    groups, _ = merge_cues(cues, count)
    assert [len(g) for g in groups] == [1, 1, 1] and count(long_text) * 2 > MAX_TEXT_TOKENS


# ------------------------------------------------------------------------------------ CLI, real audio


def test_import_folder_of_audio_and_srt(episode, capsys):
    require_whisper_package()
    cues = [(f"00:{6 * i // 60:02d}:{6 * i % 60:02d},000", f"00:{(6 * i + 5) // 60:02d}:{(6 * i + 5) % 60:02d},000", f"JOHN: line {i} [music]")
            for i in range(10)]
    cues.insert(3, ("00:00:16,000", "00:00:20,000", "overlaps"))
    write(episode / "ep1.srt", srt(cues, crlf=True, bom=True))
    out = episode / "out" / "ep1.jsonl"
    assert main(["manifest", "import", "subtitles", str(episode), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{episode / 'ep1.srt'}:cue 4: overlaps cue 3" in err
    utts = load_manifest(out)
    assert [u.extra["cues"] for u in utts] == ["1-6", "7-11"]
    assert [u.text for u in utts] == ["line 0 line 1 line 2 line 3 line 4", "line 5 line 6 line 7 line 8 line 9"]
    assert [(u.offset, u.duration) for u in utts] == [(0.0, 29.0), (30.0, 29.0)]
    assert all(u.audio_filepath == str(episode / "ep1.flac") for u in utts)
    raw = json.loads(out.read_text().splitlines()[1])
    assert raw["audio_filepath"] == "../ep1.flac" and raw["offset"] == 30.0
    assert len(load_audio(utts[1].audio_filepath, utts[1].offset, utts[1].duration)) == 29 * 16000


def test_import_csv_of_pairs_with_vtt_and_keep_rules(tmp_path, shared_data, capsys):
    require_whisper_package()
    audio = shared_data / "longform" / "librispeech-1089-134686.flac"
    (tmp_path / "subs").mkdir()
    write(tmp_path / "subs" / "ep.vtt", "WEBVTT\n\n00:01.000 --> 00:04.000\n>> JOHN: Hello [music]\n\n04:58.000 --> 05:20.000\nafter the end\n")
    write(tmp_path / "pairs.csv", f"audio,subtitle\n{audio},subs/ep.vtt\n")
    out = tmp_path / "m.jsonl"
    assert main(["manifest", "import", "subtitles", str(tmp_path / "pairs.csv"), "--out", str(out), "--clean", "markup,sound-tags"]) == 0
    assert "subs/ep.vtt:cue 2: past the end of the audio" in capsys.readouterr().err
    assert [(u.text, u.offset, u.duration) for u in load_manifest(out)] == [(">> JOHN: Hello", 1.0, 3.0)]


def test_user_errors_are_one_line_exit_2(tmp_path, episode, capsys):
    assert main(["manifest", "import", "subtitles", str(episode), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "no audio file with a same-named .srt or .vtt" in capsys.readouterr().err
    write(episode / "ep1.srt", srt([("00:00:01,000", "00:00:02,000", "hi")]))
    assert main(["manifest", "import", "subtitles", str(episode), "--out", str(tmp_path / "m.jsonl"), "--clean", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "--clean: unknown rule(s) bogus" in err and len(err.strip().splitlines()) == 1
    assert main(["manifest", "import", "csv", str(episode), "--out", str(tmp_path / "m.jsonl"), "--max-gap", "3"]) == 2
    assert "--max-gap do not apply to format 'csv'" in capsys.readouterr().err
