"""Domain term lists: the words and phrases that matter to a user (drug names, products, places).

One file format serves every command that takes ``--terms`` (eval's term recall, transcribe's
biasing, ``lm build``'s hotwords): one term per line, a term may be several words, ``#`` starts
a comment, blank lines are skipped, repeats are dropped.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "terms.txt"
>>> _ = path.write_text("# drugs\\nmetoprolol\\natrial fibrillation  # a phrase\\nmetoprolol\\n")
>>> load_terms(path)
['metoprolol', 'atrial fibrillation']

Without a list, :func:`domain_vocabulary` takes a domain's most frequent words from its transcripts:

>>> domain_vocabulary(["Take the metoprolol.", "Metoprolol and warfarin", "the warfarin dose"], 2)
['metoprolol', 'warfarin']
"""

from __future__ import annotations

import collections
import os
import re
from pathlib import Path
from typing import Iterable

from asrtune.data.textfile import iter_text_lines
from asrtune.errors import ConfigError


#: A term is a word or a short phrase; a longer line is most likely a paragraph pasted by mistake
#: (and would be boosted as one 100-token "word"). A prompt (--prompt) is the place for prose.
MAX_TERM_CHARS = 100


def check_term_length(term: str, where: str) -> None:
    """ConfigError (naming ``where``) for a term over :data:`MAX_TERM_CHARS` characters."""
    if len(term.strip()) > MAX_TERM_CHARS:
        raise ConfigError(f"{where}: a term of {len(term.strip())} characters; terms are words or short phrases "
                          f"of at most {MAX_TERM_CHARS} (put prose in --prompt)")


def load_terms(path: str | os.PathLike, option: str = "--terms") -> list[str]:
    """The terms in ``path`` in file order, without repeats; one clear error (naming ``option``,
    the file and the line) when the file is missing, holds no terms or a term over
    :data:`MAX_TERM_CHARS` characters."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{option} {path}: file not found")
    terms: dict[str, None] = {}  # insertion-ordered set: thousands of terms load in linear time
    for line_no, line in iter_text_lines(path):
        term = line.split("#", 1)[0].strip()
        check_term_length(term, f"{option} {path}:{line_no}")
        if term:
            terms.setdefault(term)
    if not terms:
        raise ConfigError(f"{option} {path}: no terms (one term per line, '#' starts a comment)")
    return list(terms)


#: Words too common to be anyone's vocabulary (kept short: "dose" or "patient" are domain words).
STOP_WORDS = frozenset("the a an and of to in is it i you he she we they my your his her its on at for with this that "
                       "was".split())


def domain_vocabulary(texts: Iterable[str], limit: int) -> list[str]:
    """The ``limit`` most frequent lower-cased words of ``texts`` outside :data:`STOP_WORDS`,
    most frequent first (ties in first-seen order)."""
    counts = collections.Counter(w for t in texts for w in re.findall(r"[a-z']+", t.lower()) if w not in STOP_WORDS)
    return [w for w, _ in counts.most_common(limit)]
