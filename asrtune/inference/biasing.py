"""Domain-term biasing for Whisper: nudge decoding towards the spellings of listed terms.

:class:`TermBiasLogitsProcessor` is a ``transformers`` logits processor (works with
``generate`` in greedy and beam search, batched). How it works:

* every term is tokenised as written and, when it starts lower-case, capitalised (a term can
  start a sentence); each spelling twice, with and without a leading space (Whisper's BPE spells a word
  differently after a space and at the very start of the text), and the token sequences go into
  prefix tries: the with-space spellings match anywhere, the without-space ones only where the
  text starts (right after the decoder prompt's special tokens), so "fl" of "flour" is never
  pushed into the middle of other words;
* at each decoding step, for each row (batch item x beam), it finds the **longest suffix** of the
  tokens generated so far that equals a proper prefix of some term, and adds ``boost`` to the
  logits of the tokens that would continue a term from there;
* the first token of every term gets a smaller bonus (``first_token_boost``, default
  ``boost / 2``) wherever the term could start, so a term can start at all - except where that
  token is among the last :data:`REPEAT_WINDOW_TOKENS` text tokens, so that biasing does not
  feed Whisper's repetition loops;
* a token gets the largest bonus that applies to it (never the sum), and special tokens
  (end-of-text, language, task, timestamp tokens) are never boosted.

Logits are log-probabilities up to a constant, so a boost of ``b`` multiplies a token's odds by
``e**b``: the default 2.0 (x7.4) lets a term win where the model was undecided without forcing
it where the audio clearly says something else. Unlike shallow fusion with an Aho-Corasick
failure penalty, a bonus given to a partial term is not taken back if the term is abandoned;
with sub-word terms a few tokens long that costs little.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from transformers.generation.logits_process import LogitsProcessor

from asrtune.data.terms import load_terms
from asrtune.errors import ConfigError
from asrtune.inference.options import DEFAULT_TERM_BOOST
from asrtune.inference.whisper_common import text_token_ids

__all__ = ["DEFAULT_TERM_BOOST", "TermBiasLogitsProcessor", "TermTrie", "load_terms", "term_processor"]

REPEAT_WINDOW_TOKENS = 16  # a term's first token gets no bonus if it is among the last 16 text tokens


def spellings(term: str) -> list[str]:
    """The term as written, plus its capitalised form when it starts with a lower-case letter
    (a term that starts a sentence is written capitalised: "metoprolol" -> "Metoprolol").

    >>> spellings("metoprolol"), spellings("HbA1c")
    (['metoprolol', 'Metoprolol'], ['HbA1c'])
    """
    capitalised = term[:1].upper() + term[1:]
    return [term] if capitalised == term else [term, capitalised]


class TermTrie:
    """Prefix trie over token-id sequences.

    ``continuations[prefix]`` is the set of tokens that extend ``prefix`` (a tuple of ids) towards
    some term; the empty prefix maps to the terms' first tokens.

    >>> trie = TermTrie([[5, 6, 7], [5, 9]])
    >>> sorted(trie.continuations[(5,)])
    [6, 9]
    >>> trie.longest_prefix_suffix([1, 2, 5, 6])
    (5, 6)
    """

    def __init__(self, sequences: Iterable[Sequence[int]]):
        self.continuations: dict[tuple[int, ...], set[int]] = {}
        self.max_len = 0
        for seq in sequences:
            seq = tuple(int(t) for t in seq)
            if not seq:
                continue
            self.max_len = max(self.max_len, len(seq))
            for i in range(len(seq)):
                self.continuations.setdefault(seq[:i], set()).add(seq[i])

    @property
    def first_tokens(self) -> set[int]:
        return self.continuations.get((), set())

    def longest_prefix_suffix(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Longest non-empty suffix of ``tokens`` that is a proper prefix of a term (or ``()``)."""
        for k in range(min(len(tokens), self.max_len - 1), 0, -1):
            suffix = tuple(tokens[-k:])
            if suffix in self.continuations:
                return suffix
        return ()


class TermBiasLogitsProcessor(LogitsProcessor):
    """Boost the logits of tokens that spell listed terms (see the module docstring).

    ``tokenizer`` is any Hugging Face tokenizer (terms are encoded as plain text, see
    :func:`~asrtune.inference.whisper_common.text_token_ids`; ``all_special_ids`` are never boosted); use :meth:`from_token_ids` to build one without a
    tokenizer.

    >>> import torch
    >>> proc = TermBiasLogitsProcessor.from_token_ids([[3, 4]], boost=2.0, first_token_boost=1.0)
    >>> proc(torch.tensor([[0, 5], [0, 3]]), torch.zeros(2, 6))  # 3 may start the term; after 3, 4 continues it
    tensor([[0., 0., 0., 1., 0., 0.],
            [0., 0., 0., 0., 2., 0.]])
    """

    def __init__(
        self,
        tokenizer,
        terms: Sequence[str],
        boost: float = DEFAULT_TERM_BOOST,
        first_token_boost: float | None = None,
    ):
        special = set(int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []))
        anywhere, at_start = [], []
        self.terms = [t.strip() for t in terms if t.strip()]
        for term in self.terms:
            for spelling in spellings(term):
                anywhere.append(text_token_ids(tokenizer, " " + spelling))
                at_start.append(text_token_ids(tokenizer, spelling))
        self._setup(anywhere, at_start, boost, first_token_boost, special)

    @classmethod
    def from_token_ids(
        cls,
        sequences: Iterable[Sequence[int]],
        boost: float = DEFAULT_TERM_BOOST,
        first_token_boost: float | None = None,
        special_ids: Iterable[int] = (),
        start_sequences: Iterable[Sequence[int]] = (),
    ) -> "TermBiasLogitsProcessor":
        """Build from token-id sequences directly (tests, custom tokenisers).

        ``sequences`` match anywhere; ``start_sequences`` only where the text starts (after the
        last of ``special_ids`` in a row, or at position 0).
        """
        self = cls.__new__(cls)
        self.terms = []
        self._setup(sequences, start_sequences, boost, first_token_boost, set(int(i) for i in special_ids))
        return self

    def _setup(self, anywhere, at_start, boost: float, first_token_boost: float | None, special: set[int]) -> None:
        if boost < 0 or (first_token_boost is not None and first_token_boost < 0):
            raise ConfigError(f"--term-boost must be >= 0, got {boost}")
        clean = lambda seqs: [[int(t) for t in s if int(t) not in special] for s in seqs]  # noqa: E731
        self.trie = TermTrie(clean(anywhere))
        self.start_trie = TermTrie(clean(at_start))
        self.boost = float(boost)
        self.first_token_boost = float(boost / 2 if first_token_boost is None else first_token_boost)
        self.special_ids = special

    def bonus(self, tokens: Sequence[int], vocab_size: int) -> dict[int, float]:
        """The bonus per token id for one row whose tokens so far (prompt included) are ``tokens``."""
        text_start = 0  # index of the first text token: after the decoder prompt's special tokens
        for i in range(len(tokens) - 1, -1, -1):
            if tokens[i] in self.special_ids:
                text_start = i + 1
                break
        text = tokens[text_start:]
        first = set(self.trie.first_tokens) | (self.start_trie.first_tokens if not text else set())
        # No head start for a term that began recently: boosting it again feeds Whisper's
        # repetition loops ("good good good ...", seen at boost 3 on speechocean762).
        first -= set(text[-REPEAT_WINDOW_TOKENS:])
        out = {t: self.first_token_boost for t in first}
        # Longest match wins: a suffix of the text in the anywhere-trie, or the whole text so far
        # in the start-trie (a term spelled without a leading space can only begin the text).
        matches: list[tuple[int, set[int]]] = []
        prefix = self.trie.longest_prefix_suffix(text)
        if prefix:
            matches.append((len(prefix), self.trie.continuations[prefix]))
        if text and len(text) < self.start_trie.max_len and tuple(text) in self.start_trie.continuations:
            matches.append((len(text), self.start_trie.continuations[tuple(text)]))
        longest = max((n for n, _ in matches), default=0)
        continuations = set().union(*(c for n, c in matches if n == longest))
        for t in continuations:
            out[t] = max(out.get(t, 0.0), self.boost)
        return {t: b for t, b in out.items() if t < vocab_size and t not in self.special_ids}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not (self.trie.continuations or self.start_trie.continuations) or (self.boost == 0 and self.first_token_boost == 0):
            return scores
        vocab = scores.shape[-1]
        rows, cols, values = [], [], []
        for row, tokens in enumerate(input_ids.tolist()):
            for t, b in self.bonus(tokens, vocab).items():
                rows.append(row)
                cols.append(t)
                values.append(b)
        add = torch.zeros_like(scores)
        if rows:
            add[rows, cols] = torch.tensor(values, dtype=scores.dtype, device=scores.device)
        return scores + add


def term_processor(tokenizer, terms: list[str] | None, boost: float | None):
    """A TermBiasLogitsProcessor for ``terms``, or None when there are none."""
    if not terms:
        return None
    return TermBiasLogitsProcessor(tokenizer, terms, DEFAULT_TERM_BOOST if boost is None else boost)
