"""Word timestamps and no-speech detection on every engine, with real tiny.en weights and real speech.

Fast: the result type on two LibriSpeech clips (both Whisper engines), the shared token -> word
grouping, DTW, CTC forced alignment on a small random wav2vec2 (mechanics, not accuracy),
transcribe_encoded. Slow: word timing accuracy on the 5-minute long-form file (first and last
word of each of its 38 utterances) and hallucination on 30 clips of silence, noise and hum
through ``asrtune transcribe``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from asrtune.alignment.dtw import dtw, median_filter
from asrtune.alignment.words import words_from_alignment
from asrtune.inference.base import Hypothesis
from conftest import REPO_ROOT, require_whisper_package

TINY = "openai/whisper-tiny.en"
SAMPLE_RATE_HZ = 16_000


SHORT_CLIPS = (1, 27)  # librispeech-test-clean-40 lines: 3.3 s and 2.7 s (short clips keep the hf tests quick)


def _clips(shared_data, n: int = 2):
    from asrtune.data.audio import load_audio

    root = shared_data / "librispeech-test-clean-40"
    lines = (root / "manifest.jsonl").read_text().splitlines()
    return [load_audio(root / json.loads(lines[i])["audio_filepath"]) for i in SHORT_CLIPS[:n]]


def _reference_texts(shared_data, n: int = 2) -> list[str]:
    lines = (shared_data / "librispeech-test-clean-40" / "manifest.jsonl").read_text().splitlines()
    return [json.loads(lines[i])["text"] for i in SHORT_CLIPS[:n]]


def _letters(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module", params=["hf", "ct2"])
def whisper(request):
    require_whisper_package(TINY)
    from asrtune.inference import load_recognizer

    return load_recognizer(TINY, engine=request.param, batch_size=2)


# ----------------------------------------------------------------------------- fast


def test_decode_gives_text_words_and_scores_on_both_engines(whisper, shared_data):
    clips = _clips(shared_data)
    hyps = whisper.decode(clips, word_timestamps=True)
    assert [h.text for h in hyps] == whisper.transcribe(clips)  # one decoding path
    for hyp, clip in zip(hyps, clips):
        assert isinstance(hyp, Hypothesis) and hyp.text and hyp.tokens
        assert -1.0 < hyp.avg_logprob < 0.0 and 0.0 <= hyp.no_speech_prob < 0.2  # clear speech
        words = hyp.words
        assert _letters(" ".join(w.text for w in words)) == _letters(hyp.text)  # the words are the text
        assert len(words) == len(hyp.text.split())
        duration = len(clip) / SAMPLE_RATE_HZ
        for w in words:
            assert 0.0 <= w.start <= w.end <= duration + 0.02 and 0.0 <= w.probability <= 1.0
        assert all(a.start <= b.start and a.end <= b.end for a, b in zip(words, words[1:]))  # monotonic
        assert words[-1].end - words[0].start > 0.5 * duration  # spread over the speech, not bunched


def test_decode_without_word_timestamps_has_no_words(whisper, shared_data):
    (hyp,) = whisper.decode(_clips(shared_data, 1))
    assert hyp.words is None and hyp.no_speech_prob is not None


def test_force_align_times_the_given_text_and_scores_the_right_text_higher(whisper, shared_data):
    clips = _clips(shared_data)
    lines = (shared_data / "librispeech-test-clean-40" / "manifest.jsonl").read_text().splitlines()
    rows = [json.loads(lines[i]) for i in SHORT_CLIPS]
    own = whisper.force_align(clips, [r["text"].capitalize() for r in rows])
    swapped = whisper.force_align(clips, [rows[1]["text"].capitalize(), rows[0]["text"].capitalize()])
    for hyp, row, clip in zip(own, rows, clips):
        assert [w.text for w in hyp.words] == row["text"].capitalize().split()  # the given text, word for word
        assert all(0.0 <= w.start <= w.end <= len(clip) / SAMPLE_RATE_HZ + 0.02 for w in hyp.words)
    for right, wrong in zip(own, swapped):  # a transcript of other speech is far less likely on this audio
        assert right.avg_logprob > wrong.avg_logprob + 1.0


@pytest.mark.kernels
def test_engines_agree_on_word_times(shared_data):
    """hf's Python DTW over recorded attention and CTranslate2's C++ align find the same times.

    Both engines time the *reference* words (forced alignment), so the comparison pairs the same
    words whatever each engine would have recognised: fp32 and int8 kernels differ between
    instruction sets and may decode a word differently, but they must not move its time by more
    than a couple of encoder frames."""
    require_whisper_package(TINY)
    from asrtune.inference import load_recognizer

    clips = _clips(shared_data, 1)
    text = _reference_texts(shared_data, 1)[0]
    hf, ct2 = (load_recognizer(TINY, engine=e).force_align(clips, [text])[0] for e in ("hf", "ct2"))
    assert [w.text for w in hf.words] == [w.text for w in ct2.words] == text.split()
    gaps = [abs(a.start - b.start) for a, b in zip(hf.words, ct2.words)]
    assert np.median(gaps) <= 0.04  # two encoder frames
    assert max(gaps) <= 0.2


def test_no_speech_rule_blanks_an_unsure_silent_segment(shared_data):
    """With the thresholds at their extremes every segment counts as silence; the defaults keep speech."""
    require_whisper_package(TINY)
    from asrtune.inference import load_recognizer

    clips = _clips(shared_data, 1)
    strict = load_recognizer(TINY, engine="ct2")
    strict.no_speech_threshold, strict.log_prob_threshold = 0.0, 0.0
    (hyp,) = strict.decode(clips, word_timestamps=True)
    assert hyp.text == "" and hyp.words == [] and hyp.tokens == [] and hyp.avg_logprob is not None


def test_transcribe_encoded_matches_transcribe(shared_data):
    require_whisper_package(TINY)
    from asrtune.inference import load_recognizer

    rec = load_recognizer(TINY, engine="hf")
    clips = _clips(shared_data, 2)
    import torch

    from asrtune.inference.whisper_common import log_mel_batch

    mel = log_mel_batch(clips, rec.model.config.num_mel_bins, "hf", rec.processor.feature_extractor)
    with torch.inference_mode():
        encoded = rec.model.model.encoder(torch.from_numpy(mel)).last_hidden_state.numpy()
    assert rec.transcribe_encoded(encoded) == rec.transcribe(clips)


def test_token_grouping_merges_punctuation_and_keeps_word_times():
    vocab = {1: " Hello", 2: ",", 3: " wor", 4: "ld", 5: ".", 6: " (", 7: " ok", 8: ")"}
    decode = lambda ids: "".join(vocab[i] for i in ids)  # noqa: E731
    tokens = [1, 2, 3, 4, 5, 6, 7, 8]
    # one row per token plus end-of-text; frame k of row k (a diagonal path), 20 ms per frame
    rows = np.arange(len(tokens) + 1)
    words = words_from_alignment(tokens, decode, rows, rows * 10, [0.5] * len(tokens), 0.02)
    assert [w.text for w in words] == ["Hello,", "world.", "(ok)"]
    hello, world, ok = words
    assert (hello.start, hello.end) == (0.0, 0.2)  # " Hello" alone: the comma's frames are not its
    assert (world.start, world.end) == (0.4, 0.8)  # " wor" + "ld"
    assert ok.start == 1.2 and ok.probability == 0.5  # " ok", with "(" before it and ")" after


def test_a_pause_inside_unpunctuated_text_is_cut_from_the_word_after_it():
    """No full stop marks the sentence end, so only the length rule can give the pause back."""
    vocab = {1: " one", 2: " two", 3: " three", 4: " four", 5: " five"}
    decode = lambda ids: "".join(vocab[i] for i in ids)  # noqa: E731
    # rows entered at frames 0, 15, 30, 45, 105, end of text at 120 (0.02 s frames): the path enters
    # " four" as the pause begins (0.9 s), as DTW on real attention does, so " four" spans the 0.9 s
    # pause and its 0.3 s of speech; every other word lasts 0.3 s
    words = words_from_alignment([1, 2, 3, 4, 5], decode, np.arange(6), np.array([0, 15, 30, 45, 105, 120]), [0.9] * 5, 0.02)
    assert [(w.start, w.end) for w in words[:3]] == [(0.0, 0.3), (0.3, 0.6), (0.6, 0.9)]
    four = words[3]
    assert four.end == 2.1 and abs(four.start - 1.5) < 1e-9  # at most 2 x the median word (0.3 s)
    assert (words[4].start, words[4].end) == (2.1, 2.4)


def test_dtw_follows_the_cheap_diagonal_and_median_filter_keeps_shape():
    cost = np.ones((3, 6))
    for i, j in [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]:
        cost[i, j] = 0.0
    rows, cols = dtw(cost)
    assert cols.tolist() == [0, 1, 2, 3, 4, 5] and rows.tolist() == [0, 0, 1, 1, 2, 2]
    x = np.random.default_rng(0).standard_normal((2, 3, 50))
    assert median_filter(x, 7).shape == x.shape


def test_ctc_forced_alignment_gives_one_monotonic_word_per_word(tmp_path, shared_data):
    """A random wav2vec2 decodes garbage, but every word it writes gets one time span in the clip."""
    from asrtune.inference.ctc import CTCRecognizer
    from asrtune.models.registry import resolve_model
    from ctc_helpers import tiny_ctc_model

    model, processor = tiny_ctc_model(tmp_path / "w2v")
    rec = CTCRecognizer(resolve_model(str(tmp_path / "w2v")), model=model, processor=processor, word_timestamps=True)
    clips = _clips(shared_data, 2)
    hyps = rec.decode(clips, word_timestamps=True)
    assert [h.text for h in hyps] == rec.transcribe(clips)
    assert any(h.text.split() for h in hyps)
    for hyp, clip in zip(hyps, clips):
        assert [w.text for w in hyp.words] == hyp.text.split()
        for w in hyp.words:
            assert 0.0 <= w.start < w.end <= len(clip) / SAMPLE_RATE_HZ + 0.02 and 0.0 < w.probability <= 1.0
        assert all(a.end <= b.start for a, b in zip(hyp.words, hyp.words[1:]))


def test_transcribe_audio_puts_words_in_file_time(shared_data):
    """Two clips joined with 2 s of silence: the second clip's words come out 2 s + the first's length later."""
    require_whisper_package(TINY)
    from asrtune.inference import load_recognizer
    from asrtune.transcription.longform import transcribe_audio

    a, b = _clips(shared_data, 2)
    gap = np.zeros(2 * SAMPLE_RATE_HZ, np.float32)
    rec = load_recognizer(TINY, engine="ct2")
    segments = transcribe_audio(rec, np.concatenate([a, gap, b]), word_timestamps=True, max_segment_s=4.0)
    assert len(segments) == 2
    second_start = (len(a) + len(gap)) / SAMPLE_RATE_HZ
    first, second = segments
    assert first.end <= second_start <= second.start
    assert all(first.start <= w.start <= w.end <= first.end for w in first.words)
    assert second_start <= second.words[0].start < second_start + 1.0  # speech starts within a second
    assert second.to_dict()["words"][0] == second.words[0].to_dict()
    assert not transcribe_audio(rec, gap)  # silence: no segments


def test_alignment_heads_reach_both_engines_and_fall_back_with_a_warning(tmp_path):
    """tiny.en as asrtune resolves it (converted from the package's CTranslate2 folder) keeps the
    checkpoint's alignment heads for hf, and its CTranslate2 copy names the same heads."""
    require_whisper_package(TINY)
    from transformers import GenerationConfig

    from asrtune.alignment.ct2 import check_alignment_heads
    from asrtune.alignment.cross_attention import alignment_heads
    from asrtune.models.registry import ct2_copy_for, resolve_model

    resolved = resolve_model(TINY)
    heads = alignment_heads(GenerationConfig.from_pretrained(resolved.path), 4, 6)
    assert heads == [(1, 0), (2, 0), (2, 5), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4)]
    ct2_dir = ct2_copy_for(resolved)
    assert check_alignment_heads(ct2_dir)
    assert [tuple(h) for h in json.loads((ct2_dir / "config.json").read_text())["alignment_heads"]] == heads
    with pytest.warns(RuntimeWarning, match="alignment_heads"):
        fallback = alignment_heads(GenerationConfig(), 4, 6)
    assert fallback == [(layer, head) for layer in (2, 3) for head in range(6)]
    (tmp_path / "config.json").write_text("{}")
    with pytest.warns(RuntimeWarning, match="alignment_heads"):
        assert not check_alignment_heads(tmp_path)


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "ct2"])
def test_word_times_on_the_longform_file_are_within_150_ms(engine, shared_data):
    require_whisper_package(TINY)
    from benchmarks import bench_word_timing as bench

    result = bench.measure(TINY, engine, bench.references(shared_data), shared_data)
    assert result["missing_utterances"] <= 1 and result["boundaries"] >= 74
    assert result["median_s"] <= 0.15, result


def _noise_clips(folder):
    """10 silent, 10 white-noise and 10 hum clips of 3-8 s."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(30):
        n = int(rng.uniform(3.0, 8.0) * SAMPLE_RATE_HZ)
        t = np.arange(n) / SAMPLE_RATE_HZ
        if i < 10:
            audio = np.zeros(n)
        elif i < 20:
            audio = rng.uniform(0.005, 0.1) * rng.standard_normal(n)
        else:  # mains hum with harmonics, 50 or 60 Hz
            f = 50.0 if i % 2 else 60.0
            audio = rng.uniform(0.02, 0.2) * sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3))
        sf.write(folder / f"clip{i:02d}.wav", audio.astype(np.float32), SAMPLE_RATE_HZ)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "ct2"])
def test_silence_noise_and_hum_give_no_text(engine, tmp_path):
    require_whisper_package(TINY)
    _noise_clips(tmp_path / "in")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "asrtune", "transcribe", str(tmp_path / "in"), "--model", TINY, "--engine", engine,
         "--out", str(out), "--format", "jsonl", "--no-progress"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    assert len(records) == 30
    spoken = [r["file"] for r in records if r["text"].strip()]
    assert len(spoken) <= 1, spoken
