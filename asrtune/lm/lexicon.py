"""Words, spellings and token lists for flashlight's lexicon-constrained CTC beam search.

* ``tokens.txt``: the model's CTC vocabulary, one token per line in id order.
* ``lexicon.txt``: ``word<TAB>c h a r s |`` — how each LM word is spelled in those tokens,
  ending with the word delimiter ``|`` (the CTC "space"), as flashlight expects.

A word is spelled in the model's case (``hello`` is ``H E L L O |`` for an upper-case model)
while the word itself keeps the LM's spelling, so the same LM serves models of either case.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from asrtune.errors import ConfigError
from asrtune.fileio import atomic_open
from asrtune.models import resolve_model
from asrtune.models.ctc_vocab import NON_TEXT_TOKENS, WORD_DELIMITER, prepare_text, vocab_case, vocab_tokens

# Characters that join a word rather than end it when the vocabulary does not say otherwise.
WORD_CHARS = re.compile(r"[\w']", re.UNICODE)


def clean_line(line: str, case: str, char_map: dict[str, str] | None, vocab: dict[str, int] | None) -> list[str]:
    """Split one line of domain text into LM words.

    Characters are mapped (``char_map``), cased like the model, and anything that is neither a
    word character (letter, digit, apostrophe) nor in the model vocabulary becomes a space, so
    punctuation separates words instead of sticking to them.

    >>> clean_line("Hello, world's END.", "lower", None, None)
    ['hello', "world's", 'end']
    """
    text = prepare_text(line, case, char_map)
    kept = [c if (WORD_CHARS.match(c) or (vocab is not None and c in vocab and c != WORD_DELIMITER)) else " " for c in text]
    return "".join(kept).split()


def spell(word: str, vocab: dict[str, int], case: str) -> list[str] | None:
    """The token spelling of ``word`` plus ``|``, or None when a character is not in ``vocab``.

    >>> spell("ab", {"<pad>": 0, "|": 1, "A": 2, "B": 3}, "upper")
    ['A', 'B', '|']
    """
    shaped = word.upper() if case == "upper" else word.lower() if case == "lower" else word
    tokens = list(shaped)
    if not tokens or any(t not in vocab or t in NON_TEXT_TOKENS for t in tokens):
        return None
    return tokens + [WORD_DELIMITER]


def write_tokens(path: str | os.PathLike, vocab: dict[str, int]) -> None:
    with atomic_open(path) as f:
        f.write("\n".join(vocab_tokens(vocab)) + "\n")


def read_tokens(path: str | os.PathLike) -> dict[str, int]:
    with open(path, encoding="utf-8") as f:
        return {line.rstrip("\n"): i for i, line in enumerate(f) if line.rstrip("\n")}


def write_lexicon(path: str | os.PathLike, words: Iterable[str], vocab: dict[str, int]) -> tuple[int, Counter]:
    """Write spellings of ``words``; returns how many could not be spelled and the characters why."""
    case = vocab_case(vocab)
    unspellable: Counter = Counter()
    skipped = 0
    with atomic_open(path) as f:
        for word in words:
            spelling = spell(word, vocab, case)
            if spelling is None:
                shaped = word.upper() if case == "upper" else word.lower() if case == "lower" else word
                unspellable.update(c for c in shaped if c not in vocab)
                skipped += 1
                continue
            f.write(f"{word}\t{' '.join(spelling)}\n")
    return skipped, unspellable


def read_lexicon_words(path: str | os.PathLike) -> list[str]:
    """The words of a lexicon file (first column), in file order."""
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            word = line.split("\t", 1)[0].split(" ", 1)[0].strip()
            if word:
                words.append(word)
    return words


def load_vocab_from(name: str | os.PathLike) -> dict[str, int]:
    """A CTC vocabulary from a ``vocab.json``/``tokens.txt`` file, a model folder, or a model name."""
    path = Path(name)
    if path.is_file():
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
        return read_tokens(path)
    candidates = [path / "vocab.json", path / "best" / "vocab.json", path / "final" / "vocab.json"]
    for candidate in candidates:
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))

    resolved = resolve_model(str(name))
    vocab_file = Path(resolved.path) / "vocab.json"
    if not vocab_file.is_file():
        raise ConfigError(f"--tokens-from {name}: {resolved.path} has no vocab.json (not a CTC model with a tokenizer?)")
    return json.loads(vocab_file.read_text(encoding="utf-8"))
