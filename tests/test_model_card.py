"""Model cards: a card written from a realistic run parses with huggingface_hub and carries the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from asrtune.training.model_card import ModelCardInfo, card_body, write_model_card  # noqa: E402

DEV = "../shared/data/speechocean762/dev.jsonl"
GENERAL = "../shared/data/librispeech-test-clean-40/manifest.jsonl"
CONFIG = {
    "model": "openai/whisper-tiny.en", "train": ["../shared/data/speechocean762/train.jsonl"], "dev": DEV,
    "out": "runs/accent", "freeze": "encoder", "lr": 1e-5, "batch_size": 16, "grad_accum": 2, "max_steps": 400,
    "text_policy": "sentence", "spec_augment": True, "prompt_fraction": 0.3, "timestamp_fraction": 0.5,
    "eval_sets": [GENERAL], "language": None,
}
RESULT = {
    "run_dir": "runs/accent", "steps": 400, "epochs": 5.3, "stopped": "max-steps", "best_dev_wer": 0.2931,
    "best_step": 300, "trainable_parameters": 29_000_000, "total_parameters": 37_760_640,
    "eval_results": [
        {"set": DEV, "utterances": 200, "base_wer": 0.4112, "tuned_wer": 0.2931, "delta": -0.1181},
        {"set": GENERAL, "utterances": 40, "base_wer": 0.0270, "tuned_wer": 0.0310, "delta": 0.0040},
    ],
}
STATS = {
    "../shared/data/speechocean762/train.jsonl": {"hours": 1.31, "utterances": 1200, "speakers": 60},
    DEV: {"hours": 0.22, "utterances": 200, "speakers": 10},
}


@pytest.fixture
def card_path(tmp_path: Path) -> Path:
    info = ModelCardInfo.from_run(CONFIG, RESULT, STATS, repo_id="me/whisper-tiny-accent")
    return write_model_card(tmp_path, info)


def test_card_parses_and_model_index_carries_the_wers(card_path: Path):
    card = huggingface_hub.ModelCard.load(card_path)
    data = card.data
    assert data.base_model == "openai/whisper-tiny.en"
    assert data.pipeline_tag == "automatic-speech-recognition" and data.library_name == "transformers"
    assert data.language == ["en"] and "asrtune" in data.tags
    results = {r.dataset_name: r for r in data.eval_results}
    assert set(results) == {"speechocean762/dev", "librispeech-test-clean-40/manifest"}
    assert results["speechocean762/dev"].metric_value == 29.31
    assert results["librispeech-test-clean-40/manifest"].metric_value == 3.1
    assert all(r.metric_type == "wer" and r.metric_config == "whisper-en" for r in results.values())
    assert data.to_dict()["model-index"][0]["name"] == "accent"


def test_metadata_round_trips_through_model_card_data(card_path: Path):
    data = huggingface_hub.ModelCard.load(card_path).data
    again = huggingface_hub.ModelCardData(**data.to_dict())
    assert again.to_dict() == data.to_dict()
    assert json.loads(json.dumps(again.to_dict()))["base_model"] == "openai/whisper-tiny.en"


def test_prose_names_data_recipe_results_forgetting_and_usage(card_path: Path):
    text = huggingface_hub.ModelCard.load(card_path).text
    assert "| speechocean762/dev (domain dev set) | 200 | 41.12 | 29.31 | -11.81 |" in text
    assert "`whisper-en` text normaliser" in text
    assert "- librispeech-test-clean-40/manifest: 2.70 % -> 3.10 % (+0.40 points, worse)" in text
    assert "| train | speechocean762/train | 1.31 | 1200 | 60 |" in text
    assert "- freeze preset: `encoder`" in text and "- batch: 16 utterances x 2 accumulation steps" in text
    assert "- trainable parameters: 29,000,000 of 37,760,640 (76.8 %)" in text
    assert "- prompt-fraction: 0.3" in text and "- timestamp-fraction: 0.5" in text
    assert 'pipeline("automatic-speech-recognition", model="me/whisper-tiny-accent")' in text
    assert "from faster_whisper import WhisperModel" in text and "asrtune serve --model me/whisper-tiny-accent" in text


def test_ctranslate2_export_card_points_faster_whisper_at_itself(tmp_path: Path):
    info = ModelCardInfo.from_run(CONFIG, RESULT, STATS, export="ctranslate2", repo_id="me/accent-ct2")
    card = huggingface_hub.ModelCard.load(write_model_card(tmp_path, info))
    assert card.data.library_name == "ctranslate2" and "faster-whisper" in card.data.tags
    assert 'WhisperModel("me/accent-ct2"' in card.text and "from transformers" not in card.text


def test_card_without_general_sets_says_forgetting_was_not_measured(tmp_path: Path):
    result = dict(RESULT, eval_results=RESULT["eval_results"][:1])
    card = huggingface_hub.ModelCard.load(write_model_card(tmp_path, ModelCardInfo.from_run(CONFIG, result, STATS)))
    assert "forgetting was not measured" in card.text


def test_dev_only_card_names_the_base_when_step_0_scored_it(tmp_path: Path):
    result = dict(RESULT, eval_results=[])
    plain = huggingface_hub.ModelCard.load(write_model_card(tmp_path, ModelCardInfo.from_run(CONFIG, result, STATS))).text
    assert "The base model was not scored here" in plain
    scored = ModelCardInfo.from_run(CONFIG, dict(result, base_dev_wer=0.4112), STATS)
    text = huggingface_hub.ModelCard.load(write_model_card(tmp_path, scored)).text
    assert "not scored here" not in text
    assert "Dev set speechocean762/dev: 29.31 % at step 300" in text
    assert "The base model scored 41.12 % on it at step 0 (-11.81 points)" in text
    at_step_0 = ModelCardInfo.from_run(CONFIG, dict(result, best_step=0, best_dev_wer=0.4112), STATS)  # best/ is the base
    assert "The base model scored 41.12 % on it at step 0 (+0.00 points)" in card_body(at_step_0)


def test_results_with_the_paired_test_show_its_interval_and_p_value(tmp_path: Path):
    rows = [dict(RESULT["eval_results"][0], delta_ci=[-0.1402, -0.0951], p_value=0.000999, n_resamples=1000),
            dict(RESULT["eval_results"][1], delta_ci=[-0.0021, 0.0103], p_value=0.4210, n_resamples=1000)]
    info = ModelCardInfo.from_run(CONFIG, dict(RESULT, eval_results=rows), STATS)
    text = huggingface_hub.ModelCard.load(write_model_card(tmp_path, info)).text
    assert "| speechocean762/dev (domain dev set) | 200 | 41.12 | 29.31 | -11.81 | [-14.02, -9.51] | p < 0.001 |" in text
    assert "- librispeech-test-clean-40/manifest: 2.70 % -> 3.10 % (+0.40 points, worse, 95 % CI [-0.21, +1.03], p = 0.4210)" in text
