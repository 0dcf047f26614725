"""CTC decoding: greedy vs lexicon + word-LM beam search, hotword boosting, CTCRecognizer.

The beam-search tests decode *synthetic but honest* CTC posteriors: for each character of a
real speechocean762 transcript a few frames favour that character (plus Gaussian noise), a
blank frame follows, and some characters are confused with a random other one (a stronger
wrong peak). Greedy decoding then makes real character errors; the LM, estimated from the
*training* transcripts only, has to repair them on *held-out test* sentences (whose words it
covers, as the issue asks). No model weights are needed, so the tests take seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from asrtune.errors import ConfigError
from asrtune.evaluation.metrics import error_counts
from asrtune.inference.ctc import BeamSearchDecoder, CTCRecognizer, greedy_decode
from asrtune.lm.build import build_lm
from asrtune.models.ctc_vocab import make_processor

# wav2vec2-base-960h's layout: upper case, <s>/</s> present but never emitted.
UPPER_VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")}}
LETTERS = [i for t, i in UPPER_VOCAB.items() if len(t) == 1 and t != "|"]
SIGNAL = 4.0  # logit margin of the spoken character
CONFUSION = 5.0  # logit of a confusing character (beats the spoken one: a greedy error)
NOISE = 0.8  # std of the per-frame logit noise


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=1, keepdims=True))).astype(np.float32)


def synthetic_emissions(text: str, rng: np.random.Generator, p_confuse: float = 0.1, rivals: dict[str, str] | None = None) -> np.ndarray:
    """CTC log-posteriors ``[frames, vocab]`` for ``text`` (see module docstring).

    ``rivals`` maps a word to a same-length rival whose differing characters get almost the same
    evidence (slightly more), so only a language-model preference can tell them apart.
    """
    frames = []
    for word in text.split():
        rival = (rivals or {}).get(word)
        for k, char in enumerate(list(word) + ["|"]):
            confused = rng.choice(LETTERS) if char != "|" and rival is None and rng.random() < p_confuse else None
            alt = UPPER_VOCAB[rival[k]] if rival and k < len(rival) and rival[k] != char else None
            for _ in range(int(rng.integers(2, 4))):
                f = rng.normal(0, NOISE, len(UPPER_VOCAB))
                f[UPPER_VOCAB[char]] += SIGNAL
                if confused is not None:
                    f[confused] += CONFUSION
                if alt is not None:
                    f[alt] += SIGNAL + 0.3
                frames.append(f)
            blank = rng.normal(0, NOISE, len(UPPER_VOCAB))
            blank[0] += SIGNAL
            frames.append(blank)
    return _log_softmax(np.array(frames[:-1]))


@pytest.fixture(scope="module")
def so762_lm(shared_data, tmp_path_factory):
    """An LM from speechocean762 train transcripts + 40 held-out test sentences it covers."""
    root = shared_data / "speechocean762"
    train = [json.loads(line)["text"] for line in open(root / "train.jsonl", encoding="utf-8")]
    test = [json.loads(line)["text"] for line in open(root / "test.jsonl", encoding="utf-8")]
    words = {w for t in train for w in t.split()}
    held_out = sorted({t for t in test if all(w in words for w in t.split())} - set(train))[:40]
    tmp = tmp_path_factory.mktemp("so762_lm")
    (tmp / "lm.txt").write_text("\n".join(train), encoding="utf-8")
    (tmp / "vocab.json").write_text(json.dumps(UPPER_VOCAB))
    build_lm(tmp / "lm.txt", tmp / "lm", order=3, tokens_from=str(tmp / "vocab.json"))
    processor = make_processor(UPPER_VOCAB, tmp / "proc")
    return tmp / "lm", held_out, processor


def test_lm_beam_search_beats_greedy_on_held_out_sentences(so762_lm):
    lm_dir, held_out, processor = so762_lm
    assert len(held_out) == 40
    rng = np.random.default_rng(0)
    emissions = [synthetic_emissions(t, rng) for t in held_out]
    greedy = [greedy_decode(e, processor.tokenizer) for e in emissions]
    decoder = BeamSearchDecoder(UPPER_VOCAB, lm_dir=lm_dir, beam_size=50)
    beam = [decoder.decode(e) for e in emissions]
    greedy_wer = error_counts(held_out, greedy).wer
    beam_wer = error_counts(held_out, beam).wer
    assert greedy_wer > 0.2  # the synthetic acoustics really are noisy ...
    assert beam_wer < greedy_wer / 3  # ... and the lexicon + LM repair most of it
    assert decoder.describe()["decoder"] == "beam+lm" and decoder.describe()["lexicon_words"] > 1000


def test_lexicon_free_beam_without_lm_matches_greedy_quality(so762_lm):
    _, held_out, processor = so762_lm
    rng = np.random.default_rng(1)
    emissions = [synthetic_emissions(t, rng, p_confuse=0.0) for t in held_out[:10]]
    decoder = BeamSearchDecoder(UPPER_VOCAB, beam_size=8)
    beam = [decoder.decode(e) for e in emissions]
    greedy = [greedy_decode(e, processor.tokenizer) for e in emissions]
    assert error_counts(held_out[:10], beam).wer <= error_counts(held_out[:10], greedy).wer + 0.05


def test_hotword_boosting_raises_term_recall(so762_lm):
    lm_dir, held_out, _ = so762_lm
    rivals = {"GOAD": "GOOD", "TIMO": "TIME", "HANK": "HAND"}  # terms vs. frequent look-alike words
    terms = list(rivals)
    rng = np.random.default_rng(1)
    sentences = []
    for i, text in enumerate(held_out[:30]):
        words = text.split()
        words.insert(int(rng.integers(0, len(words) + 1)), terms[i % len(terms)])
        sentences.append(" ".join(words))
    emissions = [synthetic_emissions(s, rng, p_confuse=0.05, rivals=rivals) for s in sentences]

    def recall(boost: float | None, with_terms: bool = True) -> float:
        decoder = BeamSearchDecoder(UPPER_VOCAB, lm_dir=lm_dir, terms=terms if with_terms else None, hotword_boost=boost)
        hyps = [decoder.decode(e) for e in emissions]
        return sum(t in h.split() for s, h in zip(sentences, hyps) for t in terms if t in s.split()) / len(sentences)

    no_terms, unboosted, boosted = recall(None, with_terms=False), recall(0.0), recall(3.0)
    assert no_terms == 0.0  # terms the LM never saw are outside the lexicon
    assert boosted >= unboosted + 0.3  # the boost, not just the lexicon entry, brings them back
    assert boosted >= 0.6


def test_terms_without_lm_is_a_clear_error():
    with pytest.raises(ConfigError, match="--lm"):
        BeamSearchDecoder(UPPER_VOCAB, terms=["grafana"])


def test_ctc_recognizer_end_to_end_on_real_audio(shared_data, tmp_path):
    """A random tiny model through the Recognizer API: greedy and beam paths run and agree in shape."""
    from ctc_helpers import tiny_ctc_model

    from asrtune.data.audio import load_audio
    from asrtune.data.manifest import load_manifest
    from asrtune.models import resolve_model

    tiny_ctc_model(tmp_path / "m")
    resolved = resolve_model(str(tmp_path / "m"))
    assert resolved.family == "ctc"
    utts = sorted(load_manifest(shared_data / "speechocean762" / "dev.jsonl"), key=lambda u: u.duration)[:3]
    audios = [load_audio(u.audio_filepath) for u in utts]
    greedy = CTCRecognizer(resolved, batch_size=2)
    texts = greedy.transcribe(audios)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    log_probs = greedy.log_probs(audios)
    # frame counts follow the audio lengths (no padding frames leak into shorter clips)
    expected = [int(greedy.model._get_feat_extract_output_lengths(len(a))) for a in audios]
    assert [lp.shape[0] for lp in log_probs] == expected
    assert all(np.allclose(np.exp(lp).sum(-1), 1, atol=1e-4) for lp in log_probs)
    (tmp_path / "lm.txt").write_text("good job\nhow are we going\n", encoding="utf-8")
    build_lm(tmp_path / "lm.txt", tmp_path / "lm", tokens_from=str(tmp_path / "m"))
    beam = CTCRecognizer(resolved, lm=tmp_path / "lm", terms=["grafana"])
    info = beam.describe()
    assert info["family"] == "ctc" and info["decoder"] == "beam+lm" and info["beam_size"] == 50 and info["hotwords"] == 1
    for text in beam.decode_log_probs(log_probs):
        assert set(text.split()) <= {"good", "job", "how", "are", "we", "going", "grafana"}
    assert greedy.describe()["decoder"] == "greedy"
