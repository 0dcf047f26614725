"""`asrtune manifest validate` through the real CLI entry point, on real and deliberately broken audio."""

from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf

from asrtune.cli import main
from asrtune.data.manifest import read_manifest
from asrtune.data.validate import validate_manifests


def test_speechocean762_test_set_is_valid(shared_data, capsys):
    code = main(["manifest", "validate", str(shared_data / "speechocean762" / "test.jsonl")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "500 good utterances" in out
    assert "0 bad line(s)" in out


def _broken_corpus(tmp_path, shared_data):
    """A manifest whose lines 2..6 each carry one distinct fault; lines 1 and 7 are fine."""
    utts = list(read_manifest(shared_data / "speechocean762" / "test.jsonl"))[:3]
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, u in enumerate(utts):
        shutil.copy(u.audio_filepath, audio / f"u{i}.flac")
    good = audio / "u0.flac"
    data = (audio / "u2.flac").read_bytes()
    (audio / "truncated.flac").write_bytes(data[: len(data) // 2])
    (audio / "empty.wav").write_bytes(b"")
    lines = [
        {"audio_filepath": "audio/u0.flac", "text": utts[0].text, "duration": utts[0].duration},  # 1 ok
        {"audio_filepath": "audio/nope.flac", "text": "MISSING FILE", "duration": 2.0},  # 2 missing file
        {"audio_filepath": "audio/u1.flac", "text": "   ", "duration": utts[1].duration},  # 3 empty text
        {"audio_filepath": "audio/truncated.flac", "text": utts[2].text, "duration": utts[2].duration},  # 4 truncated
        '{"audio_filepath": "audio/u1.flac", "text": "BROKEN',  # 5 not JSON
        {"audio_filepath": "audio/empty.wav", "text": "EMPTY WAV", "duration": 1.0},  # 6 empty wav
        {"audio_filepath": str(good.with_name("u2.flac")), "text": utts[2].text, "duration": utts[2].duration},  # 7 ok (absolute)
    ]
    manifest = tmp_path / "broken.jsonl"
    manifest.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return manifest


def test_each_broken_line_is_named(tmp_path, shared_data, capsys):
    manifest = _broken_corpus(tmp_path, shared_data)
    code = main(["manifest", "validate", str(manifest)])
    out = capsys.readouterr().out
    assert code == 1
    expected = {2: "missing_file", 3: "empty_text", 4: "truncated_audio", 5: "not_json", 6: "empty_audio"}
    for line_no, kind in expected.items():
        hits = [row for row in out.splitlines() if row.startswith(f"{manifest}:{line_no}: ")]
        assert hits and kind in hits[0], f"line {line_no} ({kind}) not reported:\n{out}"
    assert f"{manifest}:1:" not in out and f"{manifest}:7:" not in out
    assert "missing_file=1" in out and "truncated_audio=1" in out and "empty_audio=1" in out
    assert "2 good utterances" in out and "5 bad line(s)" in out
    # The missing and empty files are named, not just the line.
    assert "nope.flac" in out and "empty.wav" in out


def test_quick_mode_misses_the_truncation_full_decode_catches(tmp_path, shared_data, capsys):
    manifest = _broken_corpus(tmp_path, shared_data)
    main(["manifest", "validate", "--quick", str(manifest)])
    quick = capsys.readouterr().out
    assert f"{manifest}:4:" not in quick  # header is intact, so headers alone look fine
    assert f"{manifest}:2:" in quick


def test_fix_writes_good_lines_and_rejected_with_reasons(tmp_path, shared_data, capsys):
    manifest = _broken_corpus(tmp_path, shared_data)
    out_dir = tmp_path / "clean"
    code = main(["manifest", "validate", str(manifest), "--fix", str(out_dir / "good.jsonl")])
    capsys.readouterr()
    assert code == 1
    good = list(read_manifest(out_dir / "good.jsonl"))
    assert [u.line_no for u in good] == [1, 2]  # renumbered in the new file
    assert all(sf.info(u.audio_filepath).frames > 0 for u in good)  # relative paths re-rooted and resolvable
    rejected = [json.loads(line) for line in (out_dir / "rejected.jsonl").read_text().splitlines()]
    assert [r["line_no"] for r in rejected] == [2, 3, 4, 5, 6]
    assert rejected[1]["reasons"] == ["empty_text: text is empty"]
    # The cleaned manifest now validates.
    assert main(["manifest", "validate", str(out_dir / "good.jsonl")]) == 0


def test_durations_offsets_duplicates_and_fields(tmp_path, capsys):
    rate = 16_000
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(2 * rate) / 10)).astype(np.float32), rate)  # 2.0 s
    lines = [
        {"audio_filepath": "tone.wav", "text": "OK", "duration": 2.05},  # 1 within tolerance
        {"audio_filepath": "tone.wav", "text": "LONG", "duration": 3.0},  # 2 mismatch (duplicate key too, but reported once bad)
        {"audio_filepath": "tone.wav", "text": "SEG", "duration": 1.0, "offset": 0.5},  # 3 ok segment
        {"audio_filepath": "tone.wav", "text": "PAST", "duration": 1.0, "offset": 1.5},  # 4 past end
        {"audio_filepath": "tone.wav", "text": "ZERO", "duration": 0, "offset": 0.2},  # 5 zero duration
        {"audio_filepath": "tone.wav", "text": "DUP", "duration": 1.0, "offset": 0.5},  # 6 duplicate of 3
        {"audio_filepath": "tone.wav", "text": "NO DURATION"},  # 7 missing field
        {"audio_filepath": "tone.wav", "text": 5, "duration": 1.0},  # 8 wrong type
        [1, 2],  # 9 JSON but not an object
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    problems = []
    report = validate_manifests([manifest], on_problem=problems.append, jobs=1)
    kinds = {p.line_no: p.kind for p in problems}
    assert kinds == {2: "duration_mismatch", 4: "past_end", 5: "bad_duration", 6: "duplicate", 7: "missing_field", 8: "bad_field", 9: "not_json"}
    assert report.lines == 9 and report.utterances == 2 and not report.ok
    assert abs(report.seconds - 3.05) < 1e-9
    # A looser tolerance accepts line 2.
    loose = validate_manifests([manifest], duration_tolerance=1.5, jobs=2)
    assert loose.by_kind.get("duration_mismatch", 0) == 0


def test_missing_manifest_and_bad_option_are_one_line_errors(tmp_path, capsys):
    assert main(["manifest", "validate", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "none.jsonl" in err and "not found" in err and "Traceback" not in err
    (tmp_path / "m.jsonl").write_text("")
    assert main(["manifest", "validate", str(tmp_path / "m.jsonl"), "--duration-tolerance", "-1"]) == 2
    assert "--duration-tolerance" in capsys.readouterr().err


def test_duplicates_are_found_across_the_compact_key_store(tmp_path, monkeypatch):
    """Keys move from a small set into a sorted array; duplicates must be caught in both."""
    from asrtune.data import validate as validate_module

    monkeypatch.setattr(validate_module._SeenKeys, "FLUSH_KEYS", 16)
    wav = tmp_path / "tone.wav"
    sf.write(wav, np.full(16_000 * 3, 0.1, dtype=np.float32), 16_000)
    lines = [{"audio_filepath": "tone.wav", "text": "A", "duration": 0.01, "offset": i * 0.01} for i in range(100)]
    lines += [lines[3], lines[97]]  # 3 is long flushed into the array; 97 is still in the set
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    problems = []
    report = validate_manifests([manifest], on_problem=problems.append, quick=True)
    assert [(p.line_no, p.kind) for p in problems] == [(101, "duplicate"), (102, "duplicate")]
    assert report.utterances == 100


def test_manifest_with_a_byte_order_mark_is_read_and_validates(tmp_path, capsys):
    """Regression: a UTF-8 BOM made line 1 'not valid JSON'."""
    wav = tmp_path / "tone.wav"
    sf.write(wav, np.full(16_000, 0.1, dtype=np.float32), 16_000)
    manifest = tmp_path / "bom.jsonl"
    manifest.write_bytes(b"\xef\xbb\xbf" + json.dumps({"audio_filepath": "tone.wav", "text": "A", "duration": 1.0}).encode() + b"\n")
    assert [u.text for u in read_manifest(manifest)] == ["A"]
    assert main(["manifest", "validate", str(manifest)]) == 0
    assert "1 good utterances" in capsys.readouterr().out


def test_empty_manifest_is_an_error_for_validate_and_stats(tmp_path, capsys):
    """Regression: an empty manifest 'validated OK' with 0 utterances and stats exited 0."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    for command in ("validate", "stats"):
        assert main(["manifest", command, str(empty)]) == 2
        err = capsys.readouterr().err
        assert "empty.jsonl" in err and "empty manifest" in err and err.count("\n") == 1
