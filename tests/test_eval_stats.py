"""Bootstrap intervals, paired tests, domain terms and failure flags."""

import numpy as np
import pytest

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.evaluation.bootstrap import bootstrap_ci, paired_bootstrap
from asrtune.evaluation.flags import longest_repeat, utterance_flags
from asrtune.evaluation.terms import count_occurrences, load_terms, term_stats
from asrtune.text import get_normalizer


def _corpus(n: int, wer: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    refs = rng.integers(3, 20, size=n)
    errors = rng.binomial(refs, wer)
    return errors, refs


def test_ci_contains_point_estimate_and_narrows_with_more_data():
    small = bootstrap_ci(*_corpus(50, 0.2, 0))
    large = bootstrap_ci(*_corpus(2000, 0.2, 0))
    for ci in (small, large):
        assert ci.low <= ci.estimate <= ci.high
        assert ci.n_resamples >= 1000
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    assert large.low < 0.2 < large.high


def test_ci_is_deterministic_and_pooled():
    errors, refs = np.array([5, 0, 0, 0]), np.array([5, 5, 5, 5])
    a, b = bootstrap_ci(errors, refs), bootstrap_ci(errors, refs)
    assert (a.low, a.high) == (b.low, b.high)  # fixed seed
    assert a.estimate == pytest.approx(0.25)  # sum(errors)/sum(refs)
    assert a.low == 0.0 and a.high > 0.25


def test_ci_of_constant_per_utterance_wer_has_no_width():
    ci = bootstrap_ci(np.full(30, 2), np.full(30, 10))
    assert ci.low == ci.high == pytest.approx(0.2)


def test_paired_test_small_p_for_clearly_better_system():
    errors_old, refs = _corpus(300, 0.30, 1)
    errors_new = np.maximum(0, errors_old - np.random.default_rng(2).integers(0, 3, size=300))
    res = paired_bootstrap(errors_new, refs, errors_old, refs)
    assert res.difference < 0
    assert res.high < 0  # whole interval below zero
    assert res.p_value < 0.01


def test_paired_test_p_is_one_for_identical_systems():
    errors, refs = _corpus(200, 0.25, 3)
    res = paired_bootstrap(errors, refs, errors, refs)
    assert res.difference == 0.0
    assert res.p_value == 1.0


def test_paired_test_large_p_for_noise_only_difference():
    errors, refs = _corpus(400, 0.25, 4)
    rng = np.random.default_rng(5)
    other = errors + rng.integers(-1, 2, size=400)  # symmetric noise, no systematic change
    other = np.clip(other, 0, None)
    res = paired_bootstrap(errors, refs, other, refs)
    assert res.p_value > 0.05
    assert res.low < 0 < res.high


def test_paired_bootstrap_rejects_unequal_lengths():
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(3), np.ones(3), np.ones(2), np.ones(2))


def test_terms_file_parsing(tmp_path):
    f = tmp_path / "terms.txt"
    f.write_text("# product names\nKubernetes\n\nnew york  # city\nAPI\n")
    assert load_terms(f) == ["Kubernetes", "new york", "API"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(AsrtuneError, match="no terms"):
        load_terms(empty)
    with pytest.raises(AsrtuneError, match="not found"):
        load_terms(tmp_path / "missing.txt")


def test_multi_word_terms_count_based_recall_and_precision():
    norm = get_normalizer("whisper-en")
    refs = ["we flew to New York on Monday", "New York, New York!", "the API is rapid"]
    hyps = ["we flew to new york on monday", "new york new work", "the a p i is rapid api"]
    stats = term_stats(["New York", "API"], [norm(r) for r in refs], [norm(h) for h in hyps], norm)
    by_term = {t["normalized"]: t for t in stats["per_term"]}
    # new york: ref 1 + 2 = 3, hyp 1 + 1 = 2, found 1 + 1 = 2
    assert (by_term["new york"]["ref"], by_term["new york"]["hyp"], by_term["new york"]["found"]) == (3, 2, 2)
    assert by_term["new york"]["recall"] == pytest.approx(2 / 3)
    assert by_term["new york"]["precision"] == 1.0
    # api: ref 1, hyp 1 ("rapid" is not a match: whole words only), found 1
    assert (by_term["api"]["ref"], by_term["api"]["hyp"], by_term["api"]["found"]) == (1, 1, 1)
    assert stats["overall"]["recall"] == pytest.approx(3 / 4)
    assert stats["overall"]["precision"] == pytest.approx(3 / 3)
    assert stats["per_utterance"][1]["missed"] == ["new york"]


def test_terms_are_normalised_like_the_text():
    norm = get_normalizer("whisper-en")
    stats = term_stats(["twenty five dollars"], [norm("it costs twenty five dollars")], [norm("it costs $25")], norm)
    assert stats["overall"]["recall"] == 1.0
    with pytest.raises(ConfigError, match="empty after"):
        term_stats(["uh"], ["a"], ["a"], norm)


def test_count_occurrences_is_non_overlapping():
    assert count_occurrences("a a a".split(), ["a", "a"]) == 1
    assert count_occurrences([], ["a"]) == 0


def test_flags_empty_long_and_repetition():
    assert utterance_flags("hello there", "") == {"empty": {"ref_words": 2}}
    assert utterance_flags("", "") == {}
    long = utterance_flags("one two", "one two three four five six seven")
    assert "long" in long and "repetition" not in long
    # 2x but only +3 words: short references are spared
    assert "long" not in utterance_flags("a b c", "a b c d e f")
    loop = utterance_flags("thank you for coming", "thank you thank you thank you thank you for coming")
    assert loop["repetition"] == {"ngram": "thank you", "repeats": 4}
    # a repetition that is in the reference is not a decoder loop
    assert utterance_flags("no no no no no", "no no no no no") == {}
    assert longest_repeat("a b c".split()) == ((), 1)
