"""score_hypotheses + write_report: the report a user gets, built from hypotheses we make here."""

import json
import random
import re

import pytest

from asrtune.data import Utterance, load_manifest
from asrtune.errors import AsrtuneError
from asrtune.evaluation import score_hypotheses, write_report
from asrtune.evaluation.report import format_table

REQUIRED_KEYS = {
    "orthographic", "normalized", "confidence_interval", "terms", "flags", "by_field",
    "speed", "model", "normalizer", "manifests", "failed",
}
BLOCK_KEYS = {"wer", "cer", "substitutions", "insertions", "deletions", "hits", "ref_words"}


def _corrupt(text: str, rng: random.Random, rate: float) -> str:
    """Drop or replace words at ``rate``: a deterministic stand-in for a weaker system."""
    out = []
    for w in text.split():
        x = rng.random()
        if x < rate / 2:
            continue
        out.append("XX" if x < rate else w)
    return " ".join(out)


@pytest.fixture(scope="module")
def speechocean(shared_data):
    return load_manifest(shared_data / "speechocean762" / "test.jsonl")[:120]


def test_full_report_files_and_keys(tmp_path, speechocean):
    rng = random.Random(0)
    hyps = [_corrupt(u.text, rng, 0.3).capitalize() + "." for u in speechocean]
    hyps[0] = ""  # dropped
    hyps[1] = "the the the the the the the the"  # loop + long
    terms = tmp_path / "terms.txt"
    terms.write_text("# words from the prompts\nGermany\nten\n")
    report = score_hypotheses(speechocean, hyps, terms=str(terms), model={"name": "corrupted-refs"},
                              manifests=["test.jsonl"], manifest_of=["test.jsonl"] * len(hyps))
    paths = write_report(report, tmp_path / "rep")
    for name in ("report.json", "utterances.jsonl", "report.md", "report.html"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    summary = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert REQUIRED_KEYS <= set(summary)
    for view in ("orthographic", "normalized"):
        assert BLOCK_KEYS <= set(summary[view])
        b = summary[view]
        assert b["hits"] + b["substitutions"] + b["deletions"] == b["ref_words"]
        assert b["wer"] == pytest.approx((b["substitutions"] + b["deletions"] + b["insertions"]) / b["ref_words"])
    # Normalisation removes case and punctuation errors, so it can only help here.
    assert summary["normalized"]["wer"] < summary["orthographic"]["wer"]
    ci = summary["confidence_interval"]["normalized"]
    assert ci["low"] <= summary["normalized"]["wer"] <= ci["high"] and ci["n_resamples"] >= 1000
    assert summary["flags"]["counts"]["empty"] >= 1 and summary["flags"]["counts"]["repetition"] >= 1
    assert summary["terms"]["per_term"][0]["recall"] is not None
    # speaker, age and gender are automatic breakdowns; per-speaker counts add up to the total
    assert {"speaker", "age", "gender"} <= set(summary["by_field"])
    assert sum(r["ref_words"] for r in summary["by_field"]["speaker"]) == summary["normalized"]["ref_words"]
    lines = (tmp_path / "rep" / "utterances.jsonl").read_text().splitlines()
    assert len(lines) == len(speechocean)
    rec = json.loads(lines[1])
    assert rec["flags"]["repetition"]["ngram"] == "the"
    assert rec["alignment"][0].startswith("REF: ") and set(rec["ops"]) <= set("=SID")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2  # error types + by-field plots
    assert not re.search(r'(src|href)="(http|/|\.)', html)  # self-contained
    assert "whisper-en" in (tmp_path / "rep" / "report.md").read_text()
    assert "normalised (whisper-en)" in format_table(report.summary)
    assert set(paths) == {"report.json", "utterances.jsonl", "report.md", "report.html"}


def test_per_manifest_and_pooled(tmp_path):
    a = [Utterance(f"/a/{i}.wav", "alpha beta gamma delta", 1.0) for i in range(6)]
    b = [Utterance(f"/b/{i}.wav", "red green", 1.0) for i in range(4)]
    hyps = ["alpha beta gamma delta"] * 6 + ["red"] * 4
    r = score_hypotheses(a + b, hyps, manifests=["a.jsonl", "b.jsonl"], manifest_of=["a.jsonl"] * 6 + ["b.jsonl"] * 4,
                         n_resamples=200)
    pm = r.summary.per_manifest
    assert pm["a.jsonl"].normalized.wer == 0.0
    assert pm["b.jsonl"].normalized.wer == 0.5
    assert r.summary.normalized.wer == pytest.approx(4 / 32)  # pooled over words, not a mean of 0 and 0.5


def test_empty_reference_gives_null_not_nan(tmp_path):
    utts = [Utterance("/x/1.wav", "", 1.0), Utterance("/x/2.wav", "hello world", 1.0)]
    write_report(score_hypotheses(utts, ["noise words", "hello world"], n_resamples=200), tmp_path)
    text = (tmp_path / "utterances.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    first = json.loads(text.splitlines()[0])
    assert first["normalized"]["wer"] is None and first["normalized"]["insertions"] == 2
    assert json.loads((tmp_path / "report.json").read_text())["normalized"]["wer"] == 1.0


def test_compare_paired_bootstrap(tmp_path, speechocean):
    rng = random.Random(1)
    worse = [_corrupt(u.text, rng, 0.4) for u in speechocean]
    better = [_corrupt(u.text, rng, 0.05) for u in speechocean]
    write_report(score_hypotheses(speechocean, worse, model={"name": "old"}), tmp_path / "old")
    r = score_hypotheses(speechocean, better, model={"name": "new"}, compare=tmp_path / "old")
    cmp = r.summary.compare
    assert cmp.matched_utterances == len(speechocean)
    assert cmp.normalized.difference < 0 and cmp.normalized.high < 0
    assert cmp.normalized.p_value < 0.01
    assert cmp.improved > cmp.worsened
    assert cmp.other_model.name == "old" and cmp.biggest_improvements[0].delta_errors < 0
    assert all("compare" in rec for rec in r.utterances)
    write_report(r, tmp_path / "new")
    assert (tmp_path / "new" / "report.html").read_text().count("data:image/png;base64,") >= 3  # + scatter
    same = score_hypotheses(speechocean, worse, compare=tmp_path / "old").summary.compare
    assert same.normalized.difference == 0.0 and same.normalized.p_value == 1.0


def test_compare_needs_a_report_folder(tmp_path):
    with pytest.raises(AsrtuneError, match="report.json not found"):
        score_hypotheses([Utterance("/a.wav", "a", 1.0)], ["a"], compare=tmp_path)


def test_breakdown_fields_automatic_and_requested():
    from asrtune.evaluation.scoring import groupable_fields

    utts = [Utterance(f"/{i}.wav", "a b", 1.0, extra={"utt_id": f"u{i}", "style": "read" if i % 2 else "chat",
                                                      "meta": {"x": 1}}) for i in range(20)]
    assert groupable_fields(utts) == ["style"]  # utt_id is unique per utterance, meta is nested
    assert groupable_fields(utts, ["utt_id"]) == ["utt_id", "style"]
    with pytest.raises(AsrtuneError, match="--by accent"):
        groupable_fields(utts, ["accent"])


def test_evaluate_hypotheses_writes_the_report_folder(tmp_path):
    from asrtune.evaluation import evaluate_hypotheses

    utts = [Utterance(f"/d/{i}.wav", "hello big world", 1.0) for i in range(4)]
    summary = evaluate_hypotheses(utts, ["hello world"] * 4, tmp_path / "dev", model={"name": "run"}, n_resamples=200)
    assert summary.normalized.deletions == 4 and summary.model.name == "run"
    assert json.loads((tmp_path / "dev" / "report.json").read_text())["model"] == {"name": "run"}
