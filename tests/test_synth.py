"""asrtune synth: real eSpeak NG audio, its manifest, the shipped clinic corpus and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from asrtune.cli import main
from asrtune.data.audio import SAMPLE_RATE_HZ, audio_info, load_audio
from asrtune.data.manifest import load_manifest
from asrtune.errors import ConfigError, ManifestError
from asrtune.synth import (
    SynthConfig,
    add_noise,
    get_engine,
    list_voices,
    number_to_words,
    read_sentence_file,
    read_sentences,
    speakable,
    synthesize_corpus,
)

REPO = Path(__file__).resolve().parent.parent
CLINIC = REPO / "manifests" / "clinic"
SENTENCES = ["Start apixaban five milligrams twice daily.", "The electrocardiogram shows atrial fibrillation."]


def _spectral_centroid(wav: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wav))
    freqs = np.fft.rfftfreq(len(wav), 1 / SAMPLE_RATE_HZ)
    return float((spectrum * freqs).sum() / spectrum.sum())


def test_engine_speaks_english_voices_with_plausible_duration():
    engine = get_engine()
    assert {"en-us", "en-gb", "en-gb-scotland", "en-029"} <= set(list_voices("en"))
    wav = engine.synthesize("the patient takes metoprolol twice daily", voice="en-us", rate=175)
    seconds = len(wav) / engine.sample_rate
    # Seven words at 175 words/minute is ~2.4 s; allow for eSpeak's pauses either way.
    assert 1.2 < seconds < 5.0
    assert np.abs(wav).max() > 0.05
    assert wav.dtype == np.float32


def test_rate_changes_duration_and_voices_differ():
    engine = get_engine()
    text = "levetiracetam seven hundred fifty milligrams twice daily"
    slow = engine.synthesize(text, voice="en-us", rate=120)
    fast = engine.synthesize(text, voice="en-us", rate=240)
    assert len(slow) > 1.5 * len(fast)
    male = engine.synthesize(text, voice="en-us+m3", rate=175, pitch=30)
    female = engine.synthesize(text, voice="en-us+f3", rate=175, pitch=70)
    n = min(len(male), len(female))
    # A female variant at a higher pitch has its energy at higher frequencies.
    assert _spectral_centroid(female[:n]) > _spectral_centroid(male[:n]) * 1.05
    assert not np.allclose(male[:n], female[:n])


def test_unknown_voice_variant_and_bad_rate_are_clear_errors():
    engine = get_engine()
    with pytest.raises(ConfigError, match="unknown eSpeak language 'xx-yy'"):
        engine.synthesize("hello", voice="xx-yy")
    with pytest.raises(ConfigError, match="unknown eSpeak variant 'nosuch'"):
        engine.synthesize("hello", voice="en-us+nosuch")
    with pytest.raises(ConfigError, match="--rates"):
        engine.synthesize("hello", voice="en-us", rate=5)
    with pytest.raises(ConfigError, match="empty"):
        engine.synthesize("   ", voice="en-us")


def test_speakable_expands_numbers_and_acronyms_but_not_words():
    assert number_to_words(0) == "zero"
    assert number_to_words(115) == "one hundred fifteen"
    assert number_to_words(40_000) == "forty thousand"
    assert speakable("INR is 2.4 today") == "I N R is two point four today"
    assert speakable("Give 1,250 units, 5% dextrose") == "Give one thousand two hundred fifty units, five percent dextrose"
    assert speakable("COPD and ECGs") == "C O P D and E C G's"
    assert speakable("Apixaban twice daily.") == "Apixaban twice daily."


def test_synthesize_corpus_writes_valid_16khz_manifest(tmp_path):
    config = SynthConfig(voices=["en-us", "en-gb+f3", "en-029+m3"], rates=[150, 180], pitches=[40, 60],
                         variants_per_sentence=3, noise_snr_db=(20, 35), seed=1)
    utts = synthesize_corpus(SENTENCES, tmp_path / "out", config, progress=False)
    assert len(utts) == 6
    manifest = tmp_path / "out" / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert all(not Path(d["audio_filepath"]).is_absolute() for d in lines)
    assert {d["speaker"] for d in lines} == {"en-us", "en-gb+f3", "en-029+m3"}
    for d in lines:
        assert d["voice"] == d["speaker"] and d["rate"] in (150, 180) and d["pitch"] in (40, 60)
        assert 20 <= d["snr_db"] <= 35
    # The three renderings of one sentence use three different voices.
    assert len({d["voice"] for d in lines if d["sentence_id"] == 0}) == 3
    for utt in load_manifest(manifest):
        duration, rate, channels = audio_info(utt.audio_filepath)
        assert (rate, channels) == (SAMPLE_RATE_HZ, 1)
        assert abs(duration - utt.duration) < 0.01
        assert 1.0 < duration < 8.0
        wav = load_audio(utt.audio_filepath)
        assert np.sqrt(np.mean(wav**2)) > 0.01  # speech, not silence
        assert utt.text in SENTENCES


def test_same_seed_same_plan_other_seed_differs(tmp_path):
    cfg = dict(voices=["en-us", "en-gb+f3"], rates=[140, 160, 190], pitches=[30, 50, 70], variants_per_sentence=2)
    keys = ("speaker", "rate", "pitch", "snr_db")

    def meta(seed, name):
        utts = synthesize_corpus(SENTENCES, tmp_path / name, SynthConfig(**cfg, seed=seed), progress=False)
        return [tuple(u.extra[k] for k in keys) for u in utts], [u.duration for u in utts]

    (plan_a, dur_a), (plan_b, dur_b), (plan_c, _) = meta(3, "a"), meta(3, "b"), meta(4, "c")
    assert plan_a == plan_b and plan_a != plan_c
    # eSpeak itself varies a few samples from call to call; durations agree to within 1 %.
    assert np.allclose(dur_a, dur_b, rtol=0.01)


def test_add_noise_hits_requested_snr():
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    clean = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noisy = add_noise(clean, 20.0, rng)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - 20.0) < 0.5


def test_bad_config_names_the_option(tmp_path):
    with pytest.raises(ConfigError, match="--variants-per-sentence"):
        synthesize_corpus(SENTENCES, tmp_path, SynthConfig(variants_per_sentence=0), progress=False)
    with pytest.raises(ConfigError, match="--voices"):
        synthesize_corpus(SENTENCES, tmp_path, SynthConfig(voices=["en-us", "klingon"]), progress=False)
    with pytest.raises(ConfigError, match="--noise-snr-db"):
        synthesize_corpus(SENTENCES, tmp_path, SynthConfig(noise_snr_db=(30, 10)), progress=False)


def test_read_sentences_skips_comments_and_reports_missing(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("# comment\n\nFirst one.\n  Second one.  \n")
    assert read_sentences(text) == ["First one.", "Second one."]
    with pytest.raises(ManifestError, match="not found"):
        read_sentences(tmp_path / "missing.txt")
    empty = tmp_path / "e.txt"
    empty.write_text("# only a comment\n")
    with pytest.raises(ManifestError, match="no sentences"):
        read_sentences(empty)


def test_punctuation_only_lines_are_skipped_and_counted(tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes("\ufeffFirst one.\n...\n!!!\n5%\n".encode("utf-8"))  # a BOM is not part of the text
    read = read_sentence_file(text)
    assert read.sentences == ["First one.", "5%"] and read.unspeakable_lines == [2, 3]
    only_punctuation = tmp_path / "p.txt"
    only_punctuation.write_text("...\n?!\n")
    with pytest.raises(ManifestError, match="no speakable word"):
        read_sentence_file(only_punctuation)


def _words(s: str) -> str:
    return " " + re.sub(r"[^a-z]+", " ", s.lower()) + " "


def test_clinic_corpus_is_disjoint_and_covers_every_term():
    train = read_sentences(CLINIC / "train.txt")
    heldout = read_sentences(CLINIC / "heldout.txt")
    terms = read_sentences(CLINIC / "terms.txt")
    assert 250 <= len(train) <= 320 and 40 <= len(heldout) <= 70 and 40 <= len(terms) <= 80
    assert len(set(train)) == len(train) and len(set(heldout)) == len(heldout)
    assert not {_words(s) for s in train} & {_words(s) for s in heldout}
    for term in terms:
        t = _words(term)
        assert sum(t in _words(s) for s in train) >= 3, f"{term} too rare in train.txt"
        assert any(t in _words(s) for s in heldout), f"{term} missing from heldout.txt"
    for s in train + heldout:
        assert 3 <= len(s.split()) <= 16, s


def test_cli_synth_writes_manifest_and_lists_voices(tmp_path, capsys):
    text = tmp_path / "domain.txt"
    text.write_text("Start apixaban today.\n...\nCheck the INR on Friday.\n!!!\n")
    out = tmp_path / "synth"
    assert main(["synth", "--text", str(text), "--out", str(out), "--voices", "en-us", "en-gb+m3",
                 "--variants-per-sentence", "2", "--noise-snr-db", "none"]) == 0
    utts = load_manifest(out / "manifest.jsonl")
    assert len(utts) == 4 and {u.speaker for u in utts} == {"en-us", "en-gb+m3"}
    assert all(u.extra["snr_db"] is None for u in utts)
    assert [u.text for u in utts[::2]] == ["Start apixaban today.", "Check the INR on Friday."]
    printed = capsys.readouterr().out
    assert "wrote 4 files" in printed and "skipped 2 line(s)" in printed and "(line 2, 4)" in printed
    assert main(["synth", "--list-voices"]) == 0
    assert "en-gb-scotland" in capsys.readouterr().out
    assert main(["synth", "--text", str(tmp_path / "nope.txt"), "--out", str(out)]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_synth_output_passes_manifest_validate(tmp_path):
    pytest.importorskip("asrtune.data.validate")
    text = tmp_path / "domain.txt"
    text.write_text("Metformin five hundred milligrams.\n")
    out = tmp_path / "synth"
    assert main(["synth", "--text", str(text), "--out", str(out), "--variants-per-sentence", "2"]) == 0
    assert main(["manifest", "validate", str(out / "manifest.jsonl")]) == 0


def test_packed_clips_join_sentences_of_one_voice(tmp_path):
    sentences = [f"Patient {w} takes metformin twice daily." for w in ("one", "two", "three", "four", "five", "six")]
    config = SynthConfig(voices=["en-us", "en-gb+f3"], variants_per_sentence=2, pack_seconds=12, pack_max_sentences=4, seed=2)
    utts = synthesize_corpus(sentences, tmp_path / "p", config, progress=False)
    assert sum(len(u.extra["sentence_ids"]) for u in utts) == 12  # every rendering lands in one clip
    assert len(utts) < 12
    for u in utts:
        assert u.text == " ".join(sentences[i] for i in u.extra["sentence_ids"])
        assert u.duration <= 12.0 or len(u.extra["sentence_ids"]) == 1
        assert abs(audio_info(u.audio_filepath)[0] - u.duration) < 0.01
    with pytest.raises(ConfigError, match="--pack-seconds"):
        synthesize_corpus(sentences, tmp_path / "q", SynthConfig(pack_seconds=45), progress=False)
