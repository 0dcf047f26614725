"""Term-biasing logits processor: exact bonuses on hand-made token ids, then a real Whisper tokenizer/model."""

from __future__ import annotations

import pytest
import torch

from asrtune.errors import ConfigError
from asrtune.inference.biasing import TermBiasLogitsProcessor, TermTrie, load_terms

VOCAB = 30
SOT, NOTS, EOT = 25, 26, 27  # stand-ins for <|startoftranscript|>, <|notimestamps|>, <|endoftext|>
SPECIAL = (SOT, NOTS, EOT)


def _bonus(proc, rows: list[list[int]]) -> torch.Tensor:
    """Added logits per row; rows are left-padded with SOT to one length, as in a decoding batch."""
    width = max(map(len, rows))
    ids = torch.tensor([[SOT] * (width - len(r)) + r for r in rows])
    scores = torch.randn(len(rows), VOCAB)
    return proc(ids, scores.clone()) - scores


def _expected(*rows: dict[int, float]) -> torch.Tensor:
    out = torch.zeros(len(rows), VOCAB)
    for i, row in enumerate(rows):
        for token, value in row.items():
            out[i, token] = value
    return out


def test_exactly_the_right_logits_are_boosted():
    # Terms: 10 11 12, 10 13, and the one-token term 20.
    proc = TermBiasLogitsProcessor.from_token_ids([[10, 11, 12], [10, 13], [20]], boost=3.0, first_token_boost=1.0, special_ids=SPECIAL)
    rows = [
        [SOT, NOTS],  # nothing generated: only first tokens
        [SOT, NOTS, 5, 10],  # inside a term: both continuations of "10"
        [SOT, NOTS, 10, 11],  # deeper: only 12 continues "10 11"
        [SOT, NOTS, 10, 11, 12],  # term complete: back to first tokens only
        [SOT, NOTS, 7, 11],  # 11 alone is no term prefix
    ]
    first, not_again = {10: 1.0, 20: 1.0}, {20: 1.0}  # a term's first token is not boosted again right after it
    expected = _expected(first, not_again | {11: 3.0, 13: 3.0}, not_again | {12: 3.0}, not_again, first)
    assert torch.allclose(_bonus(proc, rows), expected)


def test_longest_matching_suffix_wins_and_bonuses_do_not_add_up():
    # "1 2 3" and "2 4": after "... 1 2" only 3 continues the longer match; after "... 5 2", 4 does.
    # Token 2 is both a first token and a continuation of 1: it gets the larger bonus, not the sum.
    proc = TermBiasLogitsProcessor.from_token_ids([[1, 2, 3], [2, 4]], boost=2.0, first_token_boost=0.5, special_ids=SPECIAL)
    bonus = _bonus(proc, [[SOT, 1, 2], [SOT, 5, 2], [SOT, 9, 1]])
    assert torch.allclose(bonus, _expected({3: 2.0}, {1: 0.5, 4: 2.0}, {2: 2.0}))


def test_no_head_start_for_a_term_just_said():
    """Re-boosting a term's first token right after it feeds repetition loops; later it is boosted again."""
    from asrtune.inference.biasing import REPEAT_WINDOW_TOKENS

    proc = TermBiasLogitsProcessor.from_token_ids([[20]], boost=3.0, first_token_boost=3.0, special_ids=SPECIAL)
    recent = [SOT, NOTS, 20, *[5] * (REPEAT_WINDOW_TOKENS - 1)]
    later = [SOT, NOTS, 20, *[5] * REPEAT_WINDOW_TOKENS]
    assert torch.allclose(_bonus(proc, [recent, later]), _expected({}, {20: 3.0}))


def test_start_only_spellings_apply_at_the_start_of_the_text():
    # 40 41 is the term spelled without a leading space: only valid as the very first text tokens.
    proc = TermBiasLogitsProcessor.from_token_ids(
        [[12]], boost=2.0, first_token_boost=1.0, special_ids=SPECIAL, start_sequences=[[40, 41]]
    )
    scores = torch.zeros(4, 50)
    rows = torch.tensor([[SOT, NOTS, NOTS], [SOT, NOTS, 40], [SOT, 7, 40], [SOT, NOTS, 41]])
    bonus = proc(rows, scores)
    assert bonus[0].nonzero().flatten().tolist() == [12, 40] and bonus[0, 40] == 1.0
    assert bonus[1, 41] == 2.0  # "40" began the text: continue with 41
    assert bonus[2, 41] == 0.0  # "40" mid-text is not this term
    assert bonus[3].nonzero().flatten().tolist() == [12]


def test_special_tokens_are_never_boosted_and_beams_are_independent():
    proc = TermBiasLogitsProcessor.from_token_ids([[EOT, 3, 4], [SOT]], boost=2.0, special_ids=SPECIAL)
    assert proc.trie.first_tokens == {3}  # special ids were dropped from the terms
    rows = [[SOT, NOTS, 3], [SOT, NOTS, 8]]  # two beams of one utterance at different points
    bonus = _bonus(proc, rows)
    assert torch.allclose(bonus, _expected({4: 2.0}, {3: 1.0}))  # row 0 said 3 just now: no head start again
    assert bonus[:, list(SPECIAL)].abs().sum() == 0


def test_zero_boost_is_the_identity_and_negative_is_refused():
    proc = TermBiasLogitsProcessor.from_token_ids([[1, 2]], boost=0.0)
    scores = torch.randn(2, VOCAB)
    assert torch.equal(proc(torch.tensor([[0, 1], [0, 0]]), scores), scores)
    with pytest.raises(ConfigError):
        TermBiasLogitsProcessor.from_token_ids([[1]], boost=-1.0)


def test_trie_prefixes():
    trie = TermTrie([[5, 6, 7], [5, 9], []])
    assert trie.first_tokens == {5}
    assert trie.continuations[(5, 6)] == {7}
    assert trie.longest_prefix_suffix([1, 5, 6, 7]) == ()  # a complete term is not a proper prefix
    assert trie.max_len == 3


def test_load_terms(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text("# cloud words\nKubernetes\n\nAzure Blob Storage  # a phrase\nKubernetes\n")
    assert load_terms(path) == ["Kubernetes", "Azure Blob Storage"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no terms"):
        load_terms(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="not found"):
        load_terms(tmp_path / "missing.txt")


@pytest.fixture(scope="module")
def tiny_en():
    from conftest import require_whisper_package

    require_whisper_package("openai/whisper-tiny.en")
    from asrtune.models import load_whisper

    return load_whisper("openai/whisper-tiny.en")


def test_real_whisper_tokenizer_spellings(tiny_en):
    _, processor = tiny_en
    tok = processor.tokenizer
    proc = TermBiasLogitsProcessor(tok, ["Kubernetes", "flour"], boost=2.0)
    sot, nots = tok.convert_tokens_to_ids("<|startoftranscript|>"), tok.convert_tokens_to_ids("<|notimestamps|>")
    space_ids = tok.encode(" Kubernetes", add_special_tokens=False)
    assert tok.decode(space_ids) == " Kubernetes" and len(space_ids) > 1
    # Mid-text, after " Kub..." started, the next piece of " Kubernetes" gets the full boost.
    bonus = proc.bonus([sot, nots, *tok.encode(" the", add_special_tokens=False), space_ids[0]], len(tok))
    assert bonus[space_ids[1]] == 2.0
    assert bonus[tok.encode(" flour", add_special_tokens=False)[0]] == 1.0
    start_ids = tok.encode("flour", add_special_tokens=False)  # "fl" "our": only at the text start
    assert proc.bonus([sot, nots], len(tok)).get(start_ids[0]) == 1.0
    assert start_ids[0] not in proc.bonus([sot, nots, *tok.encode(" the", add_special_tokens=False)], len(tok))
    assert not set(proc.bonus([sot, nots], len(tok))) & set(tok.all_special_ids)
    # a term can start a sentence: its capitalised spelling is boosted too
    capital_ids = tok.encode(" Flour", add_special_tokens=False)
    assert proc.bonus([sot, nots, *tok.encode(" the", add_special_tokens=False)], len(tok))[capital_ids[0]] == 1.0


@pytest.mark.slow
def test_biasing_changes_whisper_output_towards_the_term(tiny_en, shared_data):
    """tiny.en hears LibriSpeech's "peppered flour fattened sauce" as "flower"; the term list fixes it."""
    from asrtune.data.audio import load_audio
    from asrtune.inference import load_recognizer

    audio = load_audio(shared_data / "librispeech-test-clean-40/audio/1089/1089-134686-0000.flac")
    plain = load_recognizer("openai/whisper-tiny.en").transcribe([audio])[0].lower()
    biased = load_recognizer("openai/whisper-tiny.en", bias_terms=["flour"], term_boost=4.0).transcribe([audio])[0].lower()
    assert "flower" in plain and "flour" not in plain
    assert "flour" in biased and "flower" not in biased
    # Everything else stays: the two transcripts differ in that one word only.
    assert plain.replace("flower", "flour").split()[:20] == biased.split()[:20]
