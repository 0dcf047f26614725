"""Shared by the prompt-limit tests (test_decoding_limits.py, test_serve.py): a long prompt built
from real transcripts, its 223-token tail, and one LibriSpeech clip decoded with a swapped prompt."""

from __future__ import annotations

import json

from asrtune.inference.whisper_common import prompt_token_limit, text_token_ids, using_prefix

CLIP = "1089-134686-0000"  # "He hoped there would be stew for dinner, turnips and carrots ..." (10.4 s)
SPECIAL_PROMPT = "<|endoftext|><|startoftranscript|><|notimestamps|>"


def long_prompt(tok, shared_data, words: int = 600) -> str:
    """``words`` words of other LibriSpeech transcripts, each a single token after a space, so the
    prompt's last 223 tokens are whole words and decode back to exactly those tokens."""
    manifest = shared_data / "librispeech-test-clean-40" / "manifest.jsonl"
    texts = [json.loads(line)["text"].lower() for line in manifest.read_text().splitlines()[1:]]
    pool = [w for t in texts for w in t.split() if len(text_token_ids(tok, " " + w)) == 1]
    return " ".join((pool * (words // len(pool) + 1))[:words])


def tail_prompt(tok, prompt: str) -> str:
    """The text of ``prompt``'s last :func:`prompt_token_limit` tokens."""
    return tok.decode(text_token_ids(tok, " " + prompt)[-prompt_token_limit():]).strip()


def clip_audio(shared_data):
    from asrtune.data.audio import load_audio

    return load_audio(next((shared_data / "librispeech-test-clean-40").glob(f"audio/*/{CLIP}.flac")))


def reference_text(shared_data) -> str:
    manifest = shared_data / "librispeech-test-clean-40" / "manifest.jsonl"
    return json.loads(manifest.read_text().splitlines()[0])["text"]


def wer(reference: str, hypothesis: str) -> float:
    from asrtune.evaluation.metrics import corpus_wer

    return corpus_wer([reference], [hypothesis])


def decode_with(rec, prompt: str | None, audio, **attributes):
    """One clip decoded by the shared recogniser with ``prompt`` (and recogniser attributes such as
    ``compression_ratio_threshold``) swapped in for the call."""
    saved = {name: getattr(rec, name) for name in attributes}
    try:
        for name, value in attributes.items():
            setattr(rec, name, value)
        with using_prefix(rec, rec.build_prefix(prompt, None)):
            return rec.decode([audio])[0]
    finally:
        for name, value in saved.items():
            setattr(rec, name, value)
