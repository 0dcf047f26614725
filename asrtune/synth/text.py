"""Domain text in, sentences to speak out.

A text file holds one sentence per line; blank lines and lines starting with ``#`` are skipped.
The transcript is kept exactly as written. What eSpeak is *told* to say is a speakable version:
digits become words (eSpeak would otherwise read ``2.5`` or ``10mg`` oddly) and all-capital
acronyms are spelled letter by letter (``ECG`` -> ``E C G``), so audio and transcript agree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from asrtune.data.textfile import iter_text_lines
from asrtune.errors import ManifestError

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"), (100, "hundred"))
_SYMBOLS = {"%": " percent", "&": " and ", "+": " plus ", "/": " per ", "°": " degrees "}
# A run of 2-6 capitals (optionally with digits, e.g. HbA1c is left alone: it has lower case).
_ACRONYM = re.compile(r"\b[A-Z]{2,6}s?\b")
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_ACRONYMS_SPOKEN_AS_WORDS = {"NATO", "AIDS", "COVID", "SARS", "NASA", "SIM", "LASIK", "CABG", "PEG", "MERS", "OK"}


def number_to_words(n: int) -> str:
    """Cardinal number in words.

    >>> number_to_words(125)
    'one hundred twenty five'
    >>> number_to_words(2_004)
    'two thousand four'
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for value, word in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return f"{number_to_words(head)} {word}" + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def _number_match_to_words(match: re.Match) -> str:
    text = match.group(0).replace(",", "")
    whole, _, frac = text.partition(".")
    words = number_to_words(int(whole))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return f" {words} "


def speakable(text: str) -> str:
    """What to tell eSpeak for transcript ``text``.

    >>> speakable("ECG at 10:30, give 2.5 mg")
    'E C G at ten thirty, give two point five mg'
    """
    text = re.sub(r"(\d{1,2}):(\d{2})\b", lambda m: f"{m.group(1)} {m.group(2) if m.group(2) != '00' else ''}", text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = _NUMBER.sub(_number_match_to_words, text)

    def spell(m: re.Match) -> str:
        word = m.group(0)
        if word.rstrip("s") in _ACRONYMS_SPOKEN_AS_WORDS:
            return word
        plural = word.endswith("s") and word[:-1].isupper() and len(word) > 2
        letters = word[:-1] if plural else word
        return " ".join(letters) + ("'s" if plural else "")

    text = _ACRONYM.sub(spell, text)
    return re.sub(r"\s+", " ", text).strip().replace(" ,", ",").replace(" .", ".")


def has_word(text: str) -> bool:
    """Whether eSpeak would say anything for ``text`` (a letter or digit once made speakable).

    >>> has_word("..."), has_word("!!!"), has_word("5%"), has_word("Ok.")
    (False, False, True, True)
    """
    return any(c.isalnum() for c in speakable(text))


@dataclass(frozen=True)
class SentenceFile:
    """A domain text file read for synthesis: what to speak and which lines had nothing to say."""

    sentences: list[str]
    #: 1-based line numbers of non-comment lines with no speakable word ("...", "!!!")
    unspeakable_lines: list[int] = field(default_factory=list)


def read_sentence_file(path: str | os.PathLike) -> SentenceFile:
    """Sentences of a domain text file: one per line; ``#`` comments and blank lines skipped,
    lines with no speakable word (punctuation only) skipped and counted.

    Raises :class:`ManifestError` naming the file when it is missing or has no sentences.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(str(path), None, "text file not found" if not path.exists() else "not a file")
    sentences, unspeakable = [], []
    for line_no, line in iter_text_lines(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if has_word(line):
            sentences.append(line)
        else:
            unspeakable.append(line_no)
    if not sentences:
        what = f"only lines with no speakable word ({len(unspeakable)})" if unspeakable else "no sentences"
        raise ManifestError(str(path), None, f"{what}; give one sentence per line ('#' starts a comment)")
    return SentenceFile(sentences, unspeakable)


def read_sentences(path: str | os.PathLike) -> list[str]:
    """The speakable sentences of a domain text file (see :func:`read_sentence_file`)."""
    return read_sentence_file(path).sentences
