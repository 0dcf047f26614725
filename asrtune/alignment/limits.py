"""Whisper's training window: at most 30 s of audio and 448 decoder positions per example
(:mod:`asrtune.models.whisper_spec` states both).

A segment's token count is measured with the real Whisper tokenizer (``openai/whisper-tiny.en``,
resolved offline through :func:`asrtune.models.resolve_model`; every English and multilingual
Whisper tokenizer shares the same GPT-2 style byte-pair vocabulary for English text, so the
count holds for any Whisper model). Loading it costs about half a second once the model folder
is resolved, so no estimate is needed. The special tokens every training label carries
(``<|startoftranscript|>``, language, task, ``<|notimestamps|>``, ``<|endoftext|>``) are
reserved from the 448.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from asrtune.models import resolve_model
from asrtune.models.whisper_spec import MAX_TARGET_TOKENS, WINDOW_SECONDS

MAX_SEGMENT_S = WINDOW_SECONDS  # s: a training segment fills at most Whisper's encoder window
SPECIAL_TOKENS = 5  # sot, language, task, notimestamps, eot: the most any training label adds
MAX_TEXT_TOKENS = MAX_TARGET_TOKENS - SPECIAL_TOKENS
TOKENIZER_MODEL = "openai/whisper-tiny.en"

TokenCounter = Callable[[str], int]


@lru_cache(maxsize=4)
def whisper_token_counter(model: str = TOKENIZER_MODEL) -> TokenCounter:
    """A function counting the Whisper text tokens of a string (leading space included, as in labels).

    >>> count = whisper_token_counter()   # doctest: +SKIP
    >>> count("Hello world.")             # doctest: +SKIP
    3
    """
    from transformers import WhisperTokenizerFast  # heavy: transformers

    tokenizer = WhisperTokenizerFast.from_pretrained(resolve_model(model).path)

    def count(text: str) -> int:
        return len(tokenizer(" " + text.strip(), add_special_tokens=False).input_ids)

    return count


def words_token_estimate(text: str) -> int:
    """A tokenizer-free upper bound for tests and dry runs: 3 tokens per word (English averages ~1.3).

    >>> words_token_estimate("two words")
    6
    """
    return 3 * len(text.split())
