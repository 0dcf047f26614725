"""asrtune demo: data preparation, options, summary; the full flow (real Whisper tiny.en) is slow-marked."""

from __future__ import annotations

import dataclasses
import json

import pytest

from asrtune.cli import demo_cmd, main
from asrtune.data.audio import audio_info
from asrtune.data.manifest import load_manifest
from asrtune.demo import (
    DEMO_BATCH,
    DEMO_EVAL_EVERY,
    DEMO_LR,
    DEV_VOICES,
    TEST_VOICES,
    TRAIN_VOICES,
    DemoConfig,
    corpus_files,
    format_summary_table,
    shipped_corpus,
    synthesize_demo_data,
)
from asrtune.errors import ConfigError
from asrtune.synth import read_sentences
from asrtune.training import TrainConfig
from conftest import require_whisper_package


def _language(voice: str) -> str:
    return voice.partition("+")[0]


def _variant(voice: str) -> str:
    return voice.partition("+")[2]


def test_test_voices_are_unseen_in_training_and_dev():
    for voice in TEST_VOICES:
        assert _language(voice) not in {_language(v) for v in TRAIN_VOICES + DEV_VOICES}
        assert _variant(voice) not in {_variant(v) for v in TRAIN_VOICES + DEV_VOICES}
    assert not {_language(v) for v in DEV_VOICES} & {_language(v) for v in TRAIN_VOICES}


def test_shipped_corpus_is_found():
    files = corpus_files(None)
    assert files["train"].parent == shipped_corpus()
    assert all(p.is_file() for p in files.values())


def test_options_that_cannot_work_are_named():
    with pytest.raises(ConfigError, match="--manifest, --dev and --test go together"):
        DemoConfig(manifest="train.jsonl").check()
    with pytest.raises(ConfigError, match="--max-train-minutes"):
        DemoConfig(max_train_minutes=0).check()
    with pytest.raises(ConfigError, match="--corpus"):
        corpus_files("/nonexistent/corpus")
    with pytest.raises(ConfigError, match="--test /nonexistent/test.jsonl: file not found"):
        DemoConfig(manifest=__file__, dev=__file__, test="/nonexistent/test.jsonl").check()


def test_synthesize_demo_data_splits_voices_and_sentences(tmp_path):
    config = DemoConfig(max_sentences=6, variants_per_sentence=2, progress=False)
    paths = synthesize_demo_data(config, tmp_path, say=lambda m: None)
    train, dev, test = (load_manifest(paths[k]) for k in ("train", "dev", "test"))
    assert {u.speaker for u in train} <= set(TRAIN_VOICES)
    assert {u.speaker for u in dev} <= set(DEV_VOICES)
    assert {u.speaker for u in test} <= set(TEST_VOICES)
    # Training clips pack several sentences of one voice, within Whisper's 30 s window.
    assert sum(len(u.extra["sentence_ids"]) for u in train) == 6 * 2
    for u in train:
        assert u.text == " ".join(read_sentences(shipped_corpus() / "train.txt")[i] for i in u.extra["sentence_ids"])
        assert audio_info(u.audio_filepath)[0] <= 30.0
    heldout = read_sentences(shipped_corpus() / "heldout.txt")[:6]
    assert [u.text for u in test] == heldout  # one held-out sentence per test file
    assert not {u.text for u in test} & set(read_sentences(shipped_corpus() / "train.txt"))


def test_summary_table_shows_both_rows_and_reduction():
    summary = {
        "model": "openai/whisper-tiny.en",
        "zero_shot": {"wer": 0.62, "term_recall": 0.1},
        "tuned": {"wer": 0.31, "term_recall": 0.7},
        "relative_wer_reduction": 0.5,
        "test_description": "held-out sentences",
    }
    table = format_summary_table(summary)
    assert "62.0 %" in table and "31.0 %" in table and "70.0 %" in table
    assert "relative WER reduction: 50.0 %" in table


def test_cli_demo_help_and_bad_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0
    assert "--max-train-minutes" in capsys.readouterr().out
    assert main(["demo", "--manifest", "x.jsonl"]) == 2
    assert "--dev and --test" in capsys.readouterr().err


def test_the_training_options_are_train_s_declarations_with_the_demo_defaults():
    demo = {f.name: f for f in dataclasses.fields(DemoConfig)}
    train = {f.name: f for f in dataclasses.fields(TrainConfig)}
    shared = ("dev", "max_train_minutes", "max_steps", "lr", "batch_size", "eval_every", "threads", "seed", "progress")
    for name in shared:
        assert demo[name].metadata["help"] == train[name].metadata["help"], name
        assert demo[name].metadata["metavar"] == train[name].metadata["metavar"], name
    defaults = DemoConfig()
    assert (defaults.lr, defaults.batch_size, defaults.eval_every, defaults.max_train_minutes) == (DEMO_LR, DEMO_BATCH, DEMO_EVAL_EVERY, 6.0)
    assert TrainConfig().lr != DEMO_LR  # the demo's own default, not train's
    assert all(f.metadata.get("help") for f in demo.values()), "every demo option is declared with option()"


class _Stop(Exception):
    """Raised in place of the demo run (minutes long) once the CLI has built its config."""


def test_cli_demo_options_reach_the_config(monkeypatch):
    seen = []

    def record(config):
        seen.append(config)
        raise _Stop

    monkeypatch.setattr(demo_cmd, "run_demo", record)
    with pytest.raises(_Stop):
        main(["demo", "--lr", "3e-4", "--max-steps", "4", "--no-progress", "--threads", "2", "--out", "x"])
    (config,) = seen
    assert (config.lr, config.max_steps, config.progress, config.threads, config.out) == (3e-4, 4, False, 2, "x")
    assert config.batch_size == DEMO_BATCH


def test_cli_demo_bad_number_is_one_line_naming_the_option(capsys):
    assert main(["demo", "--lr", "fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'lr'" in err and "fast" in err, err


@pytest.mark.slow
def test_demo_end_to_end_tiny_budget(tmp_path, capsys):
    """The whole flow with real Whisper tiny.en on a few sentences and a few training steps."""
    require_whisper_package()
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--max-sentences", "8", "--max-train-minutes", "1", "--max-steps", "4",
                 "--eval-every", "2", "--threads", "2", "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "zero-shot" in printed and "fine-tuned" in printed
    for name in ("summary.md", "summary.json", "report.html", "zero_shot/report.json", "zero_shot/report.html",
                 "tuned/report.json", "tuned/report.html", "run/best", "run/learning_curve.png"):  # fmt: skip
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("zero_shot", "tuned"):
        assert 0 <= summary[key]["wer"] and summary[key]["term_recall"] is not None
        assert summary[key]["utterances"] == 8
    assert summary["training"]["steps"] == 4
    tuned = json.loads((out / "tuned" / "report.json").read_text())
    assert tuned["compare"]  # compared against the zero-shot report
