"""Named, versioned text normalisers for scoring.

Word error rate depends as much on how text is normalised as on the recogniser: "fifty" vs
"50", "it's" vs "it is", "colour" vs "color" and punctuation each move WER by points. So every
report names the normaliser it used and its version, and the orthographic score (raw strings,
whitespace collapsed only) is always reported beside the normalised one.

Names:

- ``whisper-en``: Whisper's English normaliser as shipped by transformers
  (``transformers.models.whisper.english_normalizer.EnglishTextNormalizer``): lower case,
  contractions expanded, numbers and currencies spelled as digits, fillers (uh, um) and
  bracketed text removed, British spellings mapped to American. The spelling map is data that
  transformers does not ship (it comes with each Whisper tokenizer on the hub as
  ``normalizer.json``); offline we read the same 1.7k-entry list from the ``whisper-normalizer``
  package (``whisper_normalizer/normalizers/english.json``) or from ``openai-whisper``. The
  version string records the transformers version and a hash of the spelling map.
- ``basic``: transformers' ``BasicTextNormalizer`` (lower case, drop bracketed text and
  punctuation, collapse spaces), for languages other than English.
- ``none``: whitespace collapsed only (the orthographic score).

>>> norm = get_normalizer("whisper-en")
>>> norm("It's fifty-five Colour, Mr. Smith!")
'it is 55 color mister smith'
>>> get_normalizer("none")("  Hello,   World ")
'Hello, World'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from asrtune.errors import ConfigError

NORMALIZER_NAMES = ("whisper-en", "basic", "none")

# Where installed packages keep Whisper's British->American spelling map, in order of preference.
_SPELLING_MAP_LOCATIONS = (
    ("whisper_normalizer", ("normalizers", "english.json")),
    ("whisper", ("normalizers", "english.json")),  # openai-whisper
)


@dataclass(frozen=True)
class Normalizer:
    """A text normaliser with the name and version every report records.

    >>> n = Normalizer("none", "1", collapse_whitespace, "whitespace only")
    >>> n(" a  b ")
    'a b'
    """

    name: str
    version: str
    fn: Callable[[str], str]
    description: str = ""

    def __call__(self, text: str) -> str:
        # Every normaliser ends with whitespace collapsed, so word splitting is unambiguous.
        return collapse_whitespace(self.fn(text))

    def describe(self) -> dict[str, str]:
        """The ``normalizer`` block of a report."""
        return {"name": self.name, "version": self.version, "description": self.description}


def collapse_whitespace(text: str) -> str:
    """Strip and collapse runs of whitespace to one space: the only change orthographic scoring makes."""
    return " ".join(text.split())


def find_spelling_map() -> tuple[dict[str, str], str]:
    """Return Whisper's English spelling map and a short description of where it came from.

    The map is looked for in installed packages (``whisper-normalizer``, ``openai-whisper``);
    without one the map is empty and the source says so, which the normaliser version records.
    """
    override = os.environ.get("ASRTUNE_SPELLING_MAP")
    candidates: list[tuple[str, str]] = []
    if override:
        candidates.append(("ASRTUNE_SPELLING_MAP", override))
    for package, parts in _SPELLING_MAP_LOCATIONS:
        spec = importlib.util.find_spec(package)
        # Only the package's folder is needed: the JSON is read without importing the package.
        for folder in (spec.submodule_search_locations or []) if spec else []:
            candidates.append((package, os.path.join(folder, *parts)))
    for source, path in candidates:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                raw = f.read()
            mapping = json.loads(raw)
            digest = hashlib.sha256(raw).hexdigest()[:10]
            return mapping, f"{source}:english.json:{len(mapping)}:sha256={digest}"
    return {}, "none"


@lru_cache(maxsize=None)
def get_normalizer(name: str) -> Normalizer:
    """Return the normaliser called ``name`` (``whisper-en``, ``basic`` or ``none``).

    Raises :class:`ConfigError` naming the choices for any other name.
    """
    if isinstance(name, Normalizer):  # already resolved: let callers pass either
        return name
    if name == "none":
        return Normalizer("none", "1", collapse_whitespace, "whitespace collapsed only (orthographic)")
    # heavy: transformers
    import transformers
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    tf_version = f"transformers=={transformers.__version__}"
    if name == "whisper-en":
        mapping, source = find_spelling_map()
        if not mapping:
            warnings.warn(
                "whisper-en: no English spelling map found (pip install whisper-normalizer); "
                "British/American spellings will count as errors",
                stacklevel=2,
            )
        return Normalizer(
            "whisper-en",
            f"{tf_version};spelling={source}",
            EnglishTextNormalizer(mapping),
            "Whisper English normaliser (transformers EnglishTextNormalizer): lower case, contractions "
            "expanded, numbers to digits, fillers and bracketed text removed, British->American spelling",
        )
    if name == "basic":
        return Normalizer(
            "basic",
            tf_version,
            BasicTextNormalizer(),
            "transformers BasicTextNormalizer: lower case, bracketed text and punctuation removed",
        )
    raise ConfigError(f"--normalizer: unknown normaliser {name!r} (choose from {', '.join(NORMALIZER_NAMES)})")


ENGLISH_NAMES = (None, "", "en", "english")  # how a language option can say "English" (None: the default)


def normalizer_for_language(language: str | None) -> str:
    """The normaliser that fits ``language``: ``whisper-en`` for English (the default), ``basic`` otherwise.

    The English normaliser rewrites English spellings, numbers and contractions; applied to another
    language it would mangle words, so other languages get the language-neutral ``basic`` one.

    >>> normalizer_for_language(None), normalizer_for_language("English"), normalizer_for_language("de")
    ('whisper-en', 'whisper-en', 'basic')
    """
    code = language.strip().lower() if language else None
    return "whisper-en" if code in ENGLISH_NAMES else "basic"
