"""`asrtune export` to ct2, ggml (whisper.cpp), onnx and openai-whisper, and the whispercpp / onnx engines.

Fast tests use a small random Whisper (d_model 64) with the real tokenizer: each format's layout is
checked against the runtime that reads it (openai-whisper's modules, whisper.cpp's loader, ONNX
Runtime). Slow tests export the real tiny.en and transcribe real LibriSpeech speech with each
runtime, asserting a small WER against the reference (not identical words: kernels differ by CPU).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from asrtune.cli import main
from asrtune.errors import AsrtuneError, ConfigError
from asrtune.models import resolve_model
from asrtune.models.export_formats import EXPORT_INFO_FILE, read_export
from conftest import require_whisper_package
from whisper_helpers import random_whisper

TINY = "openai/whisper-tiny.en"
MAX_CLIP_WER = 0.15  # tiny.en on a clean LibriSpeech clip: a working export scores a few words wrong at most


@pytest.fixture(scope="module")
def tiny():
    require_whisper_package(TINY)
    return resolve_model(TINY)


@pytest.fixture(scope="module")
def random_hf(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("random-whisper")
    model = random_whisper(folder, tiny.path)
    return folder, model.eval()


def _features(seed: int = 0, frames: int = 3000):
    import torch

    return torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 80, frames)).astype(np.float32))


# --- bad input: one clear error, nothing written --------------------------------------------------


def test_unknown_format_and_quantisation_are_one_line_errors(tmp_path, capsys):
    assert main(["export", TINY, "--to", "tflite", "--out", str(tmp_path / "o")]) == 2
    assert "--to tflite: unknown export format; choose from ct2, ggml, onnx, openai-whisper" in capsys.readouterr().err
    assert main(["export", TINY, "--to", "ggml", "--quantization", "int8", "--out", str(tmp_path / "o")]) == 2
    assert "--quantization int8: the ggml export takes f16, q8_0, q5_0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_non_empty_out_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "nobody/nothing", "--to", "ggml", "--out", str(out)]) == 2
    assert "already exists and is not empty; pass --force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_ctc_model_to_a_whisper_format_is_refused(tmp_path, capsys):
    (tmp_path / "ctc").mkdir()  # what the registry reads to tell the family: config.json beside weights
    (tmp_path / "ctc" / "config.json").write_text(json.dumps({"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"]}))
    (tmp_path / "ctc" / "model.safetensors").write_bytes(b"")
    assert main(["export", str(tmp_path / "ctc"), "--to", "onnx", "--out", str(tmp_path / "o")]) == 2
    assert "is a ctc model; the onnx export is for Whisper models only" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def test_missing_runtime_package_names_the_install_command(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pywhispercpp" else real(name, *a))
    assert main(["export", TINY, "--to", "ggml", "--out", str(tmp_path / "o")]) == 2
    assert "the ggml export needs pywhispercpp: pip install 'asrtune[export]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_export_engines_name_what_they_cannot_do():
    from asrtune.inference import recognizer_options

    with pytest.raises(ConfigError, match="--engine whispercpp: --beam-size > 1 needs --engine hf or ct2"):
        recognizer_options(engine="whispercpp", beam_size=4)
    with pytest.raises(ConfigError, match="--engine onnx: --word-timestamps needs --engine hf or ct2"):
        recognizer_options(engine="onnx", word_timestamps=True)
    with pytest.raises(ConfigError, match="--engine onnx: --bias-terms needs --engine hf"):
        recognizer_options(engine="onnx", bias_terms=["Dedalus"])
    with pytest.raises(ConfigError, match="whisper.cpp computes its own log-mel features"):
        recognizer_options(engine="whispercpp", features="faster-whisper")
    with pytest.raises(ConfigError, match="--flash-attention is whisper.cpp's; it needs --engine whispercpp, not ct2"):
        recognizer_options(engine="ct2", flash_attention=True)
    assert recognizer_options(engine="whispercpp", flash_attention=True).flash_attention


def test_an_export_folder_run_by_the_wrong_engine_says_which_engine(tmp_path):
    from asrtune.inference import load_recognizer

    (tmp_path / "e").mkdir()
    (tmp_path / "e" / EXPORT_INFO_FILE).write_text(json.dumps({"format": "ggml", "runtime": "whisper.cpp"}))
    with pytest.raises(ConfigError, match="is a ggml export; run it with --engine whispercpp"):
        load_recognizer(tmp_path / "e", engine="onnx")
    (tmp_path / "e" / EXPORT_INFO_FILE).write_text(json.dumps({"format": "openai-whisper", "runtime": "openai-whisper"}))
    with pytest.raises(ConfigError, match="is a openai-whisper export; load it with openai-whisper"):
        load_recognizer(tmp_path / "e", engine="hf")


# --- each format's layout, read back by its runtime (small random Whisper) --------------------------


def test_openai_whisper_checkpoint_computes_what_transformers_computes(random_hf, tmp_path):
    import torch
    import whisper

    from asrtune.models.openai_whisper import write_openai_checkpoint

    folder, hf = random_hf
    write_openai_checkpoint(folder, tmp_path / "model.pt", {"alignment_heads": [[1, 0]]})
    model = whisper.load_model(str(tmp_path / "model.pt"), device="cpu")
    assert torch.load(tmp_path / "model.pt", weights_only=False)["asrtune"] == {"alignment_heads": [[1, 0]]}
    mel, tokens = _features(), torch.tensor([[50257, 50362, 440, 1029]])
    with torch.no_grad():
        ours = model.logits(tokens, model.embed_audio(mel))
        theirs = hf(input_features=mel, decoder_input_ids=tokens).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def _read_ggml_header(path):
    """(hparams, mel filter shape, vocabulary size, {tensor name: (type, dims)}) of a whisper.cpp file."""
    data = path.read_bytes()
    ints = lambda at, n: struct.unpack_from(f"<{n}i", data, at)  # noqa: E731
    magic, *hparams = ints(0, 12)
    assert magic == 0x67676D6C
    at = 48
    n_mel, n_fft = ints(at, 2)
    at += 8 + 4 * n_mel * n_fft
    (n_vocab,) = ints(at, 1)
    at += 4
    for _ in range(n_vocab):
        at += 4 + ints(at, 1)[0]
    return hparams, (n_mel, n_fft), n_vocab, at


@pytest.mark.parametrize("quantization", ["f16", "q8_0"])
def test_ggml_file_has_whisper_cpps_layout_and_loads_there(random_hf, tmp_path, quantization):
    from asrtune.inference.whisper_cpp import WhisperCppRecognizer
    from asrtune.models.ggml import write_ggml

    folder, hf = random_hf
    path = write_ggml(folder, tmp_path / "m.bin", quantization)
    hparams, filters, n_vocab, _ = _read_ggml_header(path)
    assert hparams[:10] == [51864, 1500, 64, 2, 2, 448, 64, 2, 2, 80]
    assert hparams[10] == {"f16": 1, "q8_0": 2007}[quantization]
    assert filters == (80, 201) and n_vocab == 50257  # the byte-level vocabulary; whisper.cpp adds the specials
    rec = WhisperCppRecognizer(path, name="random", source="test", threads=1, compression_ratio_threshold=0)
    assert isinstance(rec.decode([np.zeros(8000, np.float32)])[0].text, str)  # loads, runs a padded 0.5 s clip


def test_whispercpp_suppresses_the_models_suppress_list(random_hf, tmp_path):
    """whisper.cpp's own non-speech rule misses two partial UTF-8 tokens of the music symbols that
    every Whisper checkpoint suppresses; an asrtune ggml export carries the list, so the engine
    suppresses those two by expression. A bare ggml file from elsewhere gets whisper.cpp's rule."""
    import shutil

    from asrtune.inference import load_recognizer
    from asrtune.training.export import export_model

    folder, _ = random_hf
    export = export_model(folder, "ggml", tmp_path / "ggml").path
    rec = load_recognizer(export, engine="whispercpp", threads=1)
    assert rec.suppress_params == {"suppress_nst": True, "suppress_regex": r"(?:\xe2\x99|\x20\xe2\x99)"}
    assert rec.describe()["suppression"] == "the model's suppress_tokens"
    bare = tmp_path / "elsewhere" / "ggml-model.bin"
    bare.parent.mkdir()
    shutil.copy(export / "ggml-model.bin", bare)
    rec = load_recognizer(bare, engine="whispercpp", threads=1)
    assert rec.suppress_params == {"suppress_nst": True, "suppress_regex": ""}
    assert rec.describe()["suppression"] == "whisper.cpp's non-speech rule"


def test_vocabulary_bytes_undo_byte_level_bpe(tiny):
    from asrtune.models.ggml import vocabulary_bytes

    vocab = vocabulary_bytes(tiny.path / "tokenizer.json")
    assert vocab[0] == b"!" and vocab[220] == b" " and vocab[50256] == b"<|endoftext|>"
    assert vocab[995] == b" world"


# --- the real tiny.en in every format, transcribing real speech (slow) ----------------------------


def _clip_wer(text: str, reference: str) -> float:
    from asrtune.evaluation.metrics import corpus_wer

    return corpus_wer([reference], [text])


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """tiny.en exported once per format (and quantisation) for the whole session."""
    require_whisper_package(TINY)
    from asrtune.training.export import export_model

    root = tmp_path_factory.mktemp("exports")
    made = {}
    for fmt, quantization in (("ct2", "float32"), ("ggml", "f16"), ("ggml", "q5_0"), ("onnx", "fp32"), ("onnx", "int8"),
                              ("openai-whisper", None)):
        made[fmt, quantization] = export_model(TINY, fmt, root / f"{fmt}-{quantization}", quantization=quantization).path
    return made


@pytest.fixture(scope="module")
def libri_clip(shared_data):
    from asrtune.data.audio import load_audio

    root = shared_data / "librispeech-test-clean-40"
    first = json.loads((root / "manifest.jsonl").read_text().splitlines()[0])
    return load_audio(root / first["audio_filepath"]), first["text"]


@pytest.mark.slow
@pytest.mark.parametrize("engine,key", [("ct2", ("ct2", "float32")), ("whispercpp", ("ggml", "f16")),
                                        ("whispercpp", ("ggml", "q5_0")), ("onnx", ("onnx", "fp32")),
                                        ("onnx", ("onnx", "int8"))])
def test_each_export_transcribes_real_speech_in_its_runtime(exports, libri_clip, engine, key):
    from asrtune.inference import load_recognizer

    folder = exports[key]
    info = read_export(folder)
    assert info["format"] == key[0] and info["alignment_heads"] and info["suppress_tokens"]
    assert (folder / "README.md").read_text().count(f"--engine {engine}") >= 1
    rec = load_recognizer(folder, engine=engine, threads=2, compression_ratio_threshold=0)
    audio, reference = libri_clip
    assert _clip_wer(rec.transcribe([audio])[0], reference) <= MAX_CLIP_WER


@pytest.mark.slow
def test_whispercpp_flash_attention_is_an_option_that_reaches_whisper_cpp(exports, libri_clip):
    from asrtune.inference import load_recognizer

    rec = load_recognizer(exports["ggml", "f16"], engine="whispercpp", threads=2, flash_attention=True,
                          compression_ratio_threshold=0)
    assert rec.describe()["flash_attention"] is True and rec.model._context_params.flash_attn is True
    audio, reference = libri_clip
    assert _clip_wer(rec.transcribe([audio])[0], reference) <= MAX_CLIP_WER


# speechocean762 test clips on which tiny.en in whisper.cpp, without the model's suppress list, wrote
# "♪♪♪", "♪ Brock and Caesar sheep ♪" and a 146-word loop opening with a quotation mark
SYMBOL_CLIPS = ("JOHN LOVES AMERICA", "DORA CAN SEE THE SHEEP", "IN THE OTHER COUNTRY COULD IT BE DONE AT ALL")


@pytest.mark.slow
def test_whispercpp_never_writes_what_the_model_suppresses(exports, shared_data):
    from asrtune.data.audio import load_audio
    from asrtune.data.manifest import load_manifest
    from asrtune.inference import load_recognizer

    utts = [u for u in load_manifest(shared_data / "speechocean762" / "test.jsonl") if u.text in SYMBOL_CLIPS]
    assert len(utts) == len(SYMBOL_CLIPS)
    rec = load_recognizer(exports["ggml", "f16"], engine="whispercpp", threads=2, compression_ratio_threshold=0)
    texts = rec.transcribe([load_audio(u.audio_filepath) for u in utts])
    assert not [t for t in texts if set(t) & set('♪"[]()')], texts


@pytest.mark.slow
def test_openai_whisper_export_transcribes_real_speech(exports, libri_clip):
    import whisper

    model = whisper.load_model(str(exports["openai-whisper", None] / "model.pt"), device="cpu")
    audio, reference = libri_clip
    result = whisper.decode(model, whisper.log_mel_spectrogram(whisper.pad_or_trim(audio)),
                            whisper.DecodingOptions(fp16=False, without_timestamps=True, language="en"))
    assert _clip_wer(result.text, reference) <= MAX_CLIP_WER


@pytest.mark.slow
def test_onnx_fp32_gives_the_hf_engines_words(exports, libri_clip):
    from asrtune.inference import load_recognizer

    audio, _ = libri_clip
    hf = load_recognizer(TINY, threads=2, compression_ratio_threshold=0).decode([audio])[0]
    onnx = load_recognizer(exports["onnx", "fp32"], engine="onnx", threads=2, compression_ratio_threshold=0).decode([audio])[0]
    assert onnx.tokens == hf.tokens and abs(onnx.no_speech_prob - hf.no_speech_prob) < 1e-3


@pytest.mark.slow
def test_ggml_export_transcribes_the_long_form_file_with_monotonic_times(exports, shared_data):
    from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio
    from asrtune.data.manifest import load_manifest
    from asrtune.inference import load_recognizer

    manifest = load_manifest(next((shared_data / "longform").glob("*.jsonl")))
    audio = load_audio(manifest[0].audio_filepath)
    rec = load_recognizer(exports["ggml", "f16"], engine="whispercpp", threads=2)
    assert rec.describe()["flash_attention"] is False  # the default: whisper.cpp's float16 attention changes words
    segments = rec.segments(audio)
    duration = len(audio) / SAMPLE_RATE_HZ
    assert len(segments) > 10
    assert all(0 <= s.start < s.end <= duration + 0.5 for s in segments)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(segments, segments[1:]))
    assert _clip_wer(" ".join(s.text for s in segments), manifest[0].text) < 0.06


def test_cli_export_writes_card_and_info_atomically(random_hf, tmp_path, capsys):
    folder, _ = random_hf
    out = tmp_path / "tiny-pt"
    assert main(["export", str(folder), "--to", "openai-whisper", "--out", str(out)]) == 0
    assert "(openai-whisper, fp32," in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", EXPORT_INFO_FILE, "model.pt"]
    card = (out / "README.md").read_text()
    assert "# tiny-pt" in card and "library_name: openai-whisper" in card and "whisper.load_model" in card
    assert read_export(out)["source"] == str(folder) and read_export(out)["alignment_heads"] == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    with pytest.raises(AsrtuneError, match="not empty"):
        from asrtune.training.export import export_model

        export_model(folder, "ggml", out)


def test_train_export_option_is_checked_with_the_config(tmp_path):
    from asrtune.training.config import TrainConfig

    config = TrainConfig(model=TINY, train=["t.jsonl"], out=str(tmp_path / "run"), export=["ggml", "onnx"], export_ct2=True)
    assert config.validate().export_formats() == ["ct2", "ggml", "onnx"]
    with pytest.raises(ConfigError, match="--export tflite: unknown export format"):
        TrainConfig(model=TINY, train=["t.jsonl"], out=str(tmp_path / "run"), export=["ct2", "tflite"]).validate()


@pytest.mark.slow
def test_train_export_writes_best_in_each_format_with_the_run_card(tmp_path, shared_data):
    """A (briefly) tuned tiny.en: train --export ggml,onnx, then the ggml export transcribes the long-form
    file in whisper.cpp with valid times, and the onnx export scores a clip in ONNX Runtime."""
    from huggingface_hub import ModelCard

    from asrtune.data.audio import SAMPLE_RATE_HZ, load_audio
    from asrtune.data.manifest import load_manifest, write_manifest
    from asrtune.inference import load_recognizer
    from asrtune.training import train
    from asrtune.training.config import TrainConfig

    require_whisper_package(TINY)
    manifest = tmp_path / "train.jsonl"
    write_manifest(manifest, load_manifest(shared_data / "speechocean762" / "train.jsonl")[:8], relative=False)
    run = tmp_path / "run"
    train(TrainConfig(model=TINY, train=[str(manifest)], out=str(run), batch_size=4, lr=1e-6, warmup_steps=0, max_steps=1,
                      progress=False, threads=2, cache_dir=str(tmp_path / "cache"), no_speech_fraction=0.0,
                      export=["ggml", "onnx"]))
    for fmt, library in (("ggml", "whisper.cpp"), ("onnx", "onnxruntime")):
        card = ModelCard.load(run / f"best-{fmt}" / "README.md")
        assert card.data.library_name == library and card.data.base_model == TINY
        assert read_export(run / f"best-{fmt}")["format"] == fmt
    longform = load_manifest(shared_data / "longform" / "manifest.jsonl")[0]
    audio = load_audio(longform.audio_filepath)
    segments = load_recognizer(run / "best-ggml", engine="whispercpp", threads=2).segments(audio)
    assert all(0 <= s.start < s.end <= len(audio) / SAMPLE_RATE_HZ + 0.5 for s in segments)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(segments, segments[1:]))
    assert _clip_wer(" ".join(s.text for s in segments), longform.text) < 0.06


@pytest.mark.slow  # the ONNX export of even a small model takes ~20 s on a loaded 2-core machine
def test_onnx_graphs_compute_what_transformers_computes_with_and_without_past(random_hf, tmp_path):
    import onnxruntime as ort
    import torch

    from asrtune.models.onnx_export import DECODER_FILE, ENCODER_FILE, write_onnx

    folder, hf = random_hf
    write_onnx(folder, tmp_path, "fp32")
    encoder = ort.InferenceSession(str(tmp_path / ENCODER_FILE), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(tmp_path / DECODER_FILE), providers=["CPUExecutionProvider"])
    mel, tokens = _features(1), [50257, 50362, 440, 1029]
    with torch.no_grad():
        expected = hf(input_features=mel, decoder_input_ids=torch.tensor([tokens])).logits.numpy()
    cross = encoder.run(None, {"input_features": mel.numpy()})[0]
    assert cross.shape == (2, 2, 1, 2, 1500, 32)
    empty = np.zeros((2, 2, 1, 2, 0, 32), np.float32)
    first, past = decoder.run(None, {"input_ids": np.array([tokens[:3]]), "self_kv": empty, "cross_kv": cross})
    step, _ = decoder.run(None, {"input_ids": np.array([tokens[3:]]), "self_kv": past, "cross_kv": cross})
    assert np.allclose(first[0], expected[0, :3], atol=1e-4) and np.allclose(step[0, 0], expected[0, 3], atol=1e-4)


def test_a_peft_lora_adapter_is_merged_into_its_base_before_export(random_hf, tmp_path, monkeypatch):
    import torch
    import whisper
    from peft import LoraConfig, get_peft_model

    from asrtune.training.export import export_model

    monkeypatch.setenv("ASRTUNE_CACHE", str(tmp_path / "cache"))
    folder, _ = random_hf
    from transformers import WhisperForConditionalGeneration

    base = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"]))
    with torch.no_grad():  # LoRA's B starts at zero; a non-zero one makes the merge visible
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(folder)}))
    merged = peft_model.merge_and_unload().eval()

    result = export_model(tmp_path / "adapter", "openai-whisper", tmp_path / "out")
    model = whisper.load_model(str(result.path / "model.pt"), device="cpu")
    mel, tokens = _features(2), torch.tensor([[50257, 50362, 440]])
    with torch.no_grad():
        ours = model.logits(tokens, model.embed_audio(mel))
        expected = merged(input_features=mel, decoder_input_ids=tokens).logits
        unmerged = WhisperForConditionalGeneration.from_pretrained(folder)(input_features=mel, decoder_input_ids=tokens).logits
    assert torch.allclose(ours, expected, atol=1e-4) and not torch.allclose(ours, unmerged, atol=1e-2)
    assert read_export(result.path)["source"] == str(tmp_path / "adapter")
