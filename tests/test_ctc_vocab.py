"""CTC character vocabularies: build, char maps, missing-character errors, head extension."""

from __future__ import annotations

import json

import pytest
import torch

from asrtune.errors import ConfigError
from asrtune.models import ctc_vocab
from ctc_helpers import tiny_ctc_model


def test_build_vocab_layout_and_case_policy():
    texts = [ctc_vocab.prepare_text(t, "lower") for t in ["I'M NOT BIG ENOUGH", "Good  job"]]
    assert texts == ["i'm not big enough", "good job"]
    vocab = ctc_vocab.build_vocab(texts)
    assert list(vocab)[:3] == ["<pad>", "<unk>", "|"] and vocab["<pad>"] == 0
    assert "'" in vocab and " " not in vocab and "G" not in vocab
    assert ctc_vocab.vocab_case(vocab) == "lower"
    assert ctc_vocab.vocab_case({"<pad>": 0, "|": 1, "A": 2, "'": 3}) == "upper"
    assert ctc_vocab.vocab_case({"a": 0, "B": 1}) == "mixed"


def test_char_map_parsing_and_errors():
    assert ctc_vocab.parse_char_map("é=e,’=',—=") == {"é": "e", "’": "'", "—": ""}
    assert ctc_vocab.parse_char_map("==x") == {"=": "x"}
    with pytest.raises(ConfigError, match="--char-map"):
        ctc_vocab.parse_char_map("é")
    assert ctc_vocab.prepare_text("Café’s — menu", "upper", {"é": "e", "’": "'", "—": ""}) == "CAFE'S MENU"


def test_missing_characters_error_lists_them_and_names_both_fixes():
    vocab = ctc_vocab.build_vocab(["abc def"])
    missing = ctc_vocab.find_missing_chars([("abc déf", "train.jsonl:1"), ("naïve", "train.jsonl:7"), ("cé", "train.jsonl:9")], vocab)
    assert missing.counts == {"é": 2, "n": 1, "ï": 1, "v": 1}
    message = str(ctc_vocab.out_of_vocab_error(missing, "facebook/wav2vec2-base-960h"))
    assert "'é' x2 (first at train.jsonl:1)" in message
    assert "--extend-vocab" in message and "--char-map" in message and "facebook/wav2vec2-base-960h" in message


def test_similar_chars_for_new_rows():
    vocab = {"<pad>": 0, "e": 1, "E": 2, "a": 3}
    assert ctc_vocab.similar_chars("é", vocab) == ["e", "E"]
    assert ctc_vocab.similar_chars("É", vocab) == ["E", "e"]
    assert ctc_vocab.similar_chars("ß", vocab) == []


def test_extend_ctc_head_keeps_old_rows_and_initialises_new_ones(tmp_path):
    model, processor = tiny_ctc_model(tmp_path / "m", vocab_text="abcde xyz")
    vocab = dict(processor.tokenizer.get_vocab())
    old_w = model.lm_head.weight.detach().clone()
    old_b = model.lm_head.bias.detach().clone()
    new_vocab = ctc_vocab.extend_ctc_head(model, vocab, ["é", "ñ"])
    assert new_vocab["é"] == len(vocab) and new_vocab["ñ"] == len(vocab) + 1
    assert model.lm_head.out_features == len(vocab) + 2 == model.config.vocab_size
    w, b = model.lm_head.weight.detach(), model.lm_head.bias.detach()
    assert torch.equal(w[: len(vocab)], old_w) and torch.equal(b[: len(vocab)], old_b)
    assert torch.allclose(w[new_vocab["é"]], old_w[vocab["e"]])  # starts as its base letter
    chars = [i for t, i in vocab.items() if t not in ("<pad>", "<unk>", "|")]
    assert torch.allclose(w[new_vocab["ñ"]], old_w[vocab["n"]] if "n" in vocab else old_w[chars].mean(0))
    assert float(b[new_vocab["é"]]) == pytest.approx(float(old_b.min()) - ctc_vocab.NEW_ROW_BIAS_MARGIN)
    # a forward pass works with the grown head
    logits = model(torch.randn(1, 16000)).logits
    assert logits.shape[-1] == len(vocab) + 2


def test_make_processor_round_trip(tmp_path):
    vocab = ctc_vocab.build_vocab(["hello world"])
    processor = ctc_vocab.make_processor(vocab, tmp_path / "p")
    assert json.loads((tmp_path / "p" / "vocab.json").read_text()) == vocab
    from transformers import Wav2Vec2Processor

    loaded = Wav2Vec2Processor.from_pretrained(str(tmp_path / "p"))
    ids = loaded.tokenizer("hello world").input_ids
    assert ids == [vocab[c] if c != " " else vocab["|"] for c in "hello world"]
    assert loaded.tokenizer.decode(ids, group_tokens=False) == "hello world"
    assert loaded.tokenizer.decode(ids) == "helo world"  # CTC decoding merges repeats
    assert len(loaded.tokenizer) == len(vocab)  # no bos/eos added behind our back
    assert processor.feature_extractor.sampling_rate == 16_000
