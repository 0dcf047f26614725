"""Scoring without a model: hypotheses files matched to manifest utterances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asrtune.data.manifest import Utterance, load_manifest
from asrtune.errors import AsrtuneError, ManifestError
from asrtune.evaluation.hypotheses import describe_hypotheses, hypotheses_for, match_hypotheses, read_hypotheses
from asrtune.evaluation.pipeline import evaluate_hypotheses


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def librispeech(shared_data) -> list[Utterance]:
    return load_manifest(shared_data / "librispeech-test-clean-40" / "manifest.jsonl")[:5]


def test_id_and_audio_filepath_keys(tmp_path):
    (tmp_path / "audio").mkdir()
    rows = [
        {"id": "/data/a.flac", "hypothesis": " hello "},
        {"audio_filepath": "audio/long.flac", "offset": 30, "text": "and then"},
        {"audio_filepath": "audio/b.flac", "text": "bee"},
    ]
    hyps = read_hypotheses(write_jsonl(tmp_path / "h.jsonl", rows))
    assert hyps == {"/data/a.flac": "hello", f"{tmp_path}/audio/long.flac@30.000": "and then", f"{tmp_path}/audio/b.flac": "bee"}


def test_manifest_utterances_match_by_asrtune_id_or_their_own_id(librispeech, tmp_path):
    rows = [{"id": librispeech[0].id, "text": "a"}] + [{"id": u.extra["utt_id"], "text": str(i)} for i, u in enumerate(librispeech[1:], 1)]
    assert hypotheses_for(librispeech, write_jsonl(tmp_path / "h.jsonl", rows[::-1])) == ["a", "1", "2", "3", "4"]


def test_report_utterances_jsonl_round_trips_to_the_same_scores(librispeech, tmp_path):
    hyps = [u.text.lower() for u in librispeech]
    hyps[1] = "completely different words"
    first = evaluate_hypotheses(librispeech, hyps, tmp_path / "first", n_resamples=50)
    again = hypotheses_for(librispeech, tmp_path / "first" / "utterances.jsonl")
    assert again == hyps
    second = evaluate_hypotheses(librispeech, again, tmp_path / "second", n_resamples=50, model=describe_hypotheses(tmp_path / "first" / "utterances.jsonl"))
    assert second.normalized.wer == first.normalized.wer > 0


def test_transcribe_transcripts_jsonl_is_accepted(tmp_path):
    utts = [Utterance("/rec/a.flac", "HELLO", 2.0), Utterance("/rec/long.flac", "LATER ON", 5.0, offset=60.0)]
    rows = [
        {"file": "/rec/long.flac@60.000", "path": "/rec/long.flac", "output": "long@60.000", "duration": 5.0, "text": "later on", "segments": [], "offset": 60.0},
        {"file": "/rec/a.flac", "path": "/rec/a.flac", "output": "a", "duration": 2.0, "text": "hello", "segments": []},
    ]
    assert hypotheses_for(utts, write_jsonl(tmp_path / "transcripts.jsonl", rows)) == ["hello", "later on"]


def test_missing_and_unknown_ids_are_named_in_one_line():
    utts = [Utterance(f"/d/{i}.flac", "X", 1.0) for i in range(6)]
    hyps = {f"/d/{i}.flac": "x" for i in range(1, 6)} | {"/d/other.flac": "y"}
    with pytest.raises(AsrtuneError) as e:
        match_hypotheses(utts, hyps, "h.jsonl")
    assert str(e.value) == "h.jsonl: no hypothesis for 1 of 6 manifest utterance(s) (/d/0.flac); 1 hypothesis id(s) not in the manifest (/d/other.flac)"
    with pytest.raises(AsrtuneError, match=r"no hypothesis for 6 of 6 .*\(/d/0.flac, /d/1.flac, /d/2.flac, ... 3 more\)"):
        match_hypotheses(utts, {"/d/x.flac": "x"})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "h.jsonl:2: not valid JSON"),
        ('{"text": "no key"}', "h.jsonl:2: no utterance key"),
        ('{"id": "a"}', "h.jsonl:2: no hypothesis text"),
        ('{"id": "a", "hyp": null}', "h.jsonl:2: 'hyp' must be a string"),
        ('{"id": "/d/a.flac", "text": "again"}', "h.jsonl:2: second hypothesis for '/d/a.flac' (first on line 1)"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "h.jsonl"
    path.write_text('{"id": "/d/a.flac", "text": "hi"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ManifestError) as e:
        read_hypotheses(path)
    assert str(e.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(AsrtuneError, match="file not found"):
        read_hypotheses(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(AsrtuneError, match="no hypotheses in the file"):
        read_hypotheses(tmp_path / "empty.jsonl")
