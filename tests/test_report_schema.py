"""The typed report: evaluate() returns it, report.json is written from it and read back into it."""

import json
import re

import pytest

from asrtune.data import Utterance, load_manifest, write_manifest
from asrtune.errors import AsrtuneError
from asrtune.evaluation import evaluate, score_hypotheses, write_report
from asrtune.evaluation.labels import model_rows
from asrtune.evaluation.schema import SCHEMA_VERSION, EvalReport, ModelInfo, Speed, WerScore


@pytest.fixture(scope="module")
def real_report(tiny_recognizer, shared_data, tmp_path_factory):
    """Whisper tiny.en (ct2) on the two shortest LibriSpeech clips (5 s), scored with terms: the
    report and its folder."""
    utts = sorted(load_manifest(shared_data / "librispeech-test-clean-40" / "manifest.jsonl"), key=lambda u: u.duration)[:2]
    folder = tmp_path_factory.mktemp("typed")
    manifest = folder / "three.jsonl"
    write_manifest(manifest, utts, relative=False)
    terms = folder / "terms.txt"
    terms.write_text(f"{utts[0].text.split()[0]}\n")
    report = evaluate(tiny_recognizer("ct2"), manifest, folder / "report", terms=terms, n_resamples=200, progress=False,
                      name="tiny")
    return report, folder / "report"


def test_evaluate_returns_the_typed_report_and_report_json_reads_back_equal(real_report):
    report, folder = real_report
    assert isinstance(report, EvalReport) and report.schema_version == SCHEMA_VERSION
    n = report.normalized
    assert isinstance(n, WerScore) and n.ref_words > 0 and n.utterances == report.n_utterances == 2
    assert n.errors == n.substitutions + n.insertions + n.deletions
    assert n.wer == pytest.approx(n.errors / n.ref_words)
    ci = report.confidence_interval.normalized
    assert ci.low <= n.wer <= ci.high and ci.n_resamples == 200
    assert isinstance(report.speed, Speed) and report.speed.audio_s > 0 and report.speed.wall_s >= report.speed.decode_s
    assert report.model.engine == "ct2" and report.model.label == "tiny" and report.terms.overall.ref >= 1

    assert EvalReport.from_json(folder / "report.json") == report  # the file holds every field
    assert EvalReport.from_json(folder) == report  # a report folder works too
    assert EvalReport.from_json(report.to_json()) == report
    on_disk = json.loads((folder / "report.json").read_text())
    assert on_disk == report.to_dict() and next(iter(on_disk)) == "schema_version"
    # The keys readers of report.json have always used are where they were.
    assert on_disk["normalized"]["wer"] == n.wer and on_disk["speed"]["rtf"] == report.speed.rtf
    assert on_disk["confidence_interval"]["normalized"]["high"] == ci.high
    assert on_disk["model"]["compute_type"] == report.model.settings["compute_type"]  # engine settings beside the name


def test_a_report_without_schema_version_is_version_1(real_report, tmp_path):
    report, folder = real_report
    data = json.loads((folder / "report.json").read_text())
    del data["schema_version"]
    (tmp_path / "report.json").write_text(json.dumps(data))
    assert EvalReport.from_json(tmp_path / "report.json") == report


def test_a_newer_schema_version_is_one_clear_error(real_report, tmp_path):
    _, folder = real_report
    data = json.loads((folder / "report.json").read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    data["normalized"] = {"a layout": "this asrtune does not know"}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AsrtuneError) as error:
        EvalReport.from_json(path)
    message = str(error.value)
    assert message.startswith(f"{path}: schema_version {SCHEMA_VERSION + 1} is newer") and "upgrade asrtune" in message
    assert len(message.splitlines()) == 1


def test_a_damaged_report_names_the_field(real_report, tmp_path):
    _, folder = real_report
    data = json.loads((folder / "report.json").read_text())
    data["normalized"]["ref_words"] = "many"
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AsrtuneError, match=r"report.json: normalized.ref_words: expected int, got 'many'"):
        EvalReport.from_json(path)
    path.write_text("{not json")
    with pytest.raises(AsrtuneError, match="report.json: not JSON"):
        EvalReport.from_json(path)
    with pytest.raises(AsrtuneError, match="cannot read the report"):
        EvalReport.from_json(tmp_path / "missing.json")


def test_html_shows_labelled_settings_and_speed_with_units(real_report):
    report, folder = real_report
    page = (folder / "report.html").read_text()
    rows = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", page))
    assert rows["Model"] == "openai/whisper-tiny.en" and rows["System"] == "tiny"
    assert rows["Engine"] == f"ct2 (CTranslate2, {report.model.settings['compute_type']})"
    assert rows["Search"] == "greedy (beam size 1)"
    assert rows["Audio"] == f"{report.speed.audio_s:.1f} s"
    assert re.fullmatch(r"\d+\.\d{3} \(\d+(\.\d)?x (faster|slower) than real time\)", rows["Real-time factor"])
    assert rows["Wall time"].endswith("(model load, audio, decoding and scoring)")
    assert rows["Compression-ratio threshold"].startswith("2.4 (gzip ratio")
    # No raw settings: neither a JSON object nor a field name of the speed block.
    assert not re.search(r"\{&quot;|\{\"", page)
    for name in ("audio_wait_s", "rtf", "compression_ratio_threshold", "utterances_per_s"):
        assert f">{name}<" not in page
    md = (folder / "report.md").read_text()
    assert "| Real-time factor | " in md and "| Engine | ct2 (CTranslate2" in md and '{"' not in md


def test_scored_hypotheses_have_no_speed_and_keep_the_empty_speed_object(tmp_path):
    utts = [Utterance(f"/d/{i}.wav", "hello big world", 1.0) for i in range(3)]
    report = score_hypotheses(utts, ["hello world"] * 3, model={"name": "vendor", "engine": "none (hypotheses file)"},
                              n_resamples=100)
    write_report(report, tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["speed"] == {} and on_disk["failed"] == [] and "compare" not in on_disk
    back = EvalReport.from_json(tmp_path)
    assert back == report.summary and back.speed is None and back.model.title == "vendor"
    assert "<h2>Speed</h2>" not in (tmp_path / "report.html").read_text()


def test_model_rows_name_biasing_the_lm_and_unknown_settings():
    model = ModelInfo.from_dict({
        "name": "runs/ctc", "engine": "ctc", "family": "ctc", "beam_size": 50, "batch_size": 8, "term_biasing": True,
        "decoding": {"bias_terms": ["grafana", "kubectl"], "term_boost": 4.0, "device": "cpu", "threads": 2},
        "device": "cpu", "decoder": "beam+lm", "lm": "lm/", "lm_weight": 0.5, "lexicon_words": 12000, "hotwords": 0,
        "a_new_knob": 3,
    })
    assert ModelInfo.from_dict(model.to_dict()) == model and model.settings["a_new_knob"] == 3
    rows = dict(model_rows(model))
    assert rows["Engine"] == "ctc (wav2vec2-style CTC)" and rows["Search"] == "beam search, 50 beams"
    assert rows["Term biasing"] == "on: 2 terms, +4 nats per token" and rows["Batch size"] == "8 clips"
    assert rows["Language model"] == "lm/" and rows["Lexicon"] == "12,000 words" and rows["Decoder threads"] == "2"
    assert rows["a_new_knob"] == "3"  # a setting without a label is still shown, under its own name
    assert "Hotwords" not in rows and "Device" not in rows  # none; the device is in the speed table
