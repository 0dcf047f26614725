"""Facts about Whisper checkpoints, with their units, stated once.

Every released Whisper model shares its input window and decoder context; only the vocabulary
tells English-only checkpoints (``*.en``) from multilingual ones.

>>> N_FRAMES == int(WINDOW_SECONDS * 100)   # 10 ms hop
True
>>> is_multilingual(ENGLISH_ONLY_VOCAB_SIZE), is_multilingual(51865)
(False, True)
>>> language_code("German"), language_code("de")
('de', 'de')
"""

from __future__ import annotations

WINDOW_SECONDS = 30.0  # s of audio the encoder sees at once; longer audio is segmented
N_FRAMES = 3000  # log-mel frames in the 30 s window (10 ms hop)
MAX_TARGET_TOKENS = 448  # decoder positions, prompt included
ENGLISH_ONLY_VOCAB_SIZE = 51864  # tokens of English-only models; multilingual ones have more


def is_multilingual(vocab_size: int) -> bool:
    """True for a multilingual checkpoint (its vocabulary adds language tokens)."""
    return vocab_size > ENGLISH_ONLY_VOCAB_SIZE


def language_code(name: str) -> str:
    """``"German"``/``"german"``/``"de"`` -> ``"de"``: Whisper's language code for a name or code.

    Unknown names come back lower-cased and unchanged, for the caller to reject with context.
    """
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    key = name.strip().lower()
    return TO_LANGUAGE_CODE.get(key, key)
