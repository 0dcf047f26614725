"""``--train-encoder-top K``: the cache holds the hidden states below the top K encoder layers,
which train with the decoder from step 0. Fast tests use a random 2+2-layer Whisper on real
audio; the slow one fine-tunes the real multilingual whisper-base for a few steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from asrtune.errors import ConfigError
from asrtune.training import TrainConfig, train
from asrtune.training.compare import utterance_audio

from conftest import require_whisper_package
from test_train import config, so16, tiny_whisper, trainable  # noqa: F401  (fixtures)


def _adapter(model_dir, **kw):
    from asrtune.models import resolve_model
    from asrtune.training.adapters.whisper import WhisperAdapter

    cfg = TrainConfig(model=str(model_dir), train=["x"], out="x", **kw)
    adapter = WhisperAdapter.from_resolved(resolve_model(str(model_dir)), cfg)
    adapter.apply_freeze("encoder")
    return adapter


def _clips(so16, n=2):
    from asrtune.data.manifest import load_manifest

    return [utterance_audio(u) for u in load_manifest(so16[0])[:n]]


def test_cached_bottom_plus_top_equals_the_full_encoder(tiny_whisper, so16):
    split = _adapter(tiny_whisper, train_encoder_top=1)
    whole = _adapter(tiny_whisper)
    audios = _clips(so16)
    cached = split.encode(audios)
    assert cached.dtype == np.float16 and cached.shape == (2, 1500, 64)
    finished = split.finish_encoding(cached)
    full = whole.encode(audios).astype(np.float32)
    # float16 storage of the mid-encoder states is the only difference
    np.testing.assert_allclose(finished, full, atol=2e-2, rtol=2e-2)
    assert not np.allclose(cached.astype(np.float32), full, atol=1e-1)  # the cache really holds mid-encoder states
    assert split.cache_fingerprint()["split_layer"] == 1 and whole.cache_fingerprint()["split_layer"] is None
    assert split.cache_fingerprint()["encoder_weights"] != whole.cache_fingerprint()["encoder_weights"]


def test_trainable_set_full_and_lora(tiny_whisper):
    full = _adapter(tiny_whisper, train_encoder_top=1)
    names = {n for n, p in full.model.named_parameters() if p.requires_grad}
    assert {"model.encoder.layers.1.fc1.weight", "model.encoder.layer_norm.weight"} <= names
    assert not any(n.startswith(("model.encoder.layers.0.", "model.encoder.conv")) for n in names)
    groups = {g["name"]: g for g in full.parameter_groups(full.config)}
    assert groups["encoder_top"]["lr"] == pytest.approx(full.config.lr / 10)
    lora = _adapter(tiny_whisper, train_encoder_top=1, adapter="lora")
    names = {n for n, p in lora.model.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    assert any(".encoder.layers.1." in n for n in names) and any(".decoder.layers." in n for n in names)
    assert not any(".encoder.layers.0." in n for n in names)


@pytest.mark.slow
def test_top_layer_trains_from_the_split_cache(tiny_whisper, so16, tmp_path):
    run = tmp_path / "run"
    result = train(config(tiny_whisper, so16, run, max_steps=2, train_encoder_top=1))
    assert result.cache["used"] and result.cache["split_layer"] == 1 and result.cache["encoded"] == 16
    state = trainable(run)
    from safetensors.torch import load_file

    base = load_file(str(tiny_whisper / "model.safetensors"))
    assert not torch.equal(state["model.encoder.layers.1.fc1.weight"], base["model.encoder.layers.1.fc1.weight"])
    assert "model.encoder.layers.0.fc1.weight" not in state
    tuned = load_file(str(run / "final" / "model.safetensors"))
    torch.testing.assert_close(tuned["model.encoder.layers.0.fc1.weight"], base["model.encoder.layers.0.fc1.weight"])


def test_option_conflicts_are_config_errors(tiny_whisper, so16, tmp_path):
    with pytest.raises(ConfigError, match="--train-encoder-top.*--unfreeze-top-layers"):
        config(tiny_whisper, so16, tmp_path / "a", train_encoder_top=1, unfreeze_top_layers=1).validate()
    with pytest.raises(ConfigError, match="--freeze encoder"):
        config(tiny_whisper, so16, tmp_path / "b", train_encoder_top=1, freeze="none").validate()
    with pytest.raises(ConfigError, match="only 2 layers"):
        train(config(tiny_whisper, so16, tmp_path / "c", max_steps=1, train_encoder_top=3))
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_whisper_base_trains_with_the_split_cache_and_keeps_its_prefix(shared_data, tmp_path):
    require_whisper_package("openai/whisper-base")
    from asrtune.data.manifest import load_manifest, write_manifest
    from asrtune.inference import load_recognizer

    manifest = tmp_path / "train.jsonl"
    write_manifest(manifest, load_manifest(shared_data / "speechocean762" / "train.jsonl")[:4], relative=False)
    run = tmp_path / "run"
    cfg = TrainConfig(model="openai/whisper-base", train=[str(manifest)], out=str(run), max_steps=2, batch_size=2,
                      lr=1e-5, warmup_steps=0, train_encoder_top=1, progress=False, threads=2,
                      cache_dir=str(tmp_path / "cache"))
    result = train(cfg)
    assert result.steps == 2 and result.cache["split_layer"] == 5  # base has 6 encoder layers
    generation = json.loads((run / "best" / "generation_config.json").read_text())
    assert generation["is_multilingual"] and generation["lang_to_id"]["<|en|>"] == 50259
    recognizer = load_recognizer(str(run / "best"), engine="hf", device="cpu", batch_size=1)
    tokenizer = recognizer.processor.tokenizer
    prefix = tokenizer.convert_ids_to_tokens(recognizer.prompt.tokens())
    assert prefix[-4:] == ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    text = recognizer.transcribe([utterance_audio(load_manifest(manifest)[0])])[0]
    assert len(text.split()) >= 2
