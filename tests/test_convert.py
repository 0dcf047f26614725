"""CTranslate2 <-> Hugging Face Whisper conversion and `asrtune convert`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from asrtune.cli import main
from asrtune.errors import AsrtuneError
from asrtune.models import ct2_to_hf, hf_to_ct2, resolve_model
from asrtune.models.ct2_format import read_model_bin
from conftest import require_whisper_package
from whisper_helpers import random_whisper

TINY = "openai/whisper-tiny.en"


@pytest.fixture(scope="module")
def tiny():
    require_whisper_package(TINY)
    return resolve_model(TINY)


def test_random_whisper_survives_hf_to_ct2_to_hf_exactly(tiny, tmp_path):
    import torch
    from transformers import WhisperForConditionalGeneration

    original = random_whisper(tmp_path / "hf", tiny.path)
    hf_to_ct2(tmp_path / "hf", tmp_path / "ct2", quantization="float32")
    assert read_model_bin(tmp_path / "ct2" / "model.bin").spec_name == "WhisperSpec"
    ct2_to_hf(tmp_path / "ct2", tmp_path / "back")
    back = WhisperForConditionalGeneration.from_pretrained(tmp_path / "back")
    a, b = original.state_dict(), back.state_dict()
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert back.config.encoder_attention_heads == 2 and back.config.d_model == 64


@pytest.mark.kernels
@pytest.mark.slow
def test_package_ct2_to_hf_to_ct2_gives_identical_tensors_and_transcripts(tiny, tmp_path, shared_data):
    from asrtune.data.audio import load_audio
    from asrtune.inference.whisper_ct2 import WhisperCT2Recognizer

    hf_to_ct2(tiny.path, tmp_path / "ct2", quantization="float16")
    a, b = read_model_bin(tiny.ct2_path / "model.bin"), read_model_bin(tmp_path / "ct2" / "model.bin")
    for name, array in a.variables.items():
        assert np.array_equal(array, b.variables[name]), name
    assert b.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    config = json.loads((tmp_path / "ct2" / "config.json").read_text())
    original = json.loads((tiny.ct2_path / "config.json").read_text())
    for key in ("alignment_heads", "suppress_ids", "suppress_ids_begin"):
        assert config[key] == original[key], key
    for f in ("tokenizer.json", "preprocessor_config.json"):
        assert (tmp_path / "ct2" / f).is_file()

    root = shared_data / "librispeech-test-clean-40"
    utts = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()[:3]]
    clips = [load_audio(root / u["audio_filepath"]) for u in utts]
    from asrtune.models.registry import ResolvedModel

    via_round_trip = ResolvedModel("rt", tiny.path, "whisper", "test", tmp_path / "ct2")
    texts_pkg = WhisperCT2Recognizer(tiny, compute_type="int8").transcribe(clips)
    texts_rt = WhisperCT2Recognizer(via_round_trip, compute_type="int8").transcribe(clips)
    assert texts_rt == texts_pkg
    assert "bruised potatoes" in texts_pkg[0]


def test_hf_to_ct2_refuses_non_whisper_and_leaves_nothing(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    with pytest.raises(AsrtuneError, match="not a Hugging Face Whisper folder"):
        hf_to_ct2(tmp_path / "src", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_ct2_to_hf_failure_midway_leaves_no_dst(tiny, tmp_path, monkeypatch):
    import asrtune.models.convert as convert

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(convert, "save_processor", boom)
    with pytest.raises(OSError):
        ct2_to_hf(tiny.ct2_path, tmp_path / "dst")
    assert list(tmp_path.iterdir()) == []


def test_cli_ct2_to_hf_from_a_model_name(tiny, tmp_path, capsys):
    from transformers import WhisperForConditionalGeneration

    dst = tmp_path / "tiny-hf"
    assert main(["convert", "ct2-to-hf", TINY, str(dst)]) == 0
    assert "converted" in capsys.readouterr().out
    model = WhisperForConditionalGeneration.from_pretrained(dst)
    assert model.config.vocab_size == 51864
    # DST now holds files: refused without --force, one line, exit 2.
    assert main(["convert", "ct2-to-hf", str(tiny.ct2_path), str(dst)]) == 2
    assert "--force" in capsys.readouterr().err
    # The HF model itself is not a CTranslate2 source.
    assert main(["convert", "ct2-to-hf", str(dst), str(tmp_path / "x")]) == 2
    assert "hf-to-ct2" in capsys.readouterr().err


def test_cli_bad_sources_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["convert", "hf-to-ct2", "nobody/nothing", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nobody/nothing" in err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.bin").write_bytes(b"\x06\x00")
    assert main(["convert", "ct2-to-hf", str(tmp_path / "half"), str(tmp_path / "o")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_hf_to_ct2_on_a_transformers5_run_without_preprocessor_config(tiny, tmp_path, capsys):
    """Regression: transformers 5 writes processor_config.json only; the converter was asked to
    copy preprocessor_config.json and failed. The alignment heads must survive the export."""
    best = tmp_path / "run" / "best"
    random_whisper(best, tiny.path)
    (best / "preprocessor_config.json").unlink()
    shutil.copy(tiny.path / "processor_config.json", best / "processor_config.json")
    generation = json.loads((best / "generation_config.json").read_text())
    generation["alignment_heads"] = [[1, 0], [1, 1]]  # not CTranslate2's default for 2 layers x 2 heads
    (best / "generation_config.json").write_text(json.dumps(generation))

    dst = tmp_path / "ct2"
    assert main(["convert", "hf-to-ct2", str(tmp_path / "run"), str(dst), "--quantization", "float32"]) == 0
    assert "converted" in capsys.readouterr().out
    assert json.loads((dst / "config.json").read_text())["alignment_heads"] == [[1, 0], [1, 1]]
    extractor = json.loads((dst / "preprocessor_config.json").read_text())
    assert extractor["feature_size"] == 80 and extractor["sampling_rate"] == 16000
    assert (dst / "tokenizer.json").is_file()
