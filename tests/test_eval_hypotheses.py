"""`asrtune eval --hypotheses`: scoring another system's transcripts through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asrtune.cli import main
from asrtune.data import load_manifest, write_manifest
from asrtune.evaluation import evaluate_hypotheses
from asrtune.evaluation.schema import EvalReport

RESAMPLES = "200"


@pytest.fixture()
def five(shared_data, tmp_path) -> Path:
    """Five librispeech utterances in a manifest of absolute paths."""
    utts = load_manifest(shared_data / "librispeech-test-clean-40" / "manifest.jsonl")[:5]
    manifest = tmp_path / "five.jsonl"
    write_manifest(manifest, utts, relative=False)
    return manifest


def _report(folder: Path) -> EvalReport:
    return EvalReport.from_json(folder / "report.json")


def _numbers(summary: EvalReport) -> tuple:
    return (summary.n_utterances, summary.normalized, summary.orthographic, summary.confidence_interval)


def test_hypotheses_of_a_reports_own_utterances_reproduce_its_numbers(five, tmp_path, capsys):
    utts = load_manifest(five)
    hyps = [u.text.lower() for u in utts]
    hyps[1] = "completely different words"
    hyps[3] = hyps[3].rsplit(" ", 2)[0]  # two deletions
    first = evaluate_hypotheses(utts, hyps, tmp_path / "first", n_resamples=int(RESAMPLES), manifests=[str(five)],
                                manifest_of=[str(five)] * len(utts))
    assert first.normalized.wer > 0

    out = tmp_path / "again"
    code = main(["eval", "--hypotheses", str(tmp_path / "first" / "utterances.jsonl"), "--manifest", str(five),
                 "--out", str(out), "--name", "first-again", "--resamples", RESAMPLES, "--compare", str(tmp_path / "first")])
    assert code == 0
    again = _report(out)
    assert _numbers(again) == _numbers(first)
    assert again.model.label == "first-again" and again.model.engine == "none (hypotheses file)"
    assert again.compare.matched_utterances == 5 and again.compare.unchanged == 5
    assert "normalised (whisper-en)" in capsys.readouterr().out


def test_a_missing_hypothesis_is_one_error_naming_the_utterance(five, tmp_path, capsys):
    utts = load_manifest(five)
    hyps = tmp_path / "hyps.jsonl"
    hyps.write_text("".join(json.dumps({"id": u.id, "text": u.text}) + "\n" for u in utts[:4]))
    out = tmp_path / "report"
    assert main(["eval", "--hypotheses", str(hyps), "--manifest", str(five), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and utts[4].extra.get("utt_id", utts[4].id) in err[0] and str(hyps) in err[0], err
    assert not out.exists()


def test_decoding_options_are_refused_with_hypotheses(five, tmp_path, capsys):
    hyps = tmp_path / "hyps.jsonl"
    hyps.write_text("")
    assert main(["eval", "--hypotheses", str(hyps), "--manifest", str(five), "--out", str(tmp_path / "r"),
                 "--engine", "ct2"]) == 2
    assert "--engine" in capsys.readouterr().err


def test_a_file_named_through_a_symlink_matches(five, tmp_path):
    """`asrtune transcribe` records resolved paths; a manifest may reach the same files through a link."""
    from asrtune.evaluation.hypotheses import hypotheses_for

    utts = load_manifest(five)
    real = Path(utts[0].audio_filepath).resolve().parent
    link = tmp_path / "linked"
    link.symlink_to(real, target_is_directory=True)
    linked = [type(u)(str(link / Path(u.audio_filepath).name), u.text, u.duration) for u in utts]
    hyps = tmp_path / "transcripts.jsonl"
    hyps.write_text("".join(json.dumps({"file": str(Path(u.audio_filepath).resolve()), "text": str(i)}) + "\n"
                            for i, u in enumerate(utts)))
    assert hypotheses_for(linked, hyps) == ["0", "1", "2", "3", "4"]
