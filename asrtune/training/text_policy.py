"""What the model is taught to write: the target-text policy (``--text-policy``).

Reference transcripts come in many styles. speechocean762's are the UPPER-CASE prompts the
speakers read; Whisper writes sentence case with punctuation. Teaching Whisper upper case would
wreck its orthographic output and waste capacity on casing; normalising targets fully
(lower case, no punctuation) helps normalised WER a little but teaches the model to drop
punctuation everywhere. Policies:

* ``sentence`` (default) - an ALL-CAPS transcript is lower-cased, then its first letter and the
  pronoun "I" (I, I'm, I'll, I've, I'd) are capitalised, and it ends with a full stop unless it
  already ends with a mark; any transcript that already has lower-case letters is kept as written.
  Whisper's own style, so normalised WER improves without teaching odd casing. The full stop
  matters more than it looks: a model tuned on unpunctuated targets stops writing sentence ends,
  and without them its word times give the pause between sentences to the next word (tiny.en's
  median word-boundary error on the long-form file: 0.096 s with its own punctuation, 0.289 s
  with the same words unpunctuated) and its timestamped decoding runs sentences together into
  windows-long segments. A question gets a full stop too: the mark is there for the boundary,
  and normalised WER ignores which mark it is.
* ``keep`` - train on the text exactly as written (whitespace collapsed).
* ``lower`` - lower-case everything, keep punctuation.
* ``normalize`` - the ``whisper-en`` normaliser (lower case, no punctuation, spelled-out
  standardisation): best when only normalised WER matters.

>>> apply_text_policy("I THINK IT'S GOOD", "sentence")
"I think it's good."
>>> apply_text_policy("WHERE AM I?", "sentence")
'Where am I?'
>>> apply_text_policy("Hello, World.", "sentence")
'Hello, World.'
>>> apply_text_policy("WE CALL IT BEAR", "lower")
'we call it bear'
"""

from __future__ import annotations

import re

from asrtune.errors import ConfigError
from asrtune.text.normalizers import get_normalizer

POLICIES = ("sentence", "keep", "lower", "normalize")
_PRONOUN_I = re.compile(r"\bi(?=$|[\s'’.,!?;:])")
FINAL_MARKS = ".!?…"  # a transcript ending in one of these already ends a sentence


def apply_text_policy(text: str, policy: str) -> str:
    """Return ``text`` rewritten by ``policy`` (see module docstring)."""
    text = " ".join(text.split())
    if policy == "keep":
        return text
    if policy == "lower":
        return text.lower()
    if policy == "sentence":
        if any(c.islower() for c in text) or not any(c.isupper() for c in text):
            return text
        lowered = _PRONOUN_I.sub("I", text.lower())
        if lowered and lowered[-1] not in FINAL_MARKS:
            lowered += "."
        for i, c in enumerate(lowered):
            if c.isalpha():
                return lowered[:i] + c.upper() + lowered[i + 1 :]
        return lowered
    if policy == "normalize":
        return _normalizer()(text)
    raise ConfigError(f"--text-policy must be one of {', '.join(POLICIES)}; got {policy!r}")


def _normalizer():
    return get_normalizer("whisper-en")
