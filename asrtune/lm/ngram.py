"""A word n-gram language model with interpolated modified Kneser-Ney smoothing, written as ARPA.

Why our own estimator: KenLM's ``lmplz`` (the usual tool) is a C++ binary that pip does not
ship; the ``kenlm`` pip package only *queries* models. Domain LMs for CTC decoding are built
from a few thousand to a few hundred thousand sentences, which a plain-Python counter handles
in seconds. The ARPA text it writes loads in KenLM (``kenlm.Model``) and therefore in
flashlight's decoder, exactly like an ``lmplz`` output.

The estimator follows Chen & Goodman (1998), "An empirical study of smoothing techniques",
section 3 (interpolated modified Kneser-Ney), with KenLM's conventions:

* one ``<s>`` starts and one ``</s>`` ends every sentence; ``<s>`` is never predicted
  (log10 probability -99 in the ARPA file, as KenLM writes it);
* the highest order uses raw counts, lower orders use *continuation* counts (how many distinct
  words precede the n-gram), except n-grams that begin with ``<s>``, which keep raw counts
  because nothing can precede them;
* three discounts per order (for counts 1, 2 and 3+) from the count-of-counts;
* unigrams are interpolated with the uniform distribution over the vocabulary, which is where
  ``<unk>`` gets its probability.

For interpolated models the ARPA back-off weight of a context is exactly its interpolation
weight gamma(h), so a query of an unseen n-gram (back-off) and of a seen one (stored
interpolated probability) agree with the model's definition.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from asrtune.errors import ConfigError
from asrtune.fileio import atomic_open

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
BOS_LOG10_PROB = -99.0  # how KenLM writes the never-predicted <s>
# Used when the count-of-counts cannot define a discount (tiny corpora): Chen & Goodman's
# formula needs n1..n4 > 0. Values are typical of what larger corpora give.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
MIN_ORDER, MAX_ORDER = 2, 6  # KenLM (and so flashlight) loads bigram models and up; 6 is plenty

Ngram = tuple[str, ...]


@dataclass
class NgramModel:
    """An estimated model: per order, ``{ngram: (log10 prob, log10 back-off or None)}``.

    >>> lm = estimate_kneser_ney([["a", "b"], ["a", "c"]], order=2)
    >>> round(10 ** lm.orders[0][("a",)][0], 3) > 0
    True
    """

    order: int
    orders: list[dict[Ngram, tuple[float, float | None]]]
    discounts: list[tuple[float, float, float]]

    @property
    def vocabulary(self) -> list[str]:
        return [g[0] for g in self.orders[0]]

    def write_arpa(self, path) -> None:
        """Write the model as an ARPA text file (atomically)."""
        with atomic_open(path, "w") as f:
            f.write("\\data\\\n")
            for n, grams in enumerate(self.orders, start=1):
                f.write(f"ngram {n}={len(grams)}\n")
            for n, grams in enumerate(self.orders, start=1):
                f.write(f"\n\\{n}-grams:\n")
                for gram, (logp, bow) in sorted(grams.items()):
                    line = f"{logp:.6f}\t{' '.join(gram)}"
                    if bow is not None and n < self.order:
                        line += f"\t{bow:.6f}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")


def _discounts(adjusted: Iterable[int]) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from the count-of-counts of one order."""
    count_of_counts = Counter(c for c in adjusted if c <= 4)
    n1, n2, n3, n4 = (count_of_counts[k] for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    # each discount must lie in (0, k) for counts k = 1, 2, 3
    return tuple(dk if 0 < dk < k else fk for k, dk, fk in zip((1, 2, 3), d, FALLBACK_DISCOUNTS))  # type: ignore[return-value]


def check_order(order: int) -> None:
    """Raise :class:`ConfigError` naming ``--order`` unless ``MIN_ORDER <= order <= MAX_ORDER``."""
    if not MIN_ORDER <= order <= MAX_ORDER:
        raise ConfigError(f"--order must be between {MIN_ORDER} and {MAX_ORDER}, got {order}")


def estimate_kneser_ney(sentences: Iterable[Sequence[str]], order: int = 3) -> NgramModel:
    """Estimate an interpolated modified Kneser-Ney model of ``order`` from tokenised sentences."""
    check_order(order)
    raw: list[Counter] = [Counter() for _ in range(order)]
    n_sentences = 0
    for words in sentences:
        if not words:
            continue
        n_sentences += 1
        tokens = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                gram = tuple(tokens[i : i + n])
                if gram == (BOS,):
                    continue  # <s> is never predicted; it is added to the vocabulary below
                raw[n - 1][gram] += 1
    if n_sentences == 0:
        raise ConfigError("the LM text has no words (every line is empty)")

    # Adjusted counts: raw for the top order and for n-grams starting with <s>, else the number
    # of distinct words seen before the n-gram.
    adjusted: list[dict[Ngram, int]] = [dict() for _ in range(order)]
    adjusted[order - 1] = dict(raw[order - 1])
    for n in range(order - 1, 0, -1):
        left_extensions: Counter = Counter(gram[1:] for gram in raw[n])
        for gram, count in raw[n - 1].items():
            adjusted[n - 1][gram] = count if gram[0] == BOS else left_extensions.get(gram, 0)
    discounts = [_discounts(adjusted[n].values()) for n in range(order)]
    vocab = sorted({g[0] for g in adjusted[0]} | {UNK})

    orders: list[dict[Ngram, tuple[float, float | None]]] = []
    lower_prob: dict[Ngram, float] = {}
    gammas_by_order: list[dict[Ngram, float]] = []
    for n in range(1, order + 1):
        counts = adjusted[n - 1]
        d1, d2, d3 = discounts[n - 1]
        totals: dict[Ngram, float] = defaultdict(float)
        mass: dict[Ngram, float] = defaultdict(float)
        for gram, count in counts.items():
            context = gram[:-1]
            totals[context] += count
            mass[context] += d1 if count == 1 else d2 if count == 2 else d3
        gamma = {context: mass[context] / totals[context] for context in totals}
        probs: dict[Ngram, float] = {}
        if n == 1:
            uniform = 1.0 / (len(vocab))  # <unk>, </s> and every word; <s> is never predicted
            total, g0 = totals[()], gamma[()]
            for word in vocab:
                count = counts.get((word,), 0)
                discounted = max(count - (d1 if count == 1 else d2 if count == 2 else d3), 0.0) if count else 0.0
                probs[(word,)] = discounted / total + g0 * uniform
        else:
            for gram, count in counts.items():
                discounted = count - (d1 if count == 1 else d2 if count == 2 else d3)
                probs[gram] = discounted / totals[gram[:-1]] + gamma[gram[:-1]] * lower_prob[gram[1:]]
        gammas_by_order.append(gamma)
        lower_prob = probs
        orders.append({gram: (math.log10(p), None) for gram, p in probs.items()})

    # back-off weights: gamma of each n-gram used as a context of the next order
    for n in range(1, order):
        gamma_next = gammas_by_order[n]
        table = orders[n - 1]
        for context, g in gamma_next.items():
            if context in table:
                table[context] = (table[context][0], math.log10(g))
    bos_bow = gammas_by_order[1].get((BOS,)) if order > 1 else None
    orders[0][(BOS,)] = (BOS_LOG10_PROB, math.log10(bos_bow) if bos_bow else None)
    return NgramModel(order=order, orders=orders, discounts=discounts)
