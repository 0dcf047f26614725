"""Word n-gram LM estimation (ARPA via our Kneser-Ney), lexicon/tokens, `asrtune lm build`."""

from __future__ import annotations

import json
import random

import kenlm
import pytest

from asrtune.cli import main as cli_main
from asrtune.errors import ConfigError
from asrtune.lm.build import build_lm, load_lm_info
from asrtune.lm.lexicon import clean_line, read_lexicon_words, read_tokens, spell
from asrtune.lm.ngram import estimate_kneser_ney


def _random_sentences(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    words = "the cat sat on a mat dog ran to big red very slowly".split()
    return [[rng.choice(words) for _ in range(rng.randint(1, 9))] for _ in range(n)]


def _next_word_mass(model: kenlm.Model, context: list[str], vocab: list[str], bos: bool) -> float:
    state = kenlm.State()
    (model.BeginSentenceWrite if bos else model.NullContextWrite)(state)
    for word in context:
        out = kenlm.State()
        model.BaseScore(state, word, out)
        state = out
    total = 0.0
    for word in vocab:
        total += 10 ** model.BaseScore(state, word, kenlm.State())
    return total


@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_arpa_is_a_normalised_distribution_in_kenlm(tmp_path, order):
    lm = estimate_kneser_ney(_random_sentences(400), order)
    arpa = tmp_path / "lm.arpa"
    lm.write_arpa(arpa)
    model = kenlm.Model(str(arpa))  # loads: the file is valid ARPA
    assert model.order == order
    vocab = [w for w in lm.vocabulary if w != "<s>"]
    # P(w | h) sums to one over the vocabulary for seen, partly seen and unseen contexts
    for context, bos in [([], True), (["the"], False), (["the", "cat"], False), (["red", "red", "dog"], False), (["zebra"], False)]:
        assert _next_word_mass(model, context, vocab, bos) == pytest.approx(1.0, abs=1e-4)


def test_kneser_ney_prefers_seen_continuations_and_gives_unk_mass(tmp_path):
    sentences = [["open", "the", "grafana", "dashboard"]] * 5 + [["open", "the", "door"]] * 5 + [["close", "the", "door"]]
    lm = estimate_kneser_ney(sentences, 3)
    lm.write_arpa(tmp_path / "lm.arpa")
    model = kenlm.Model(str(tmp_path / "lm.arpa"))
    assert model.score("open the grafana dashboard") > model.score("open the dashboard grafana")
    assert model.score("close the door") > model.score("close the grafana")
    unk = dict(((g[0], p) for g, (p, _) in lm.orders[0].items()))["<unk>"]
    assert -10 < unk < 0  # the uniform share: small but finite


def test_order_and_empty_text_errors():
    with pytest.raises(ConfigError, match="--order"):
        estimate_kneser_ney([["a"]], 1)
    with pytest.raises(ConfigError, match="no words"):
        estimate_kneser_ney([[], []], 3)


def test_clean_line_and_spelling_follow_the_model_case():
    assert clean_line("Hello, World's END!  ", "lower", None, None) == ["hello", "world's", "end"]
    assert clean_line("Café—menu", "upper", {"é": "E", "—": " "}, None) == ["CAFE", "MENU"]
    upper = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "A": 5, "B": 6, "'": 7}
    assert spell("ab'", upper, "upper") == ["A", "B", "'", "|"]
    assert spell("abc", upper, "upper") is None  # 'C' is not in the vocabulary


def test_build_lm_writes_arpa_lexicon_tokens_and_json(tmp_path):
    text = tmp_path / "domain.txt"
    text.write_text("Open the Grafana dashboard.\nRestart the pod, then open Grafana!\n\nscale the pods\n", encoding="utf-8")
    terms = tmp_path / "terms.txt"
    terms.write_text("# product names\nKubernetes\nprometheus alertmanager\n", encoding="utf-8")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    info = build_lm(text, tmp_path / "lm", order=3, terms=terms, tokens_from=str(tmp_path / "vocab.json"))
    lm_dir, loaded = load_lm_info(tmp_path / "lm")
    assert loaded == info
    assert info["case"] == "upper" and info["order"] == 3
    assert info["hotwords"] == ["KUBERNETES", "PROMETHEUS", "ALERTMANAGER"]
    assert info["sentences"] == 5 and info["unspellable_words"] == 0
    words = read_lexicon_words(lm_dir / "lexicon.txt")
    assert "GRAFANA" in words and "KUBERNETES" in words and "the" not in words
    lines = dict(line.split("\t") for line in (lm_dir / "lexicon.txt").read_text().splitlines())
    assert lines["POD"] == "P O D |"
    assert read_tokens(lm_dir / "tokens.txt") == vocab
    model = kenlm.Model(str(lm_dir / "lm.arpa"))
    assert model.order == 3
    assert model.score("OPEN THE GRAFANA DASHBOARD") > model.score("OPEN THE DASHBOARD GRAFANA")


def test_build_lm_reports_unspellable_words_and_missing_files(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("naïve café owner\n", encoding="utf-8")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: 3 + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    info = build_lm(text, tmp_path / "lm", tokens_from=str(tmp_path / "vocab.json"))
    assert info["unspellable_words"] == 2 and set(info["unspellable_chars"]) == {"ï", "é"}
    assert read_lexicon_words(tmp_path / "lm" / "lexicon.txt") == ["owner"]
    fixed = build_lm(text, tmp_path / "lm2", tokens_from=str(tmp_path / "vocab.json"), char_map="ï=i,é=e")
    assert fixed["unspellable_words"] == 0
    with pytest.raises(ConfigError, match="--text .*missing.txt: file not found"):
        build_lm(tmp_path / "missing.txt", tmp_path / "lm3")
    with pytest.raises(ConfigError, match="no lm.json"):
        load_lm_info(tmp_path)


def test_lm_build_cli(tmp_path, capsys):
    text = tmp_path / "domain.txt"
    text.write_text("\n".join(" ".join(s) for s in _random_sentences(50)), encoding="utf-8")
    assert cli_main(["lm", "build", "--text", str(text), "--out", str(tmp_path / "lm"), "--order", "4"]) == 0
    out = capsys.readouterr().out
    assert "4-gram LM" in out
    info = json.loads((tmp_path / "lm" / "lm.json").read_text())
    assert info["order"] == 4 and info["case"] == "lower"
    assert (tmp_path / "lm" / "tokens.txt").read_text().splitlines()[:3] == ["<pad>", "<unk>", "|"]
    assert cli_main(["lm", "build", "--text", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x")]) == 2
    assert "file not found" in capsys.readouterr().err
