"""Error counting against hand-worked examples and against jiwer on random strings."""

import random

import jiwer
import pytest

from asrtune.evaluation.metrics import (
    ErrorCounts,
    align_chars_batch,
    align_words,
    align_words_batch,
    char_error_counts,
    corpus_cer,
    corpus_wer,
    error_counts,
)


def test_hand_worked_substitution_insertion_deletion():
    # ref: the cat sat on the mat ; hyp: the bat sat the mat today
    # the=, cat->bat S, sat=, on D, the=, mat=, today I
    c = error_counts(["the cat sat on the mat"], ["the bat sat the mat today"])
    assert (c.hits, c.substitutions, c.insertions, c.deletions, c.ref_words) == (4, 1, 1, 1, 6)
    assert c.wer == pytest.approx(3 / 6)


def test_corpus_wer_is_pooled_not_mean_of_utterances():
    # utt 1: 1 error / 1 word (WER 1.0); utt 2: 0 errors / 9 words. Pooled = 1/10, mean would be 0.5.
    refs = ["a", "b c d e f g h i j"]
    hyps = ["x", "b c d e f g h i j"]
    assert error_counts(refs, hyps).wer == pytest.approx(0.1)


def test_empty_hypothesis_is_all_deletions():
    c = error_counts(["one two three"], [""])
    assert (c.deletions, c.hits, c.insertions, c.substitutions, c.ref_words) == (3, 0, 0, 0, 3)
    assert c.wer == 1.0


def test_empty_reference_is_all_insertions():
    c = error_counts(["", "a b"], ["hello there", "a b"])
    assert (c.insertions, c.ref_words, c.hits) == (2, 2, 2)
    assert c.wer == 1.0
    assert error_counts([""], [""]).wer == 0.0
    assert error_counts([""], ["x"]).wer == float("inf")  # undefined: no reference words at all


def test_empty_corpus():
    assert error_counts([], []).ref_words == 0


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_counts(["a", "b"], ["a"])


def test_normalised_wer_ignores_case_punctuation_and_number_format():
    refs = ["IT'S FIFTY DOLLARS", "HE COUNSELLED HIM"]
    hyps = ["It is $50.", "He counseled him."]
    assert corpus_wer(refs, hyps) == 0.0
    assert corpus_wer(refs, hyps, normalizer="none") == 1.0  # all 6 words differ orthographically
    assert error_counts(refs, hyps).ref_words == 6


def test_alignment_ops_and_visual():
    a = align_words("a b c", "a c")
    assert a.ops == [("=", "a", "a"), ("D", "b", None), ("=", "c", "c")]
    assert a.ops_string() == "=D="
    ref_line, hyp_line, marks = a.visual()
    assert ref_line == "REF: a b c"
    assert hyp_line == "HYP: a * c"
    assert marks == "       D"


def test_cer_counts_characters_including_spaces():
    c = char_error_counts(["ab c"], ["abc"])
    assert (c.hits, c.deletions, c.ref_words) == (3, 1, 4)
    assert corpus_cer(["hello"], ["hallo"], normalizer="none") == pytest.approx(0.2)


def test_error_counts_add():
    total = ErrorCounts(1, 2, 3, 4, 10) + ErrorCounts(1, 0, 0, 1, 3)
    assert total == ErrorCounts(2, 2, 3, 5, 13)


def _random_sentence(rng: random.Random, vocab: list[str], max_len: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, max_len)))


def test_matches_jiwer_on_random_strings():
    rng = random.Random(1234)
    vocab = ["a", "b", "c", "dd", "eee"]
    refs = [_random_sentence(rng, vocab, 12) for _ in range(300)]
    hyps = [_random_sentence(rng, vocab, 12) for _ in range(300)]
    refs[0], hyps[1] = "a b", ""  # make sure both empty kinds occur among non-empty refs
    for r, h, a in zip(refs, hyps, align_words_batch(refs, hyps)):
        # Every alignment rebuilds both strings exactly, and its counts agree with jiwer's.
        assert " ".join(x for _, x, _ in a.ops if x is not None) == r
        assert " ".join(x for _, _, x in a.ops if x is not None) == h
        out = jiwer.process_words(r, h)
        assert a.counts.errors == out.substitutions + out.deletions + out.insertions
        assert a.counts.ref_words == len(r.split())
    nonempty = [(r, h) for r, h in zip(refs, hyps) if r]
    r_ne, h_ne = [r for r, _ in nonempty], [h for _, h in nonempty]
    assert error_counts(r_ne, h_ne).wer == pytest.approx(jiwer.wer(r_ne, h_ne))
    assert char_error_counts(r_ne, h_ne).wer == pytest.approx(jiwer.cer(r_ne, h_ne))
    for r, h, a in zip(r_ne, h_ne, align_chars_batch(r_ne, h_ne)):
        assert "".join(x for _, x, _ in a.ops if x is not None) == r
