"""Text-to-audio alignment core: reference words timed from hypothesis words, then cut into segments.

Pure functions: the hypothesis words are built by hand on a known timeline (no model needed).
"""

from __future__ import annotations

import pytest

from asrtune.alignment.words import Word
from asrtune.alignment.limits import words_token_estimate
from asrtune.alignment.segmenter import (
    AUDIO_NOT_IN_TEXT,
    MISMATCH,
    TEXT_NOT_IN_AUDIO,
    SegmentRules,
    segment_alignment,
)
from asrtune.alignment.text_align import MATCH, MISSING, SUBSTITUTED, UNSCORED, align_text
from asrtune.errors import ConfigError

WORD_S = 0.3  # s: every test word lasts this long
WORD_GAP_S = 0.05  # s: between words of a sentence
SENTENCE_PAUSE_S = 1.0  # s: between sentences: where segments should be cut

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A stitch in time saves nine, they always said.",
    "Every cloud has a silver lining somewhere up there.",
    "Fortune favours the bold and the brave at heart.",
    "Actions speak louder than words in most cases.",
    "Knowledge is power when it is used with care.",
    "The early bird catches the worm before breakfast.",
    "Practice makes perfect if you practise every day.",
    "Better late than never is what my teacher says.",
    "All that glitters is not gold, nor is it silver.",
    "When in Rome do as the Romans would have done.",
    "Honesty is the best policy for every single person.",
]


def timeline(sentences: list[str], start: float = 0.0) -> tuple[list[Word], list[tuple[float, float]]]:
    """Hypothesis words for ``sentences`` spoken in order, and each sentence's (start, end)."""
    words, spans, t = [], [], start
    for sentence in sentences:
        first = t
        for w in sentence.split():
            words.append(Word(" " + w.lower().strip(".,!?"), round(t, 3), round(t + WORD_S, 3), 0.9))
            t += WORD_S + WORD_GAP_S
        spans.append((first, t - WORD_GAP_S))
        t += SENTENCE_PAUSE_S - WORD_GAP_S
    return words, spans


def assert_partition(segments, rejected, n_tokens: int) -> None:
    """Every reference token in exactly one accepted segment or rejected stretch."""
    owner = [0] * n_tokens
    for item in [*segments, *rejected]:
        for i in range(item.first_word, item.last_word):
            owner[i] += 1
    assert owner == [1] * n_tokens


def test_exact_transcript_matches_every_word_and_keeps_its_spelling():
    hyp, _ = timeline(SENTENCES[:2])
    reference = " ".join(SENTENCES[:2])
    result = align_text(reference, hyp)
    assert [w.text for w in result.words] == reference.split()
    assert all(w.status == MATCH for w in result.words)
    assert [(w.start, w.end) for w in result.words] == [(h.start, h.end) for h in hyp]
    assert result.extra == [] and result.match_share == 1.0


def test_recogniser_errors_are_substituted_missing_or_extra():
    hyp = [Word(" um", 0.0, 0.2, 1), Word(" hello", 0.3, 0.4, 1), Word(" word", 0.5, 0.9, 1), Word(" there", 2.0, 2.4, 1)]
    result = align_text("Hello world out there", hyp)
    assert [w.status for w in result.words] == [MATCH, SUBSTITUTED, MISSING, MATCH]
    assert (result.words[1].start, result.words[1].end) == (0.5, 0.9)  # "world" timed from "word"
    # "out" was not recognised: it sits between its neighbours' times
    assert 0.9 <= result.words[2].start <= result.words[2].end <= 2.0
    assert [(e.text, e.before, e.start, e.end) for e in result.extra] == [("um", 0, 0.0, 0.2)]


def test_unscored_tokens_ride_along_with_zero_length():
    hyp = [Word(" yes", 0.0, 0.3, 1), Word(" no", 1.0, 1.3, 1)]
    result = align_text("— Yes [laughs] no", hyp)
    assert [w.status for w in result.words] == [UNSCORED, MATCH, UNSCORED, MATCH]
    assert result.words[0].duration == 0 and result.words[2].start == result.words[2].end == 0.3


def test_long_file_is_cut_at_sentence_pauses_within_30_s():
    hyp, spans = timeline(SENTENCES)
    reference = " ".join(SENTENCES)
    segments, rejected = segment_alignment(align_text(reference, hyp), "a.flac", count_tokens=words_token_estimate)
    assert rejected == [] and len(segments) >= 2
    assert " ".join(s.text for s in segments) == reference
    assert all(s.end - s.start <= 30.0 and s.score == 1.0 and s.source == "a.flac" for s in segments)
    for before, after in zip(segments, segments[1:]):
        assert before.end <= after.start
        # each cut lies inside a sentence pause
        assert any(end <= before.end and after.start <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:]))
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(spans[-1][1] + SegmentRules().pad_s)


def test_token_limit_forces_more_cuts():
    hyp, _ = timeline(SENTENCES[:4])
    reference = " ".join(SENTENCES[:4])
    rules = SegmentRules(max_tokens=30)  # 3 estimated tokens per word: at most 10 words a segment
    segments, rejected = segment_alignment(align_text(reference, hyp), rules=rules, count_tokens=words_token_estimate)
    assert rejected == [] and len(segments) >= 4
    assert all(words_token_estimate(s.text) <= 30 for s in segments)
    assert " ".join(s.text for s in segments) == reference


def test_paragraph_not_in_audio_is_rejected_and_the_rest_kept():
    hyp, _ = timeline(SENTENCES[:6])
    inserted = "This whole paragraph was never read aloud by anybody at all."
    parts = [*SENTENCES[:3], inserted, *SENTENCES[3:6]]
    reference = " ".join(parts)
    alignment = align_text(reference, hyp)
    segments, rejected = segment_alignment(alignment, count_tokens=words_token_estimate)
    assert [(r.reason, r.text, r.hypothesis) for r in rejected] == [(TEXT_NOT_IN_AUDIO, inserted, "")]
    assert " ".join(s.text for s in segments) == " ".join(SENTENCES[:6])
    assert_partition(segments, rejected, len(reference.split()))


def test_wrong_paragraph_is_rejected_despite_chance_matches():
    heard = "we walked to the shop and bought the bread for the week and the milk too"
    written = "the cat and the dog sat in the sun all day long while the birds sang"  # shares "the", "and"
    hyp, _ = timeline([*SENTENCES[:3], heard, *SENTENCES[3:6]])
    reference = " ".join([*SENTENCES[:3], written, *SENTENCES[3:6]])
    alignment = align_text(reference, hyp)
    assert sum(w.status == MATCH for w in alignment.words[27:43]) >= 3  # the chance matches exist
    segments, rejected = segment_alignment(alignment, count_tokens=words_token_estimate)
    assert [(r.reason, r.text, r.hypothesis) for r in rejected] == [(MISMATCH, written, heard)]
    assert " ".join(s.text for s in segments) == " ".join(SENTENCES[:6]) and all(s.score == 1.0 for s in segments)


def test_scattered_recogniser_errors_are_not_a_rejected_run():
    hyp, _ = timeline(SENTENCES[:2])
    for k in (1, 2, 5, 6, 9, 10):  # six errors in pairs, two heard words between: ordinary recogniser errors
        hyp[k] = Word(" zzz", hyp[k].start, hyp[k].end, 0.3)
    segments, rejected = segment_alignment(align_text(" ".join(SENTENCES[:2]), hyp), count_tokens=words_token_estimate)
    assert rejected == [] and segments[0].score == pytest.approx(12 / 18, abs=1e-4)


def test_speech_not_in_transcript_is_cut_out_with_its_times():
    hyp, spans = timeline([*SENTENCES[:3], "and now a word from our sponsors buy more soap today", *SENTENCES[3:6]])
    reference = " ".join(SENTENCES[:6])
    segments, rejected = segment_alignment(align_text(reference, hyp), count_tokens=words_token_estimate)
    ad_start, ad_end = spans[3]
    assert [(r.reason, r.start, r.end) for r in rejected] == [(AUDIO_NOT_IN_TEXT, pytest.approx(ad_start), pytest.approx(ad_end))]
    assert rejected[0].hypothesis.startswith("and now a word")
    assert all(s.end <= ad_start or s.start >= ad_end for s in segments)
    assert " ".join(s.text for s in segments) == reference
    assert_partition(segments, rejected, len(reference.split()))


def test_a_few_recogniser_errors_stay_in_with_a_lower_score():
    hyp, _ = timeline(SENTENCES[:2])
    hyp[2] = Word(" crown", hyp[2].start, hyp[2].end, 0.5)  # "brown" misheard
    segments, rejected = segment_alignment(align_text(" ".join(SENTENCES[:2]), hyp), count_tokens=words_token_estimate)
    assert rejected == [] and len(segments) == 1
    assert segments[0].score == pytest.approx(1 - 1 / 18, abs=1e-4)


def test_wrong_transcript_is_rejected_entirely():
    hyp, _ = timeline(SENTENCES[:2])
    reference = " ".join(SENTENCES[6:8])
    segments, rejected = segment_alignment(align_text(reference, hyp), count_tokens=words_token_estimate)
    assert segments == []
    assert_partition(segments, rejected, len(reference.split()))


def test_low_scoring_segment_is_rejected():
    hyp, _ = timeline(["one two three four five six"])
    result = align_text("one too three for five sicks", hyp)  # every other word wrong: no long run
    segments, rejected = segment_alignment(result, count_tokens=words_token_estimate)
    assert segments == [] and rejected[0].reason.startswith("too few words match")


def test_bad_rules_are_config_errors():
    with pytest.raises(ConfigError, match="min_score"):
        SegmentRules(min_score=1.5).check()
