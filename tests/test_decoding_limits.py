"""Whisper's limits on every path that decodes: the prompt rule (its last 223 tokens, as plain
text), beam and boost bounds, term lists, thresholds, languages, and the token budget.

Fast tests use the real tiny.en tokenizer only; the ``slow`` ones decode LibriSpeech test-clean
clip 1089-134686-0000 with real tiny.en on both engines (loaded once per session, the prompt
swapped with ``using_prefix``). The server and CLI sides are in test_serve.py and
test_bad_input.py.
"""

from __future__ import annotations

import json

import pytest

from asrtune.errors import ConfigError
from asrtune.inference.options import RecognizerOptions
from asrtune.inference.whisper_common import (
    build_prompt, clip_prompt_tokens, compression_ratio, decode_with_fallback, fallback_schedule, prompt_token_limit,
)
from conftest import require_whisper_package
from prompt_helpers import SPECIAL_PROMPT, clip_audio, decode_with, long_prompt, reference_text, tail_prompt, wer

TINY = "openai/whisper-tiny.en"
ENGLISH_ONLY_VOCAB = 51864


@pytest.fixture(scope="module")
def tok():
    require_whisper_package(TINY)
    from transformers import WhisperTokenizerFast

    from asrtune.models import resolve_model

    return WhisperTokenizerFast.from_pretrained(resolve_model(TINY).path)


# --- the prompt rule (tokenizer only) ------------------------------------------------------------


def test_a_long_prompt_keeps_its_last_223_tokens_in_decoding_and_training(tok, shared_data):
    from asrtune.training.targets import WhisperTargets

    prompt = long_prompt(tok, shared_data)
    assert len(prompt.split()) == 600
    full = build_prompt(tok, ENGLISH_ONLY_VOCAB, None, prompt)
    tail = build_prompt(tok, ENGLISH_ONLY_VOCAB, None, tail_prompt(tok, prompt))
    assert len(full.prev) == 1 + 223 == 1 + 448 // 2 - 1
    assert full.prev == tail.prev and full.tokens() == tail.tokens()
    assert tok.decode(full.prev[1:]).split() == prompt.split()[-223:]
    # training targets clip a prompt by the same rule (and further when the target leaves less room)
    targets = WhisperTargets(tok, full.sot)
    target = targets.plain("he hoped there would be stew", prompt=prompt)
    assert target.ids[: len(full.prev)] == full.prev
    assert len(targets.plain("word " * 300, prompt=prompt).ids) <= 448 + 1  # the decoder reads len - 1


def test_clip_prompt_tokens_follows_the_context_size():
    assert prompt_token_limit(448) == 223 and prompt_token_limit(1024) == 511
    assert clip_prompt_tokens(range(300), 448) == list(range(77, 300))
    assert clip_prompt_tokens(range(10), 448) == list(range(10))
    assert clip_prompt_tokens(range(10), 3) == []  # no room: no prompt at all, not the whole of it


def test_special_token_text_is_plain_text_everywhere(tok):
    from asrtune.inference.biasing import TermBiasLogitsProcessor
    from asrtune.training.targets import WhisperTargets

    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    prefix = build_prompt(tok, ENGLISH_ONLY_VOCAB, None, SPECIAL_PROMPT)
    assert all(t < eot for t in prefix.prev[1:]), "a control token was injected into the prompt"
    assert tok.decode(prefix.prev[1:]) == " " + SPECIAL_PROMPT
    target = WhisperTargets(tok, prefix.sot).plain("<|endoftext|> hello", prompt=SPECIAL_PROMPT)
    assert [t for t in target.ids if t >= eot] == [prefix.prev[0], *prefix.sot, eot]  # only the real specials
    bias = TermBiasLogitsProcessor(tok, ["<|endoftext|>"])
    assert bias.trie.first_tokens and all(t < eot for c in bias.trie.continuations.values() for t in c)
    assert build_prompt(tok, ENGLISH_ONLY_VOCAB, None, "   ").prev == []


def test_english_only_model_takes_english_by_any_spelling(tok):
    for language in (None, "en", "EN", "English", "english"):
        assert build_prompt(tok, ENGLISH_ONLY_VOCAB, language, None).tokens() == [50257, 50362]
    with pytest.raises(ConfigError, match="--language de: this is an English-only Whisper model"):
        build_prompt(tok, ENGLISH_ONLY_VOCAB, "de", None)


# --- options: one clear error for each impossible value -------------------------------------------


@pytest.mark.parametrize("values, message", [
    (dict(beam_size=0), "--beam-size must be between 1 and 500, got 0"),
    (dict(beam_size=10_000), "--beam-size must be between 1 and 500, got 10000"),
    (dict(term_boost=float("inf")), "--term-boost must be between 0 and 10 nats, got inf"),
    (dict(term_boost=float("nan")), "--term-boost must be between 0 and 10 nats, got nan"),
    (dict(term_boost=-1.0), "--term-boost must be between 0 and 10 nats"),
    (dict(language="xx"), "--language xx: not a Whisper language"),
    (dict(language="klingon"), "--language klingon: not a Whisper language"),
    (dict(no_speech_threshold=2.0), "--no-speech-threshold must be a probability between 0 and 1"),
    (dict(no_speech_threshold=float("nan")), "--no-speech-threshold"),
    (dict(log_prob_threshold=1.0), "--log-prob-threshold must be <= 0"),
    (dict(compression_ratio_threshold=0.5), "--compression-ratio-threshold must be 0 \\(off\\) or >= 1"),
    (dict(compression_ratio_threshold=float("nan")), "--compression-ratio-threshold"),
])
def test_impossible_decoding_options_are_one_config_error(values, message):
    with pytest.raises(ConfigError, match=message):
        RecognizerOptions(**values).validate()


def test_family_checks_bound_whisper_beams_and_refuse_whisper_options_for_ctc():
    RecognizerOptions(beam_size=32, language="German").validate().check_family("whisper")
    RecognizerOptions(beam_size=200).validate().check_family("ctc")  # CTC + LM beams are wide
    with pytest.raises(ConfigError, match="--beam-size 33: Whisper decodes with at most 32 beams"):
        RecognizerOptions(beam_size=33).check_family("whisper")
    with pytest.raises(ConfigError, match="--prompt is a Whisper option"):
        RecognizerOptions(prompt="Dedalus").check_family("ctc")
    with pytest.raises(ConfigError, match="--language is a Whisper option"):
        RecognizerOptions(language="en").check_family("ctc")
    with pytest.raises(ConfigError, match="--lm is for CTC models"):
        RecognizerOptions(lm="lm/").check_family("whisper")
    RecognizerOptions(language="German").check_family("whisper", vocab_size=51865)  # multilingual
    RecognizerOptions(language="English").check_family("whisper", vocab_size=51864)
    with pytest.raises(ConfigError, match="--language German: this is an English-only Whisper model"):
        RecognizerOptions(language="German").check_family("whisper", vocab_size=51864)


def test_thousands_of_terms_load_and_a_paragraph_is_refused(tmp_path):
    from asrtune.data.terms import MAX_TERM_CHARS, load_terms
    from asrtune.inference.whisper_common import load_terms_arg

    many = tmp_path / "many.txt"
    many.write_text("".join(f"term{i}\n" for i in range(20_000)) + "term7\n")
    terms = load_terms(many, "--bias-terms")  # the duplicate is dropped in one pass, not by a search per term
    assert len(terms) == 20_000 and terms[:2] == ["term0", "term1"]
    long = tmp_path / "long.txt"
    long.write_text("metoprolol\n" + "x" * 500 + "\n")
    with pytest.raises(ConfigError, match=f"--bias-terms {long}:2: a term of 500 characters; .* at most {MAX_TERM_CHARS}"):
        load_terms(long, "--bias-terms")
    with pytest.raises(ConfigError, match="bias_terms\\[1\\]: a term of 500 characters"):
        load_terms_arg(["metoprolol", "y" * 500])


def test_a_prompted_loop_first_retries_greedy_without_the_prompt():
    from asrtune.inference.base import Hypothesis

    loop = "word word word right word " * 20
    calls = []

    def decode_again(indices, temperature):  # what the engines do: no prompt from here on
        calls.append(temperature)
        return [Hypothesis("He hoped there would be stew for dinner.", temperature=temperature) for _ in indices]

    out = decode_with_fallback([Hypothesis(loop)], decode_again, 2.4, fallback_schedule(prompted=True))
    assert calls == [0.0] and out[0].text.startswith("He hoped") and out[0].temperature == 0.0
    calls.clear()
    decode_with_fallback([Hypothesis(loop)], decode_again, 2.4, fallback_schedule(prompted=False))
    assert calls == [0.2]  # without a prompt, sampling starts at once, as before


# --- real decoding, both engines (slow) -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "ct2"])
def test_a_600_word_prompt_gives_the_transcript_of_its_last_223_tokens(engine, tiny_recognizer, tok, shared_data):
    rec, audio = tiny_recognizer(engine), clip_audio(shared_data)
    prompt = long_prompt(tok, shared_data)
    full = decode_with(rec, prompt, audio)
    assert full.text == decode_with(rec, tail_prompt(tok, prompt), audio).text
    assert wer(reference_text(shared_data), full.text) < 0.15


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "ct2"])
def test_a_prompt_the_decoder_copies_stays_inside_the_context_and_falls_back_to_no_prompt(engine, tiny_recognizer, shared_data):
    """600 x "word": with the loop check off, the decoder copies it until the context is full;
    with it on (the default) the looping transcript is decoded again greedily without the prompt,
    which costs one more greedy pass, not best-of-5 sampling at five temperatures."""
    rec, audio = tiny_recognizer(engine), clip_audio(shared_data)
    prompt = " ".join(["word"] * 600)
    prefix = rec.build_prefix(prompt, None)
    looped = decode_with(rec, prompt, audio, compression_ratio_threshold=0.0)
    assert compression_ratio(looped.text) > 2.4  # garbage, as a plain decoder gives it
    # it ran to the end of the context and not past it: the decoder reads the prefix and every
    # generated token but the last (hf stops at 448 tokens in all, CTranslate2 one token later)
    assert 448 - len(prefix.tokens()) <= len(looped.tokens) <= 448 - len(prefix.tokens()) + 1
    fixed = decode_with(rec, prompt, audio)
    # temperature 0: the greedy retry without the prompt was enough, no sampling pass ran
    assert fixed.text == decode_with(rec, None, audio).text and fixed.temperature == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "ct2"])
def test_special_token_and_non_english_prompts_on_an_english_only_model(engine, tiny_recognizer, shared_data):
    rec, audio = tiny_recognizer(engine), clip_audio(shared_data)
    reference = reference_text(shared_data)
    for prompt in (SPECIAL_PROMPT, "Er hoffte auf Eintopf zum Abendessen. 他希望晚餐有炖菜。Рагу на ужин."):
        hyp = decode_with(rec, prompt, audio)
        assert wer(reference, hyp.text) < 0.2, (prompt, hyp.text)
        assert "<|" not in hyp.text


@pytest.mark.slow
def test_thousands_of_bias_terms_decode_a_clip_normally(tmp_path, shared_data):
    import random
    import string

    from asrtune.inference import load_recognizer

    require_whisper_package(TINY)
    rng = random.Random(0)
    terms = tmp_path / "terms.txt"
    words = {"".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 12))) for _ in range(5000)}
    terms.write_text("\n".join(sorted(words) + ["mutton"]) + "\n")
    rec = load_recognizer(TINY, engine="hf", bias_terms=str(terms))
    hyp = rec.decode([clip_audio(shared_data)])[0]
    assert wer(reference_text(shared_data), hyp.text) < 0.15


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "ct2"])
def test_transcribe_cli_with_a_600_word_prompt_equals_its_tail(engine, tok, shared_data, tmp_path, capfd):
    from asrtune.cli import main

    clip = next((shared_data / "librispeech-test-clean-40").glob("audio/*/1089-134686-0000.flac"))
    prompt = long_prompt(tok, shared_data)
    texts = []
    for name, text in (("full", prompt), ("tail", tail_prompt(tok, prompt))):
        out = tmp_path / name
        argv = ["transcribe", str(clip), "--model", TINY, "--engine", engine, "--prompt", text, "--out", str(out),
                "--format", "json", "--no-progress"]
        assert main(argv) == 0
        texts.append(json.loads((out / "transcripts.jsonl").read_text())["text"])
    assert texts[0] == texts[1] and wer(reference_text(shared_data), texts[0]) < 0.15
    assert "sequence length is longer" not in capfd.readouterr().err  # the prompt is clipped, not overrun
