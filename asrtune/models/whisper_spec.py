"""Facts about Whisper checkpoints, with their units, stated once.

Every released Whisper model shares its input window and decoder context; only the vocabulary
tells English-only checkpoints (``*.en``) from multilingual ones.

>>> N_FRAMES == int(WINDOW_SECONDS * 100)   # 10 ms hop
True
>>> is_multilingual(ENGLISH_ONLY_VOCAB_SIZE), is_multilingual(51865)
(False, True)
>>> language_code("German"), language_code("de")
('de', 'de')

Timestamp tokens follow ``<|notimestamps|>`` directly, one per 0.02 s from ``<|0.00|>`` to
``<|30.00|>``; where ``<|notimestamps|>`` sits depends on the vocabulary (50362 English-only,
50363 multilingual, 50364 for large-v3 with its extra language token):

>>> [timestamp_token_id(n, 0.0) for n in (50362, 50363, 50364)]
[50363, 50364, 50365]
>>> timestamp_token_id(50363, 1.234), timestamp_token_id(50363, 99.0) - timestamp_token_id(50363, 0.0)
(50426, 1500)
"""

from __future__ import annotations

WINDOW_SECONDS = 30.0  # s of audio the encoder sees at once; longer audio is segmented
N_FRAMES = 3000  # log-mel frames in the 30 s window (10 ms hop)
MAX_TARGET_TOKENS = 448  # decoder positions, prompt included
ENGLISH_ONLY_VOCAB_SIZE = 51864  # tokens of English-only models; multilingual ones have more
TIME_PRECISION_S = 0.02  # s between consecutive timestamp tokens (<|0.00|>, <|0.02|>, ...)
N_TIMESTAMP_TOKENS = int(round(WINDOW_SECONDS / TIME_PRECISION_S)) + 1  # <|0.00|> .. <|30.00|>


def is_multilingual(vocab_size: int) -> bool:
    """True for a multilingual checkpoint (its vocabulary adds language tokens)."""
    return vocab_size > ENGLISH_ONLY_VOCAB_SIZE


def language_code(name: str) -> str:
    """``"German"``/``"german"``/``"de"`` -> ``"de"``: Whisper's language code for a name or code.

    Unknown names come back lower-cased and unchanged, for the caller to reject with context.
    """
    # heavy: transformers
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    key = name.strip().lower()
    return TO_LANGUAGE_CODE.get(key, key)


def timestamp_token_id(notimestamps_id: int, seconds: float) -> int:
    """Id of the timestamp token nearest ``seconds`` (clamped to the 0-30 s window).

    ``notimestamps_id`` is the vocabulary's ``<|notimestamps|>`` id: the timestamp tokens follow
    it, so this one rule is right for English-only, multilingual and v3 vocabularies alike.
    """
    step = int(round(min(max(seconds, 0.0), WINDOW_SECONDS) / TIME_PRECISION_S))
    return notimestamps_id + 1 + step
